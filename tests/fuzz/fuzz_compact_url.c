/* fuzz_compact_url.c -- libFuzzer target: compact peer lists (both families), address text forms, percent-decoding, query iteration. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/compact.h"
#include "common/url.h"
#include "tests/fuzz/fuzzutil.h"

/* Input: byte 0 is a small parameter (the entry cap for compact_parse, a
 * shortened output size for url_decode); the rest is used as a compact list
 * of each family, as "HOST:PORT" text, as a percent-encoded string and as a
 * query string. */

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && memcmp(&x->sin_addr, &y->sin_addr, 4) == 0;
  }
  const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void fuzz_compact(int family, const uint8_t *p, size_t len, size_t max)
{
  size_t esz = family == AF_INET ? COMPACT_V4_LEN : COMPACT_V6_LEN;
  size_t entries = len / esz;
  struct sockaddr_storage *out = malloc((max ? max : 1) * sizeof *out);
  FUZZ_CHECK(out != NULL);
  int n = compact_parse(family, p, len, out, max);
  if (len % esz != 0) {
    FUZZ_CHECK(n == -1);
    free(out);
    return;
  }
  FUZZ_CHECK(n >= 0 && (size_t)n <= max && (size_t)n <= entries);

  /* The entries with a port, in order, up to max; put back they are the same bytes. */
  struct buf b;
  buf_init(&b, len);
  size_t k = 0;
  for (size_t e = 0; e < entries && k < (size_t)n; e++) {
    const uint8_t *ent = p + e * esz;
    if (get_u16be(ent + esz - 2) == 0)
      continue;
    FUZZ_CHECK(compact_put(&b, (const struct sockaddr *)&out[k]) == 0);
    FUZZ_CHECK(b.len == (k + 1) * esz && memcmp(b.p + k * esz, ent, esz) == 0);

    /* Text form and back. */
    char text[64];
    struct sockaddr_storage back;
    compact_addr_str((const struct sockaddr *)&out[k], text, sizeof text);
    FUZZ_CHECK(memchr(text, '\0', sizeof text) != NULL);
    FUZZ_CHECK(compact_addr_parse(text, &back) == 0 && same_addr(&back, &out[k]));
    k++;
  }
  FUZZ_CHECK(k == (size_t)n);
  if ((size_t)n < max) {
    /* Not cut short by max: every entry with a port was taken. */
    size_t with_port = 0;
    for (size_t e = 0; e < entries; e++)
      with_port += get_u16be(p + e * esz + esz - 2) != 0;
    FUZZ_CHECK(with_port == (size_t)n);
  }
  buf_free(&b);
  free(out);
}

static void fuzz_addr_text(const uint8_t *p, size_t len)
{
  char *s = malloc(len + 1);
  FUZZ_CHECK(s != NULL);
  memcpy(s, p, len);
  s[len] = '\0';
  struct sockaddr_storage a, b;
  if (compact_addr_parse(s, &a) == 0) {
    FUZZ_CHECK(a.ss_family == AF_INET || a.ss_family == AF_INET6);
    char text[64];
    compact_addr_str((const struct sockaddr *)&a, text, sizeof text);
    FUZZ_CHECK(compact_addr_parse(text, &b) == 0 && same_addr(&a, &b));
  }
  free(s);
}

