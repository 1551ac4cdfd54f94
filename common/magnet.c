/* magnet.c -- magnet link parsing (BEP 9 xt/dn/tr/x.pe, BEP 53 so) and building. */
#include "common/magnet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "common/buf.h"
#include "common/compact.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/url.h"
#include "common/utf8.h"

#define MAGNET_PREFIX "magnet:?"
#define MAGNET_MAX_PEER_LEN 300        /* longest x.pe value considered */

/* RFC 4648 base32 of exactly 20 bytes (32 characters, no padding, any case). */
static int magnet_base32(const uint8_t *s, uint8_t out[20])
{
  uint64_t acc = 0;
  int bits = 0;
  size_t w = 0;
  for (size_t i = 0; i < 32; i++) {
    uint8_t c = s[i], v;
    if (c >= 'A' && c <= 'Z')
      v = (uint8_t)(c - 'A');
    else if (c >= 'a' && c <= 'z')
      v = (uint8_t)(c - 'a');
    else if (c >= '2' && c <= '7')
      v = (uint8_t)(c - '2' + 26);
    else
      return -1;
    acc = acc << 5 | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[w++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return w == 20 ? 0 : -1;
}

/* Decodes the value of a parameter into out (which has room for n bytes: a
 * decoded value is never longer), '+' becoming a space when plus_space.
 * Returns the decoded length, or -1 on a bad %-escape. */
static long magnet_decode(const char *v, size_t n, bool plus_space, uint8_t *out)
{
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    char c = v[i];
    if (c == '%') {
      if (n - i < 3 || url_decode(v + i, 3, out + w, 1) != 1)
        return -1;
      i += 2;
      w++;
    } else {
      out[w++] = (uint8_t)(plus_space && c == '+' ? ' ' : c);
    }
  }
  return (long)w;
}

static bool magnet_key_is(const char *k, size_t klen, const char *want)
{
  return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

/* xt: sets the infohash from urn:btih:, notes urn:btmh:, ignores others. */
static int magnet_xt(struct magnet *m, const uint8_t *v, size_t n, bool *have_btih,
                     bool *saw_btmh, char *err, size_t errlen)
{
  uint8_t ih[20];
  if (n >= 9 && strncasecmp((const char *)v, "urn:btmh:", 9) == 0) {
    *saw_btmh = true;
    return 0;
  }
  if (n < 9 || strncasecmp((const char *)v, "urn:btih:", 9) != 0)
    return 0;                          /* another kind of xt */
  const uint8_t *h = v + 9;
  size_t hl = n - 9;
  if (hl == 40) {
    if (hash_unhex((const char *)h, hl, ih, 20) != 0)
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: btih infohash has a non-hex character");
  } else if (hl == 32) {
    if (magnet_base32(h, ih) != 0)
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: btih infohash has a non-base32 character");
  } else {
    return shoal_fail(err, errlen, UV_EINVAL,
                       "magnet: btih infohash must be 40 hex or 32 base32 characters, not %zu", hl);
  }
  if (*have_btih && memcmp(ih, m->infohash, 20) != 0)
    return shoal_fail(err, errlen, UV_EINVAL, "magnet: several different btih infohashes");
  memcpy(m->infohash, ih, 20);
  *have_btih = true;
  return 0;
}

/* dn: the first one counts. */
static int magnet_dn(struct magnet *m, const uint8_t *v, size_t n, bool *have_dn,
                     char *err, size_t errlen)
{
  if (*have_dn)
    return 0;
  *have_dn = true;
  size_t keep = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t l = utf8_seq(v + i, n - i, &cp);
    if (l == 0)
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: dn is not valid UTF-8");
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: dn contains control characters");
    i += l;
    if (i <= MAGNET_MAX_NAME)
      keep = i;
  }
  if (keep == 0)
    return 0;                          /* "dn=": no name */
  m->name = malloc(keep + 1);
  if (m->name == NULL)
    return UV_ENOMEM;
  memcpy(m->name, v, keep);
  m->name[keep] = '\0';
  return 0;
}

static int magnet_tr(struct magnet *m, const uint8_t *v, size_t n, char *err, size_t errlen)
{
  if (n == 0)
    return shoal_fail(err, errlen, UV_EINVAL, "magnet: empty tr");
  if (n > MAGNET_MAX_TRACKER_LEN)
    return shoal_fail(err, errlen, UV_EINVAL, "magnet: tr longer than %u bytes",
                       (unsigned)MAGNET_MAX_TRACKER_LEN);
  for (size_t i = 0; i < n; i++)
    if (v[i] <= 0x20 || v[i] >= 0x7f)
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: tr contains a space or a non-printable byte");
  if (m->ntrackers >= MAGNET_MAX_TRACKERS)
    return 0;
  for (size_t i = 0; i < m->ntrackers; i++)
    if (strlen(m->trackers[i]) == n && memcmp(m->trackers[i], v, n) == 0)
      return 0;                        /* duplicate */
  char *t = malloc(n + 1);
  if (t == NULL)
    return UV_ENOMEM;
  memcpy(t, v, n);
  t[n] = '\0';
  m->trackers[m->ntrackers++] = t;
  return 0;
}

/* "host:port" with a DNS-style host name (not all digits and dots) and a
 * port 1..65535. */
static bool magnet_is_hostport(const char *s, size_t n)
{
  const char *colon = memchr(s, ':', n);
  if (colon == NULL || colon == s || (size_t)(colon - s) > 253)
    return false;
  bool alpha = false;
  for (const char *p = s; p < colon; p++) {
    char c = *p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-')
      alpha = true;
    else if (!(c >= '0' && c <= '9') && c != '.')
      return false;
  }
  size_t pl = n - (size_t)(colon + 1 - s);
  if (!alpha || pl == 0 || pl > 5 || colon[1] == '0')
    return false;
  uint32_t port = 0;
  for (size_t i = 0; i < pl; i++) {
    char c = colon[1 + i];
    if (c < '0' || c > '9')
      return false;
    port = port * 10 + (uint32_t)(c - '0');
  }
  return port >= 1 && port <= 65535;
}

static int magnet_pe(struct magnet *m, const uint8_t *v, size_t n, char *err, size_t errlen)
{
  char s[MAGNET_MAX_PEER_LEN + 1];
  struct sockaddr_storage ss;
  if (n == 0 || n > MAGNET_MAX_PEER_LEN || memchr(v, '\0', n))
    return shoal_fail(err, errlen, UV_EINVAL, "magnet: invalid x.pe peer address");
  memcpy(s, v, n);
  s[n] = '\0';
  if (compact_addr_parse(s, &ss) == 0) {
    in_port_t port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port;
    if (port == 0)
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: x.pe peer address has port 0");
    if (m->npeers < MAGNET_MAX_PEERS)
      m->peers[m->npeers++] = ss;
    else
      m->peers_skipped++;
    return 0;
  }
  if (magnet_is_hostport(s, n)) {
    m->peers_skipped++;
    return 0;
  }
  return shoal_fail(err, errlen, UV_EINVAL, "magnet: invalid x.pe peer address");
}

/* A decimal file index: no sign, no leading zeros, < MAGNET_MAX_FILE_INDEX. */
static int magnet_so_num(const uint8_t *p, size_t n, uint32_t *out)
{
  if (n == 0 || n > 6 || (p[0] == '0' && n > 1))
    return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return -1;
    v = v * 10 + (uint32_t)(p[i] - '0');
  }
  if (v >= MAGNET_MAX_FILE_INDEX)
    return -1;
  *out = v;
  return 0;
}

