/* url.c -- percent-encoding, percent-decoding and query-string iteration for tracker URLs. */
#include "common/url.h"

#include <uv.h>

static int url_is_unreserved(uint8_t c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

static int url_hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int url_encode(struct buf *out, const uint8_t *p, size_t n)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t need = 0;
  for (size_t i = 0; i < n; i++)
    need += url_is_unreserved(p[i]) ? 1 : 3;
  if (need == 0)
    return 0;                                  /* out->p may still be NULL */
  /* Reserve everything first, so a failure leaves `out` unchanged. */
  int r = buf_reserve(out, need);
  if (r)
    return r;
  uint8_t *w = out->p + out->len;
  for (size_t i = 0; i < n; i++) {
    if (url_is_unreserved(p[i])) {
      *w++ = p[i];
    } else {
      *w++ = '%';
      *w++ = (uint8_t)hex[p[i] >> 4];
      *w++ = (uint8_t)hex[p[i] & 15];
    }
  }
  out->len += need;
  return 0;
}

long url_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)s[i];
    if (c == '%') {
      if (n - i < 3)
        return -1;
      int hi = url_hexval(s[i + 1]), lo = url_hexval(s[i + 2]);
      if (hi < 0 || lo < 0)
        return -1;
      c = (uint8_t)(hi << 4 | lo);
      i += 2;
    } else if (c == '+') {
      c = ' ';                                 /* form encoding: a literal '+' comes as %2B */
    }
    if (w >= cap)
      return -1;
    out[w++] = c;
  }
  return (long)w;
}

int url_query_next(struct url_query_iter *it, const char **key, size_t *key_len,
                   const char **val, size_t *val_len)
{
  while (it->len > 0) {
    const char *p = it->p;
    size_t n = 0;
    while (n < it->len && p[n] != '&')
      n++;
    /* Step past the pair and its '&' (if any). */
    it->p += n < it->len ? n + 1 : n;
    it->len -= n < it->len ? n + 1 : n;
    if (n == 0)
      continue;
    size_t k = 0;
    while (k < n && p[k] != '=')
      k++;
    *key = p;
    *key_len = k;
    if (k < n) {
      *val = p + k + 1;
      *val_len = n - k - 1;
    } else {
      *val = p + n;
      *val_len = 0;
    }
    return 1;
  }
  return 0;
}