static void fuzz_decode(const char *s, size_t n, size_t small_cap)
{
  uint8_t *out = malloc(n ? n : 1);
  FUZZ_CHECK(out != NULL);
  long d = url_decode(s, n, out, n);
  if (d < 0) {
    /* A bad escape fails whatever the room. */
    uint8_t *big = malloc(n + 16);
    FUZZ_CHECK(big != NULL);
    FUZZ_CHECK(url_decode(s, n, big, n + 16) == -1);
    free(big);
    free(out);
    return;
  }
  FUZZ_CHECK((size_t)d <= n);
  /* Exactly d bytes of room are enough, one fewer is not. */
  uint8_t *exact = malloc(d ? (size_t)d : 1);
  FUZZ_CHECK(exact != NULL);
  FUZZ_CHECK(url_decode(s, n, exact, (size_t)d) == d && memcmp(exact, out, (size_t)d) == 0);
  if (d > 0)
    FUZZ_CHECK(url_decode(s, n, exact, (size_t)d - 1) == -1);
  free(exact);
  if (small_cap < (size_t)d)
    FUZZ_CHECK(url_decode(s, n, out, small_cap) == -1);

  /* Encode the bytes and decode again: the same bytes; the encoding uses
   * only unreserved characters and upper-case escapes. */
  struct buf enc;
  buf_init(&enc, 3 * (size_t)d + 1);
  FUZZ_CHECK(url_encode(&enc, out, (size_t)d) == 0);
  for (size_t i = 0; i < enc.len; i++) {
    uint8_t c = enc.p[i];
    FUZZ_CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_' || c == '~' || c == '%');
  }
  uint8_t *again = malloc(d ? (size_t)d : 1);
  FUZZ_CHECK(again != NULL);
  FUZZ_CHECK(url_decode((const char *)enc.p, enc.len, again, (size_t)d) == d);
  FUZZ_CHECK(memcmp(again, out, (size_t)d) == 0);
  free(again);
  buf_free(&enc);
  free(out);
}

static void fuzz_query(const char *q, size_t len)
{
  struct url_query_iter it = { q, len };
  const char *k, *v;
  size_t kl, vl;
  /* The pairs joined with '&' give back the query without its empty pairs. */
  struct buf joined, expect;
  buf_init(&joined, len + 1);
  buf_init(&expect, len + 1);
  size_t pairs = 0;
  while (url_query_next(&it, &k, &kl, &v, &vl)) {
    FUZZ_CHECK(++pairs <= len);
    FUZZ_CHECK(k >= q && kl <= len && k + kl <= q + len);
    FUZZ_CHECK(v >= k + kl && vl <= len && v + vl <= q + len);
    FUZZ_CHECK(memchr(k, '&', kl) == NULL && memchr(k, '=', kl) == NULL);
    FUZZ_CHECK(memchr(v, '&', vl) == NULL);
    bool has_eq = v == k + kl + 1;
    FUZZ_CHECK(has_eq || (v == k + kl && vl == 0));
    FUZZ_CHECK(kl + vl + has_eq > 0);
    if (joined.len)
      FUZZ_CHECK(buf_append_u8(&joined, '&') == 0);
    FUZZ_CHECK(buf_append(&joined, k, kl) == 0);
    if (has_eq)
      FUZZ_CHECK(buf_append_u8(&joined, '=') == 0 && buf_append(&joined, v, vl) == 0);
  }
  FUZZ_CHECK(url_query_next(&it, &k, &kl, &v, &vl) == 0);
  for (size_t i = 0, start = 0; i <= len; i++) {
    if (i < len && q[i] != '&')
      continue;
    if (i > start) {
      if (expect.len)
        FUZZ_CHECK(buf_append_u8(&expect, '&') == 0);
      FUZZ_CHECK(buf_append(&expect, q + start, i - start) == 0);
    }
    start = i + 1;
  }
  FUZZ_CHECK(joined.len == expect.len && (joined.len == 0 || memcmp(joined.p, expect.p, joined.len) == 0));
  buf_free(&joined);
  buf_free(&expect);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  size_t param = data[0];
  const uint8_t *p = data + 1;
  size_t len = size - 1;

  fuzz_compact(AF_INET, p, len, param);
  fuzz_compact(AF_INET6, p, len, param);
  struct sockaddr_storage one;
  FUZZ_CHECK(compact_parse(AF_UNIX, p, len, &one, 1) == -1);
  fuzz_addr_text(p, len);
  fuzz_decode((const char *)p, len, param);
  fuzz_query((const char *)p, len);
  return 0;
}