static int magnet_so(struct magnet *m, const uint8_t *v, size_t n, char *err, size_t errlen)
{
  size_t i = 0;
  if (n == 0)
    return shoal_fail(err, errlen, UV_EINVAL, "magnet: empty so");
  for (;;) {
    size_t e = i;
    while (e < n && v[e] != ',')
      e++;
    const uint8_t *dash = memchr(v + i, '-', e - i);
    struct magnet_range r;
    if (dash == NULL) {
      if (magnet_so_num(v + i, e - i, &r.first) != 0)
        return shoal_fail(err, errlen, UV_EINVAL,
                           "magnet: so element %zu is not a file index below %u",
                           m->nso + 1, (unsigned)MAGNET_MAX_FILE_INDEX);
      r.last = r.first;
    } else {
      size_t d = (size_t)(dash - v);
      if (magnet_so_num(v + i, d - i, &r.first) != 0 ||
          magnet_so_num(v + d + 1, e - d - 1, &r.last) != 0)
        return shoal_fail(err, errlen, UV_EINVAL,
                           "magnet: so range %zu is not two file indices below %u",
                           m->nso + 1, (unsigned)MAGNET_MAX_FILE_INDEX);
      if (r.first > r.last)
        return shoal_fail(err, errlen, UV_EINVAL, "magnet: so range %u-%u is reversed",
                           (unsigned)r.first, (unsigned)r.last);
    }
    if (m->nso >= MAGNET_MAX_SO)
      return shoal_fail(err, errlen, UV_EINVAL, "magnet: more than %u so ranges",
                         (unsigned)MAGNET_MAX_SO);
    m->so[m->nso++] = r;
    if (e == n)
      return 0;
    i = e + 1;
  }
}

