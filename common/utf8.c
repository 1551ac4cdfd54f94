/* utf8.c -- strict UTF-8 checks. */
#include "common/utf8.h"

size_t utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
  if (n == 0)
    return 0;
  uint8_t c = p[0];
  size_t len;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    len = 2, v = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3, v = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    v = v << 6 | (p[i] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
    return 0;
  *cp = v;
  return len;
}

bool utf8_valid(const uint8_t *p, size_t n)
{
  uint32_t cp;
  for (size_t i = 0; i < n;) {
    size_t len = utf8_seq(p + i, n - i, &cp);
    if (len == 0)
      return false;
    i += len;
  }
  return true;
}