int magnet_parse(struct magnet *m, const char *uri, char *err, size_t errlen)
{
  memset(m, 0, sizeof *m);
  if (err && errlen)
    err[0] = '\0';
  size_t len = strnlen(uri, (size_t)MAGNET_MAX_LEN + 1);
  if (len > MAGNET_MAX_LEN)
    return shoal_fail(err, errlen, SHOAL_ETOOBIG, "magnet: link longer than %u bytes",
                       (unsigned)MAGNET_MAX_LEN);
  if (len < strlen(MAGNET_PREFIX) || strncasecmp(uri, MAGNET_PREFIX, strlen(MAGNET_PREFIX)) != 0)
    return shoal_fail(err, errlen, UV_EINVAL, "magnet: does not start with \"magnet:?\"");
  uint8_t *v = malloc(len + 1);
  if (v == NULL)
    return UV_ENOMEM;

  struct url_query_iter it = { uri + strlen(MAGNET_PREFIX), len - strlen(MAGNET_PREFIX) };
  const char *k, *val;
  size_t klen, vlen;
  bool have_btih = false, saw_btmh = false, have_dn = false;
  int r = 0;
  while (r == 0 && url_query_next(&it, &k, &klen, &val, &vlen)) {
    bool is_dn = magnet_key_is(k, klen, "dn");
    if (!is_dn && !magnet_key_is(k, klen, "xt") && !magnet_key_is(k, klen, "tr") &&
        !magnet_key_is(k, klen, "x.pe") && !magnet_key_is(k, klen, "so"))
      continue;                        /* unknown parameter */
    long n = magnet_decode(val, vlen, is_dn, v);
    if (n < 0) {
      r = shoal_fail(err, errlen, UV_EINVAL, "magnet: bad %%-escape in %.*s",
                      (int)klen, k);
      break;
    }
    if (magnet_key_is(k, klen, "xt"))
      r = magnet_xt(m, v, (size_t)n, &have_btih, &saw_btmh, err, errlen);
    else if (is_dn)
      r = magnet_dn(m, v, (size_t)n, &have_dn, err, errlen);
    else if (magnet_key_is(k, klen, "tr"))
      r = magnet_tr(m, v, (size_t)n, err, errlen);
    else if (magnet_key_is(k, klen, "x.pe"))
      r = magnet_pe(m, v, (size_t)n, err, errlen);
    else
      r = magnet_so(m, v, (size_t)n, err, errlen);
  }
  free(v);
  if (r == 0 && !have_btih)
    r = saw_btmh ? shoal_fail(err, errlen, UV_EINVAL, "magnet: v2-only magnet links are not supported")
                 : shoal_fail(err, errlen, UV_EINVAL, "magnet: missing xt=urn:btih:<infohash>");
  if (r == UV_ENOMEM)
    shoal_fail(err, errlen, r, "magnet: out of memory");
  if (r)
    magnet_free(m);
  return r;
}

void magnet_free(struct magnet *m)
{
  free(m->name);
  m->name = NULL;
  for (size_t i = 0; i < m->ntrackers; i++)
    free(m->trackers[i]);
  m->ntrackers = 0;
  m->npeers = m->peers_skipped = m->nso = 0;
}

bool magnet_file_selected(const struct magnet *m, uint32_t index)
{
  if (m->nso == 0)
    return true;
  for (size_t i = 0; i < m->nso; i++)
    if (index >= m->so[i].first && index <= m->so[i].last)
      return true;
  return false;
}

char *magnet_build(const uint8_t infohash[20], const char *name,
                   const char *const *trackers, size_t n)
{
  struct buf b;
  char hex[41];
  buf_init(&b, MAGNET_MAX_LEN + 1);
  hash_hex(infohash, 20, hex);
  int r = buf_append_str(&b, "magnet:?xt=urn:btih:");
  if (r == 0)
    r = buf_append_str(&b, hex);
  if (r == 0 && name && name[0]) {
    r = buf_append_str(&b, "&dn=");
    if (r == 0)
      r = url_encode(&b, (const uint8_t *)name, strlen(name));
  }
  for (size_t i = 0; r == 0 && i < n; i++) {
    r = buf_append_str(&b, "&tr=");
    if (r == 0)
      r = url_encode(&b, (const uint8_t *)trackers[i], strlen(trackers[i]));
  }
  char *s = NULL;
  if (r == 0 && b.len <= MAGNET_MAX_LEN)
    s = buf_steal_cstr(&b, NULL);
  buf_free(&b);
  return s;
}
