/* remote.c -- `shoal remote`: the command-line client of the daemon's control API. */
#include "peer/remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/ratelimit.h"
#include "common/utf8.h"
#include "common/util.h"
#include "peer/remote-int.h"
#include "peer/rpc.h"
#include "peer/rpc_client.h"
#include "peer/settings.h"

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_text[] =
  "usage: shoal remote [--config-dir DIR] [--host ADDR] [--rpc-port N] [--json] COMMAND [ARGS]\n"
  "\n"
  "  add FILE.torrent|MAGNET... [--paused] [-o DIR] [--only LIST] [--sequential]\n"
  "                       add torrents to the daemon (DIR: where the data goes)\n"
  "  add-peer ID|all HOST:PORT   give a torrent the address of a peer\n"
  "  list                 the torrents, in queue order\n"
  "  info ID              everything about one torrent: files, trackers, limits\n"
  "  pause ID|all         stop transferring\n"
  "  resume ID|all        go on (also retries a torrent stopped on an error)\n"
  "  remove ID [--delete-data]   forget a torrent (and delete its files)\n"
  "  verify ID            re-check the data on disk\n"
  "  limits [--down RATE] [--up RATE] [ID]   show or set the global or a torrent's rate limits\n"
  "  set ID [--sequential on|off] [--priority LIST=skip|normal|high]... [--seed-ratio R]\n"
  "         [--seed-idle SECONDS] [--max-peers N] [--queue top|up|down|bottom]\n"
  "  peers ID             the torrent's connected peers\n"
  "  stats                the daemon's totals\n"
  "\n"
  "  ID    the index `list` shows, or 4 or more hex digits of the infohash\n"
  "  RATE  bytes per second: 500000, 500k, 1.5M, 2G (1024-based); 0 = unlimited\n"
  "  LIST  file indexes as `info` shows them, e.g. 0,3-5\n"
  "  R     a ratio (0 = none, -1 = the global setting); SECONDS likewise\n"
  "\n"
  "  --config-dir DIR  where the daemon keeps rpc-token and rpc-endpoint\n"
  "                    (default $XDG_CONFIG_HOME/shoal or ~/.config/shoal)\n"
  "  --host ADDR       the daemon's control address (default from rpc-endpoint, else 127.0.0.1)\n"
  "  --rpc-port N      the daemon's control port (default from rpc-endpoint, else 6880)\n"
  "  --json            print the daemon's answer as JSON\n";

/* ---- small pure helpers ---- */

int remote_parse_rate(const char *s, uint64_t *out)
{
  const uint64_t limit = RATELIMIT_MAX;  /* 2^40 */
  if (s == NULL || *s < '0' || *s > '9')
    return UV_EINVAL;
  const char *p = s;
  uint64_t ip = 0;
  while (*p >= '0' && *p <= '9') {
    if (ip > limit)                       /* can only grow: already too large */
      return UV_EINVAL;
    ip = ip * 10 + (uint64_t)(*p++ - '0');
  }
  uint64_t fnum = 0, fden = 1;            /* the fraction, to 9 digits */
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return UV_EINVAL;
    for (unsigned k = 0; *p >= '0' && *p <= '9'; p++, k++) {
      if (k < 9) {
        fnum = fnum * 10 + (uint64_t)(*p - '0');
        fden *= 10;
      }
    }
  }
  uint64_t mul = 1;
  switch (*p) {
  case 'k': case 'K': mul = 1024; break;
  case 'm': case 'M': mul = 1024 * 1024; break;
  case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
  default: break;
  }
  if (mul > 1) {
    p++;
    if (*p == 'i' || *p == 'I') {         /* "KiB": the B must follow */
      p++;
      if (*p != 'b' && *p != 'B')
        return UV_EINVAL;
    }
  }
  if (*p == 'b' || *p == 'B')
    p++;
  if (p[0] == '/' && (p[1] == 's' || p[1] == 'S'))
    p += 2;
  if (*p != '\0')
    return UV_EINVAL;
  if (ip > limit / mul)
    return UV_EINVAL;
  uint64_t v = ip * mul + fnum * mul / fden;   /* fnum < 10^9, mul <= 2^30: no overflow */
  if (v > limit)
    return UV_EINVAL;
  *out = v;
  return 0;
}

void remote_format_size(uint64_t bytes, char *out, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  if (out == NULL || len == 0)
    return;
  if (bytes < 1024) {
    snprintf(out, len, "%" PRIu64 " B", bytes);
    return;
  }
  double v = (double)bytes;
  unsigned u = 0;
  /* go up while the value would print as 1024.0 or more */
  while (v >= 1023.95 && u + 1 < ARRAY_SIZE(units)) {
    v /= 1024;
    u++;
  }
  snprintf(out, len, "%.1f %s", v, units[u]);
}

/* A rate: "unlimited" for 0 when unlimited_zero, else size + "/s". */
static void format_rate(uint64_t bps, bool unlimited_zero, char *out, size_t len)
{
  if (bps == 0 && unlimited_zero) {
    snprintf(out, len, "unlimited");
    return;
  }
  char s[32];
  remote_format_size(bps, s, sizeof s);
  snprintf(out, len, "%s/s", s);
}

void remote__format_duration(uint64_t s, char *out, size_t len)
{
  if (out == NULL || len == 0)
    return;
  uint64_t d = s / 86400;
  unsigned h = (unsigned)(s / 3600 % 24), m = (unsigned)(s / 60 % 60), sec = (unsigned)(s % 60);
  if (d)
    snprintf(out, len, "%" PRIu64 "d %uh %um %us", d, h, m, sec);
  else if (h)
    snprintf(out, len, "%uh %um %us", h, m, sec);
  else if (m)
    snprintf(out, len, "%um %us", m, sec);
  else
    snprintf(out, len, "%us", sec);
}

bool remote__unsafe_cp(uint32_t cp)
{
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
         cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* At p[0..n) (n > 0): how many input bytes the next character takes
 * (*used) and whether it may be copied as is (else it becomes '?'). */
static bool clean_step(const uint8_t *p, size_t n, size_t *used)
{
  uint32_t cp;
  size_t l = utf8_seq(p, n, &cp);
  if (l == 0) {
    *used = 1;
    return false;
  }
  *used = l;
  return !remote__unsafe_cp(cp);
}

size_t remote__sanitize(const char *in, char *out, size_t outlen)
{
  if (out == NULL || outlen == 0)
    return 0;
  const uint8_t *p = (const uint8_t *)(in ? in : "");
  size_t n = strlen((const char *)p), o = 0;
  for (size_t i = 0; i < n;) {
    size_t used;
    bool keep = clean_step(p + i, n - i, &used);
    size_t w = keep ? used : 1;
    if (w > outlen - 1 - o)
      break;
    if (keep)
      memcpy(out + o, p + i, used);
    else
      out[o] = '?';
    o += w;
    i += used;
  }
  out[o] = '\0';
  return o;
}

void remote__fput_clean(FILE *f, const char *s)
{
  const uint8_t *p = (const uint8_t *)(s ? s : "");
  size_t n = strlen((const char *)p);
  for (size_t i = 0; i < n;) {
    size_t used;
    if (clean_step(p + i, n - i, &used))
      fwrite(p + i, 1, used, f);
    else
      fputc('?', f);
    i += used;
  }
}

int remote__parse_endpoint(const char *text, size_t len, char host[REMOTE_HOST_MAX], uint16_t *port)
{
  if (text == NULL || len > REMOTE_ENDPOINT_MAX)
    return UV_EINVAL;
  const char *sp = memchr(text, ' ', len);
  if (sp == NULL)
    return UV_EINVAL;
  size_t hl = (size_t)(sp - text);
  if (hl == 0 || hl >= REMOTE_HOST_MAX)
    return UV_EINVAL;
  memcpy(host, text, hl);
  host[hl] = '\0';
  if (memchr(host, '\0', hl))
    return UV_EINVAL;
  unsigned char a[16];
  int fam = inet_pton(AF_INET, host, a) == 1 ? AF_INET : inet_pton(AF_INET6, host, a) == 1 ? AF_INET6 : 0;
  if (fam == 0)
    return UV_EINVAL;
  const char *p = sp + 1, *end = text + len;
  uint32_t v = 0;
  unsigned nd = 0;
  while (p < end && *p >= '0' && *p <= '9' && nd < 6) {
    v = v * 10 + (uint32_t)(*p++ - '0');
    nd++;
  }
  if (nd == 0 || nd > 5 || v == 0 || v > 65535)
    return UV_EINVAL;
  if (p + 1 != end || *p != '\n')
    return UV_EINVAL;
  static const unsigned char zero[16];
  if (fam == AF_INET && memcmp(a, zero, 4) == 0)
    snprintf(host, REMOTE_HOST_MAX, "127.0.0.1");
  else if (fam == AF_INET6 && memcmp(a, zero, 16) == 0)
    snprintf(host, REMOTE_HOST_MAX, "::1");
  *port = (uint16_t)v;
  return 0;
}

/* Decimal index at *pp, at most REMOTE_MAX_INDEX. */
static int parse_index(const char **pp, uint32_t *out)
{
  const char *p = *pp;
  uint32_t v = 0;
  if (*p < '0' || *p > '9')
    return UV_EINVAL;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (uint32_t)(*p++ - '0');
    if (v > REMOTE_MAX_INDEX)
      return UV_EINVAL;
  }
  *pp = p;
  *out = v;
  return 0;
}

int remote__parse_index_list(const char *s, struct remote__range *out, size_t max, size_t *n)
{
  size_t k = 0;
  const char *p = s;
  if (p == NULL || *p == '\0')
    return UV_EINVAL;
  for (;;) {
    uint32_t lo, hi;
    if (parse_index(&p, &lo) < 0)
      return UV_EINVAL;
    hi = lo;
    if (*p == '-') {
      p++;
      if (parse_index(&p, &hi) < 0 || hi < lo)
        return UV_EINVAL;
    }
    if (k == max)
      return UV_EINVAL;
    out[k].lo = lo;
    out[k].hi = hi;
    k++;
    if (*p == '\0')
      break;
    if (*p != ',')
      return UV_EINVAL;
    p++;
  }
  *n = k;
  return 0;
}

int remote__add_priorities(json_t *prios, const char *arg, char *err, size_t errlen)
{
  const char *eq = arg ? strrchr(arg, '=') : NULL;
  if (eq == NULL)
    return shoal_fail(err, errlen, UV_EINVAL, "--priority wants LIST=skip|normal|high, e.g. 0,3-5=skip");
  const char *level = eq + 1;
  if (strcmp(level, "skip") && strcmp(level, "normal") && strcmp(level, "high"))
    return shoal_fail(err, errlen, UV_EINVAL, "--priority: the level must be skip, normal or high");
  size_t ll = (size_t)(eq - arg);
  char list[1024];
  if (ll >= sizeof list)
    return shoal_fail(err, errlen, UV_EINVAL, "--priority: the index list is too long");
  memcpy(list, arg, ll);
  list[ll] = '\0';
  struct remote__range r[REMOTE_MAX_RANGES];
  size_t n;
  if (remote__parse_index_list(list, r, REMOTE_MAX_RANGES, &n) < 0)
    return shoal_fail(err, errlen, UV_EINVAL, "--priority: bad file list: want indexes like 0,3-5 (at most %u)",
                      REMOTE_MAX_INDEX);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    for (uint32_t x = r[i].lo;; x++) {
      char key[16];
      snprintf(key, sizeof key, "%" PRIu32, x);
      if (json_object_set_new(prios, key, json_string(level)) < 0) {
        rc = UV_ENOMEM;
        break;
      }
      if (x == r[i].hi)
        break;
    }
  }
  return rc;
}

char *remote__json_text(const json_t *v)
{
  size_t flags = JSON_INDENT(2) | JSON_ENCODE_ANY;
  char *t = json_dumps(v, flags);
  if (t == NULL)
    return NULL;
  size_t n = strlen(t);
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    size_t l = utf8_seq((const uint8_t *)t + i, n - i, &cp);
    if (l == 0)
      l = 1;
    else if (cp != '\n' && cp != 0x7f && remote__unsafe_cp(cp)) {
      free(t);
      if ((t = json_dumps(v, flags | JSON_ENSURE_ASCII)) == NULL)
        return NULL;
      n = strlen(t);
      break;
    }
    i += l;
  }
  /* DEL is never escaped by the encoder; it can only stand inside a string */
  struct buf b;
  buf_init(&b, SIZE_MAX / 2);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = t[i] == 0x7f ? buf_append_str(&b, "\\u007F") : buf_append_u8(&b, (uint8_t)t[i]);
  free(t);
  if (rc == 0)
    rc = buf_append_u8(&b, '\n');
  char *out = rc == 0 ? buf_steal_cstr(&b, NULL) : NULL;
  buf_free(&b);
  return out;
}

/* ---- reading replies: missing or mistyped members are empty / 0 ---- */

static const char *jstr(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static int64_t jint(const json_t *o, const char *k)
{
  const json_t *v = json_object_get(o, k);
  if (json_is_integer(v))
    return (int64_t)json_integer_value(v);
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!(d == d))
      return 0;
    if (d >= 9.2e18)
      return INT64_MAX;
    if (d <= -9.2e18)
      return INT64_MIN;
    return (int64_t)d;
  }
  return 0;
}

static uint64_t juint(const json_t *o, const char *k)
{
  int64_t v = jint(o, k);
  return v < 0 ? 0 : (uint64_t)v;
}

static double jnum(const json_t *o, const char *k)
{
  double d = json_number_value(json_object_get(o, k));
  return isfinite(d) ? d : 0;
}

static bool jbool(const json_t *o, const char *k)
{
  return json_is_true(json_object_get(o, k));
}

static void pct_str(double frac, char *out, size_t len)
{
  if (!(frac >= 0))
    frac = 0;
  if (frac > 1)
    frac = 1;
  snprintf(out, len, "%.1f%%", frac * 100);
}

static void ratio_str(double r, char *out, size_t len)
{
  if (r < 0)
    snprintf(out, len, "-");
  else if (r >= 1e6)
    snprintf(out, len, ">1e6");
  else
    snprintf(out, len, "%.2f", r);
}

/* First 8 characters of a torrent's id, sanitized. */
static void id8(const json_t *o, char out[12])
{
  char id[9];
  snprintf(id, sizeof id, "%s", jstr(o, "id"));
  remote__sanitize(id, out, 12);
}

/* ---- human output ---- */

void remote__print_list(FILE *f, const json_t *result)
{
  const json_t *ts = json_object_get(result, "torrents");
  fprintf(f, "%4s  %-8s  %-11s  %8s  %10s  %12s  %12s  %5s  %6s  %s\n", "IDX", "ID", "STATE", "PROGRESS", "SIZE",
          "DOWN", "UP", "PEERS", "RATIO", "NAME");
  for (size_t i = 0; i < json_array_size(ts); i++) {
    const json_t *t = json_array_get(ts, i);
    char id[12], state[16], pct[16], size[32], down[40], up[40], ratio[16];
    id8(t, id);
    remote__sanitize(jstr(t, "state"), state, sizeof state);
    pct_str(jnum(t, "progress"), pct, sizeof pct);
    remote_format_size(juint(t, "size"), size, sizeof size);
    format_rate(juint(t, "down_rate"), false, down, sizeof down);
    format_rate(juint(t, "up_rate"), false, up, sizeof up);
    ratio_str(jnum(t, "ratio"), ratio, sizeof ratio);
    fprintf(f, "%4" PRId64 "  %-8s  %-11s  %8s  %10s  %12s  %12s  %5" PRIu64 "  %6s  ", jint(t, "index"), id, state,
            pct, size, down, up, juint(t, "peers"), ratio);
    remote__fput_clean(f, jstr(t, "name"));
    const char *e = jstr(t, "error");
    if (*e) {
      fputs(" (error: ", f);
      remote__fput_clean(f, e);
      fputc(')', f);
    }
    fputc('\n', f);
  }
}

static void kv_clean(FILE *f, const char *key, const char *value)
{
  fprintf(f, "%s: ", key);
  remote__fput_clean(f, value);
  fputc('\n', f);
}

static void time_str(int64_t t, char *out, size_t len)
{
  struct tm tm;
  time_t tt = (time_t)t;
  if (t <= 0 || localtime_r(&tt, &tm) == NULL || strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf(out, len, t <= 0 ? "-" : "%" PRId64, t);
}

static const char *yes_no(bool b)
{
  return b ? "yes" : "no";
}

void remote__print_info(FILE *f, const json_t *r)
{
  char a[48], b[48], c[48], d[48];
  kv_clean(f, "name", jstr(r, "name"));
  kv_clean(f, "id", jstr(r, "id"));
  fprintf(f, "index: %" PRId64 "\n", jint(r, "index"));
  kv_clean(f, "state", jstr(r, "state"));
  if (*jstr(r, "error"))
    kv_clean(f, "error", jstr(r, "error"));
  remote_format_size(juint(r, "size"), a, sizeof a);
  remote_format_size(juint(r, "have"), b, sizeof b);
  pct_str(jnum(r, "progress"), c, sizeof c);
  fprintf(f, "size: %s (have %s, %s)\n", a, b, c);
  remote_format_size(juint(r, "piece_length"), a, sizeof a);
  fprintf(f, "pieces: %" PRIu64 " x %s (have %" PRIu64 ")\n", juint(r, "pieces"), a, juint(r, "have_pieces"));
  format_rate(juint(r, "down_rate"), false, a, sizeof a);
  format_rate(juint(r, "up_rate"), false, b, sizeof b);
  fprintf(f, "rates: down %s, up %s\n", a, b);
  fprintf(f, "peers: %" PRIu64 " (seeds %" PRIu64 ")\n", juint(r, "peers"), juint(r, "seeds"));
  remote_format_size(juint(r, "downloaded"), a, sizeof a);
  remote_format_size(juint(r, "uploaded"), b, sizeof b);
  ratio_str(jnum(r, "ratio"), c, sizeof c);
  fprintf(f, "downloaded: %s, uploaded: %s, ratio: %s\n", a, b, c);
  int64_t eta = jint(r, "eta_s");
  if (eta < 0)
    snprintf(a, sizeof a, "unknown");
  else
    remote__format_duration((uint64_t)eta, a, sizeof a);
  fprintf(f, "eta: %s\n", a);
  fprintf(f, "queue position: %" PRId64 "\n", jint(r, "queue_position"));
  fprintf(f, "sequential: %s\n", yes_no(jbool(r, "sequential")));
  fprintf(f, "private: %s\n", yes_no(jbool(r, "private")));
  kv_clean(f, "download dir", jstr(r, "download_dir"));
  time_str(jint(r, "added"), a, sizeof a);
  fprintf(f, "added: %s\n", a);
  if (*jstr(r, "comment"))
    kv_clean(f, "comment", jstr(r, "comment"));
  kv_clean(f, "magnet", jstr(r, "magnet"));

  const json_t *l = json_object_get(r, "limits");
  format_rate(juint(l, "down"), true, a, sizeof a);
  format_rate(juint(l, "up"), true, b, sizeof b);
  double sr = jnum(l, "seed_ratio");
  if (sr < 0)
    snprintf(c, sizeof c, "global");
  else if (sr == 0)
    snprintf(c, sizeof c, "none");
  else
    snprintf(c, sizeof c, "%.2f", sr < 1e6 ? sr : 1e6);
  int64_t si = jint(l, "seed_idle_s");
  if (si < 0)
    snprintf(d, sizeof d, "global");
  else if (si == 0)
    snprintf(d, sizeof d, "none");
  else
    remote__format_duration((uint64_t)si, d, sizeof d);
  fprintf(f, "limits: down %s, up %s, seed ratio %s, seed idle %s, max peers %" PRId64 "\n", a, b, c, d,
          jint(l, "max_peers"));

  const json_t *files = json_object_get(r, "files");
  fprintf(f, "files:\n%5s  %-8s  %8s  %10s  %s\n", "IDX", "PRIORITY", "PROGRESS", "SIZE", "PATH");
  for (size_t i = 0; i < json_array_size(files); i++) {
    const json_t *fe = json_array_get(files, i);
    char prio[16];
    uint64_t size = juint(fe, "size"), have = juint(fe, "have");
    remote__sanitize(jstr(fe, "priority"), prio, sizeof prio);
    pct_str(size ? (double)have / (double)size : 1.0, a, sizeof a);
    remote_format_size(size, b, sizeof b);
    fprintf(f, "%5" PRId64 "  %-8s  %8s  %10s  ", jint(fe, "index"), prio, a, b);
    remote__fput_clean(f, jstr(fe, "path"));
    fputc('\n', f);
  }
  const json_t *trackers = json_object_get(r, "trackers");
  fprintf(f, "trackers:%s\n", json_array_size(trackers) ? "" : " none");
  for (size_t i = 0; i < json_array_size(trackers); i++) {
    const char *u = json_string_value(json_array_get(trackers, i));
    fputs("  ", f);
    remote__fput_clean(f, u ? u : "");
    fputc('\n', f);
  }
}

void remote__print_peers(FILE *f, const json_t *result)
{
  const json_t *ps = json_object_get(result, "peers");
  fprintf(f, "%-47s  %-24s  %-5s  %8s  %12s  %12s\n", "ADDRESS", "CLIENT", "FLAGS", "PROGRESS", "DOWN", "UP");
  for (size_t i = 0; i < json_array_size(ps); i++) {
    const json_t *p = json_array_get(ps, i);
    char addr[64], client[32], flags[8], pct[16], down[40], up[40];
    remote__sanitize(jstr(p, "address"), addr, sizeof addr);
    remote__sanitize(jstr(p, "client"), client, 25);
    size_t k = 0;
    flags[k++] = jbool(p, "outgoing") ? 'O' : 'I';
    if (jbool(p, "seed"))
      flags[k++] = 'S';
    if (jbool(p, "am_interested"))                 /* D: downloading from it; d: it chokes us */
      flags[k++] = jbool(p, "peer_choking") ? 'd' : 'D';
    if (jbool(p, "peer_interested"))               /* U: uploading to it; u: we choke it */
      flags[k++] = jbool(p, "am_choking") ? 'u' : 'U';
    flags[k] = '\0';
    pct_str(jnum(p, "progress"), pct, sizeof pct);
    format_rate(juint(p, "down_rate"), false, down, sizeof down);
    format_rate(juint(p, "up_rate"), false, up, sizeof up);
    fprintf(f, "%-47s  %-24s  %-5s  %8s  %12s  %12s\n", addr, *client ? client : "-", flags, pct, down, up);
  }
}

void remote__print_stats(FILE *f, const json_t *r)
{
  char a[48], b[48];
  kv_clean(f, "version", jstr(r, "version"));
  remote__format_duration(juint(r, "uptime_s"), a, sizeof a);
  fprintf(f, "uptime: %s\n", a);
  fprintf(f, "torrents: %" PRIu64 " (downloading %" PRIu64 ", seeding %" PRIu64 ")\n", juint(r, "torrents"),
          juint(r, "downloading"), juint(r, "seeding"));
  fprintf(f, "peers: %" PRIu64 "\n", juint(r, "peers"));
  format_rate(juint(r, "down_rate"), false, a, sizeof a);
  format_rate(juint(r, "up_rate"), false, b, sizeof b);
  fprintf(f, "rates: down %s, up %s\n", a, b);
  remote_format_size(juint(r, "downloaded"), a, sizeof a);
  remote_format_size(juint(r, "uploaded"), b, sizeof b);
  fprintf(f, "downloaded: %s, uploaded: %s\n", a, b);
  format_rate(juint(r, "rate_down_limit"), true, a, sizeof a);
  format_rate(juint(r, "rate_up_limit"), true, b, sizeof b);
  fprintf(f, "limits: down %s, up %s\n", a, b);
  fprintf(f, "listen port: %" PRIu64 "\n", juint(r, "listen_port"));
  fprintf(f, "open files: %" PRIu64 "\n", juint(r, "open_files"));
  remote_format_size(juint(r, "rss_bytes"), a, sizeof a);
  fprintf(f, "memory: %s\n", a);
  kv_clean(f, "config dir", jstr(r, "config_dir"));
}

/* ---- the command line ---- */

enum cmd { CMD_ADD, CMD_ADD_PEER, CMD_LIST, CMD_INFO, CMD_PAUSE, CMD_RESUME, CMD_REMOVE, CMD_VERIFY, CMD_LIMITS,
           CMD_SET, CMD_PEERS, CMD_STATS, CMD_NONE };

static const struct {
  const char *name;
  const char *method;
  unsigned min_args, max_args;
  const char *args;              /* for the usage message */
} cmds[] = {
  [CMD_ADD] = { "add", "add", 1, UINT_MAX, "FILE.torrent|MAGNET..." },
  [CMD_ADD_PEER] = { "add-peer", "add_peer", 2, 2, "ID|all HOST:PORT" },
  [CMD_LIST] = { "list", "list", 0, 0, "" },
  [CMD_INFO] = { "info", "info", 1, 1, "ID" },
  [CMD_PAUSE] = { "pause", "pause", 1, 1, "ID|all" },
  [CMD_RESUME] = { "resume", "resume", 1, 1, "ID|all" },
  [CMD_REMOVE] = { "remove", "remove", 1, 1, "ID" },
  [CMD_VERIFY] = { "verify", "verify", 1, 1, "ID" },
  [CMD_LIMITS] = { "limits", "limits", 0, 1, "[ID]" },
  [CMD_SET] = { "set", "set", 1, 1, "ID" },
  [CMD_PEERS] = { "peers", "peers", 1, 1, "ID" },
  [CMD_STATS] = { "stats", "stats", 0, 0, "" },
};

enum opt { OPT_CONFIG_DIR, OPT_HOST, OPT_RPC_PORT, OPT_JSON, OPT_HELP, OPT_PAUSED, OPT_OUTPUT, OPT_ONLY,
           OPT_SEQ_FLAG, OPT_DELETE_DATA, OPT_DOWN, OPT_UP, OPT_SEQ, OPT_PRIORITY, OPT_SEED_RATIO, OPT_SEED_IDLE,
           OPT_MAX_PEERS, OPT_QUEUE };

#define CMDS_ALL 0xffffu
#define CMD_BIT(c) (1u << (c))

static const struct {
  const char *name;
  char short_name;
  bool has_arg;
  unsigned cmds;                 /* commands that take it (CMD_BIT) */
  enum opt id;
} opts[] = {
  { "config-dir", 0, true, CMDS_ALL, OPT_CONFIG_DIR },
  { "host", 0, true, CMDS_ALL, OPT_HOST },
  { "rpc-port", 0, true, CMDS_ALL, OPT_RPC_PORT },
  { "json", 0, false, CMDS_ALL, OPT_JSON },
  { "help", 'h', false, CMDS_ALL, OPT_HELP },
  { "paused", 0, false, CMD_BIT(CMD_ADD), OPT_PAUSED },
  { "output", 'o', true, CMD_BIT(CMD_ADD), OPT_OUTPUT },
  { "only", 0, true, CMD_BIT(CMD_ADD), OPT_ONLY },
  { "sequential", 0, false, CMD_BIT(CMD_ADD), OPT_SEQ_FLAG },
  { "delete-data", 0, false, CMD_BIT(CMD_REMOVE), OPT_DELETE_DATA },
  { "down", 0, true, CMD_BIT(CMD_LIMITS), OPT_DOWN },
  { "up", 0, true, CMD_BIT(CMD_LIMITS), OPT_UP },
  { "sequential", 0, true, CMD_BIT(CMD_SET), OPT_SEQ },
  { "priority", 0, true, CMD_BIT(CMD_SET), OPT_PRIORITY },
  { "seed-ratio", 0, true, CMD_BIT(CMD_SET), OPT_SEED_RATIO },
  { "seed-idle", 0, true, CMD_BIT(CMD_SET), OPT_SEED_IDLE },
  { "max-peers", 0, true, CMD_BIT(CMD_SET), OPT_MAX_PEERS },
  { "queue", 0, true, CMD_BIT(CMD_SET), OPT_QUEUE },
};

struct ropts {
  enum cmd cmd;
  const char *config_dir, *host, *rpc_port;
  bool json, help;
  bool paused, seq_flag, delete_data;
  const char *output, *only, *down, *up, *seq, *seed_ratio, *seed_idle, *max_peers, *queue;
  const char **prio;             /* --priority values, nprio of them */
  size_t nprio;
  const char **args;             /* positional arguments after the command */
  size_t nargs;
};

/* Where to reach the daemon, and how to prove who we are. */
struct conn {
  char host[REMOTE_HOST_MAX];
  uint16_t port;
  char token[RPC_TOKEN_HEX + 1];
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("shoal: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n\n", stderr);
  fputs(usage_text, stderr);
  va_end(ap);
  return EXIT_USAGE;
}

static int set_opt(struct ropts *o, enum opt id, const char *v)
{
  switch (id) {
  case OPT_CONFIG_DIR: o->config_dir = v; break;
  case OPT_HOST: o->host = v; break;
  case OPT_RPC_PORT: o->rpc_port = v; break;
  case OPT_JSON: o->json = true; break;
  case OPT_HELP: o->help = true; break;
  case OPT_PAUSED: o->paused = true; break;
  case OPT_OUTPUT: o->output = v; break;
  case OPT_ONLY: o->only = v; break;
  case OPT_SEQ_FLAG: o->seq_flag = true; break;
  case OPT_DELETE_DATA: o->delete_data = true; break;
  case OPT_DOWN: o->down = v; break;
  case OPT_UP: o->up = v; break;
  case OPT_SEQ: o->seq = v; break;
  case OPT_PRIORITY: o->prio[o->nprio++] = v; break;
  case OPT_SEED_RATIO: o->seed_ratio = v; break;
  case OPT_SEED_IDLE: o->seed_idle = v; break;
  case OPT_MAX_PEERS: o->max_peers = v; break;
  case OPT_QUEUE: o->queue = v; break;
  }
  return 0;
}

/* Fills o from argv[1..argc) (o->prio and o->args have room for argc
 * entries).  0, or EXIT_USAGE after saying why. */
static int parse_cmdline(int argc, char **argv, struct ropts *o)
{
  bool only_args = false;
  o->cmd = CMD_NONE;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (only_args || a[0] != '-' || a[1] == '\0') {
      if (o->cmd != CMD_NONE) {
        o->args[o->nargs++] = a;
        continue;
      }
      for (size_t c = 0; c < ARRAY_SIZE(cmds); c++)
        if (!strcmp(a, cmds[c].name))
          o->cmd = (enum cmd)c;
      if (o->cmd == CMD_NONE)
        return usage_error("unknown command '%s'", a);
      continue;
    }
    if (!strcmp(a, "--")) {
      only_args = true;
      continue;
    }
    const char *name = a + 1, *value = NULL;
    size_t nl;
    bool is_long = a[1] == '-';
    if (is_long) {
      name = a + 2;
      const char *eq = strchr(name, '=');
      nl = eq ? (size_t)(eq - name) : strlen(name);
      if (eq)
        value = eq + 1;
    } else {
      nl = 1;
      if (a[2] != '\0')
        value = a + 2;             /* -oDIR */
    }
    int found = -1;
    for (size_t k = 0; k < ARRAY_SIZE(opts) && found < 0; k++) {
      bool allowed = opts[k].cmds == CMDS_ALL || (o->cmd != CMD_NONE && (opts[k].cmds & CMD_BIT(o->cmd)));
      if (!allowed)
        continue;
      if (is_long ? strlen(opts[k].name) == nl && !strncmp(opts[k].name, name, nl)
                  : opts[k].short_name != 0 && opts[k].short_name == name[0])
        found = (int)k;
    }
    if (found < 0) {
      if (o->cmd == CMD_NONE)
        return usage_error("unknown option '%s'", a);
      return usage_error("%s does not take option '%s'", cmds[o->cmd].name, a);
    }
    if (opts[found].has_arg) {
      if (value == NULL) {
        if (i + 1 >= argc)
          return usage_error("option '%s' needs a value", a);
        value = argv[++i];
      }
    } else if (value != NULL) {
      return usage_error("option '%s' takes no value", a);
    }
    set_opt(o, opts[found].id, value);
  }
  return 0;
}

/* A strictly decimal integer in [min, max]. */
static bool parse_int(const char *s, long long min, long long max, long long *out)
{
  if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
    return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

/* --host: a numeric address ("[::1]" and "localhost" accepted). */
static bool parse_host(const char *s, char out[REMOTE_HOST_MAX])
{
  size_t n = strlen(s);
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    s++;
    n -= 2;
  }
  if (n == 0 || n >= REMOTE_HOST_MAX)
    return false;
  memcpy(out, s, n);
  out[n] = '\0';
  if (!strcasecmp(out, "localhost")) {
    snprintf(out, REMOTE_HOST_MAX, "127.0.0.1");
    return true;
  }
  unsigned char a[16];
  return inet_pton(AF_INET, out, a) == 1 || inet_pton(AF_INET6, out, a) == 1;
}

/* Reads a whole small file into b (born with its maximum).  0, a negative
 * errno-style code, or UV_E2BIG when the file is larger than b's maximum. */
static int read_file(const char *path, struct buf *b)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    return UV_EISDIR;
  }
  int rc = 0;
  char chunk[65536];
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = -errno;
      break;
    }
    if (r == 0)
      break;
    if ((rc = buf_append(b, chunk, (size_t)r)) < 0)
      break;
  }
  close(fd);
  return rc;
}

/* Calls method; on failure says why on stderr (after "what: " when what is
 * given) and returns the error. */
static int call(const struct conn *c, const char *what, const char *method, json_t *params, json_t **result)
{
  char err[SHOAL_ERRLEN] = "";
  long status = 0;
  *result = NULL;
  int rc = rpc_client_call(c->host, c->port, c->token, method, params, result, &status, err, sizeof err);
  if (rc == 0) {
    if (*result == NULL)
      *result = json_null();
    return 0;
  }
  fputs("shoal: ", stderr);
  if (what) {
    remote__fput_clean(stderr, what);
    fputs(": ", stderr);
  }
  remote__fput_clean(stderr, err[0] ? err : shoal_strerror(rc));
  fputc('\n', stderr);
  return rc < 0 ? rc : UV_EPROTO;
}

static void print_json(const json_t *v)
{
  char *t = remote__json_text(v);
  if (t == NULL) {
    fputs("shoal: out of memory\n", stderr);
    return;
  }
  fputs(t, stdout);
  free(t);
}

/* "<index> <id8> <name>" of a SUMMARY. */
static void print_summary_line(const char *verb, const json_t *r)
{
  char id[12];
  id8(r, id);
  printf("%s %" PRId64 " %s ", verb, jint(r, "index"), id);
  remote__fput_clean(stdout, jstr(r, "name"));
  fputc('\n', stdout);
}

/* Sets key to the string v in o; UV_EINVAL when v is not UTF-8. */
static int put_str(json_t *o, const char *key, const char *v)
{
  if (!utf8_valid((const uint8_t *)v, strlen(v)))
    return UV_EINVAL;
  return json_object_set_new(o, key, json_string(v)) == 0 ? 0 : UV_ENOMEM;
}

/* The absolute form of dir (relative to the current directory); NULL with
 * the reason on stderr. */
static char *absolute_dir(const char *dir)
{
  if (dir[0] == '/')
    return strdup(dir);
  char *cwd = getcwd(NULL, 0);
  if (cwd == NULL) {
    fprintf(stderr, "shoal: cannot find the current directory: %s\n", strerror(errno));
    return NULL;
  }
  size_t n = strlen(cwd) + 1 + strlen(dir) + 1;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s%s%s", cwd, cwd[strlen(cwd) - 1] == '/' ? "" : "/", dir);
  free(cwd);
  return p;
}

/* Whether --only LIST is a well-formed index list. */
static bool only_list_ok(const char *list)
{
  struct remote__range r[REMOTE_MAX_RANGES];
  size_t n;
  return remote__parse_index_list(list, r, REMOTE_MAX_RANGES, &n) == 0;
}

static int cmd_add(const struct conn *c, const struct ropts *o, const char *download_dir)
{
  bool failed = false;
  if (sodium_init() < 0) {
    fputs("shoal: cannot initialise libsodium\n", stderr);
    return EXIT_RUNTIME;
  }
  for (size_t i = 0; i < o->nargs; i++) {
    const char *arg = o->args[i];
    json_t *params = json_object();
    int rc = params ? 0 : UV_ENOMEM;
    if (rc == 0 && o->paused)
      rc = json_object_set_new(params, "paused", json_true());
    if (rc == 0 && o->seq_flag)
      rc = json_object_set_new(params, "sequential", json_true());
    if (rc == 0 && download_dir)
      rc = put_str(params, "download_dir", download_dir);
    if (rc == 0 && o->only)
      rc = put_str(params, "only", o->only);
    if (rc == 0 && !strncasecmp(arg, "magnet:", 7)) {
      if (put_str(params, "magnet", arg) < 0) {
        fputs("shoal: ", stderr);
        remote__fput_clean(stderr, arg);
        fputs(": not a valid magnet link (not UTF-8)\n", stderr);
        failed = true;
        json_decref(params);
        continue;
      }
    } else if (rc == 0) {
      struct buf b;
      buf_init(&b, REMOTE_MAX_TORRENT_FILE);
      int r = read_file(arg, &b);
      if (r < 0) {
        fputs("shoal: ", stderr);
        remote__fput_clean(stderr, arg);
        if (r == UV_E2BIG)
          fprintf(stderr, ": larger than %u MiB: not a torrent file\n", REMOTE_MAX_TORRENT_FILE >> 20);
        else
          fprintf(stderr, ": %s\n", uv_strerror(r));
        buf_free(&b);
        json_decref(params);
        failed = true;
        continue;
      }
      size_t elen = sodium_base64_encoded_len(b.len, sodium_base64_VARIANT_ORIGINAL);
      char *b64 = malloc(elen);
      if (b64 == NULL) {
        rc = UV_ENOMEM;
      } else {
        sodium_bin2base64(b64, elen, b.p ? b.p : (const unsigned char *)"", b.len, sodium_base64_VARIANT_ORIGINAL);
        rc = json_object_set_new(params, "torrent", json_stringn_nocheck(b64, elen - 1)) == 0 ? 0 : UV_ENOMEM;
        free(b64);
      }
      buf_free(&b);
    }
    if (rc != 0) {
      json_decref(params);
      fputs("shoal: out of memory\n", stderr);
      return EXIT_RUNTIME;
    }
    json_t *result;
    rc = call(c, arg, "add", params, &result);
    json_decref(params);
    if (rc < 0) {
      failed = true;
      if (rc == UV_ECONNREFUSED)
        break;                            /* no daemon: the others would fail the same way */
      continue;
    }
    if (o->json)
      print_json(result);
    else
      print_summary_line("added", result);
    json_decref(result);
  }
  return failed ? EXIT_RUNTIME : EXIT_OK;
}

/* Builds the params of a one-call command; EXIT_USAGE after saying why. */
static int build_params(const struct ropts *o, json_t *p)
{
  const char *name = cmds[o->cmd].name;
  int rc = 0;
  switch (o->cmd) {
  case CMD_ADD_PEER:
    if (put_str(p, "id", o->args[0]) < 0 || put_str(p, "address", o->args[1]) < 0)
      return usage_error("%s: arguments must be UTF-8 text", name);
    break;
  case CMD_INFO: case CMD_PAUSE: case CMD_RESUME: case CMD_VERIFY: case CMD_PEERS:
    if (put_str(p, "id", o->args[0]) < 0)
      return usage_error("%s: ID must be UTF-8 text", name);
    break;
  case CMD_REMOVE:
    if (put_str(p, "id", o->args[0]) < 0)
      return usage_error("%s: ID must be UTF-8 text", name);
    if (o->delete_data)
      rc = json_object_set_new(p, "delete_data", json_true());
    break;
  case CMD_LIMITS: {
    uint64_t v;
    if (o->nargs == 1 && put_str(p, "id", o->args[0]) < 0)
      return usage_error("%s: ID must be UTF-8 text", name);
    if (o->down) {
      if (remote_parse_rate(o->down, &v) < 0)
        return usage_error("bad rate '%s': want bytes/s like 500000, 500k or 1.5M (at most 1T), 0 = unlimited",
                           o->down);
      rc |= json_object_set_new(p, "down", json_integer((json_int_t)v));
    }
    if (o->up) {
      if (remote_parse_rate(o->up, &v) < 0)
        return usage_error("bad rate '%s': want bytes/s like 500000, 500k or 1.5M (at most 1T), 0 = unlimited",
                           o->up);
      rc |= json_object_set_new(p, "up", json_integer((json_int_t)v));
    }
    break;
  }
  case CMD_SET: {
    if (put_str(p, "id", o->args[0]) < 0)
      return usage_error("%s: ID must be UTF-8 text", name);
    if (!o->seq && !o->nprio && !o->seed_ratio && !o->seed_idle && !o->max_peers && !o->queue)
      return usage_error("set: nothing to set (give --sequential, --priority, --seed-ratio, --seed-idle, "
                         "--max-peers or --queue)");
    if (o->seq) {
      bool on = !strcmp(o->seq, "on") || !strcmp(o->seq, "yes") || !strcmp(o->seq, "true") || !strcmp(o->seq, "1");
      bool off = !strcmp(o->seq, "off") || !strcmp(o->seq, "no") || !strcmp(o->seq, "false") || !strcmp(o->seq, "0");
      if (!on && !off)
        return usage_error("--sequential wants on or off, not '%s'", o->seq);
      rc |= json_object_set_new(p, "sequential", json_boolean(on));
    }
    if (o->nprio) {
      json_t *prios = json_object();
      if (prios == NULL)
        return UV_ENOMEM;
      for (size_t i = 0; i < o->nprio; i++) {
        char err[SHOAL_ERRLEN];
        int r = remote__add_priorities(prios, o->prio[i], err, sizeof err);
        if (r == UV_EINVAL) {
          json_decref(prios);
          return usage_error("%s ('%s')", err, o->prio[i]);
        }
        if (r < 0) {
          json_decref(prios);
          return r;
        }
      }
      rc |= json_object_set_new(p, "priorities", prios);
    }
    if (o->seed_ratio) {
      double r;
      char *end;
      if (!strcmp(o->seed_ratio, "none")) {
        r = 0;
      } else if (!strcmp(o->seed_ratio, "global")) {
        r = -1;
      } else {
        errno = 0;
        r = strtod(o->seed_ratio, &end);
        bool num = (o->seed_ratio[0] >= '0' && o->seed_ratio[0] <= '9') || o->seed_ratio[0] == '-';
        if (!num || errno || *end || !isfinite(r) || (r < 0 && r != -1))
          return usage_error("--seed-ratio wants a ratio such as 2 or 1.5 (0 = none, -1 = global), not '%s'",
                             o->seed_ratio);
      }
      rc |= json_object_set_new(p, "seed_ratio", json_real(r));
    }
    if (o->seed_idle) {
      long long v;
      if (!strcmp(o->seed_idle, "none"))
        v = 0;
      else if (!strcmp(o->seed_idle, "global"))
        v = -1;
      else if (!parse_int(o->seed_idle, -1, INT32_MAX, &v))
        return usage_error("--seed-idle wants seconds (0 = none, -1 = global), not '%s'", o->seed_idle);
      rc |= json_object_set_new(p, "seed_idle_s", json_integer(v));
    }
    if (o->max_peers) {
      long long v;
      if (!parse_int(o->max_peers, 0, INT32_MAX, &v))
        return usage_error("--max-peers wants a number, not '%s'", o->max_peers);
      rc |= json_object_set_new(p, "max_peers", json_integer(v));
    }
    if (o->queue) {
      if (strcmp(o->queue, "top") && strcmp(o->queue, "up") && strcmp(o->queue, "down") &&
          strcmp(o->queue, "bottom"))
        return usage_error("--queue wants top, up, down or bottom, not '%s'", o->queue);
      rc |= put_str(p, "queue", o->queue);
    }
    break;
  }
  default:
    break;
  }
  return rc ? UV_ENOMEM : 0;
}

static const char *plural(uint64_t n)
{
  return n == 1 ? "" : "s";
}

/* The human output of a one-call command. */
static void show_result(const struct ropts *o, const json_t *r)
{
  char id[12], a[48], b[48];
  switch (o->cmd) {
  case CMD_ADD_PEER:
    printf("added peer ");
    remote__fput_clean(stdout, o->args[1]);
    printf(" to %" PRIu64 " torrent%s\n", juint(r, "torrents"), plural(juint(r, "torrents")));
    break;
  case CMD_LIST: remote__print_list(stdout, r); break;
  case CMD_INFO: remote__print_info(stdout, r); break;
  case CMD_PEERS: remote__print_peers(stdout, r); break;
  case CMD_STATS: remote__print_stats(stdout, r); break;
  case CMD_PAUSE: case CMD_RESUME:
    printf("%s %" PRIu64 " torrent%s\n", o->cmd == CMD_PAUSE ? "paused" : "resumed", juint(r, "count"),
           plural(juint(r, "count")));
    break;
  case CMD_REMOVE:
    id8(r, id);
    printf("removed %s%s\n", id, o->delete_data ? " and deleted its data" : "");
    break;
  case CMD_VERIFY:
    id8(r, id);
    printf("verifying %s\n", id);
    break;
  case CMD_LIMITS:
    format_rate(juint(r, "down"), true, a, sizeof a);
    format_rate(juint(r, "up"), true, b, sizeof b);
    if (o->nargs == 1) {
      printf("limits of ");
      remote__fput_clean(stdout, o->args[0]);
      printf(": down %s, up %s\n", a, b);
    } else {
      printf("global limits: down %s, up %s\n", a, b);
    }
    break;
  case CMD_SET: print_summary_line("updated", r); break;
  default: break;
  }
}

/* Fills c: the token, then the address (flags, else rpc-endpoint, else
 * defaults).  0 or EXIT_RUNTIME after saying why. */
static int find_daemon(const struct ropts *o, const char *dir, struct conn *c)
{
  char err[SHOAL_ERRLEN] = "";
  int rc = rpc_token_read(dir, c->token, err, sizeof err);
  if (rc == UV_ENOENT) {
    fputs("shoal: no daemon token in ", stderr);
    remote__fput_clean(stderr, dir);
    fputs(" (is the daemon running? start it with `shoal daemon`)\n", stderr);
    return EXIT_RUNTIME;
  }
  if (rc < 0) {
    fputs("shoal: ", stderr);
    if (err[0]) {
      remote__fput_clean(stderr, err);
    } else {
      remote__fput_clean(stderr, dir);
      fprintf(stderr, "/%s: %s", RPC_TOKEN_FILE, shoal_strerror(rc));
    }
    fputc('\n', stderr);
    return EXIT_RUNTIME;
  }
  snprintf(c->host, sizeof c->host, "127.0.0.1");
  c->port = SETTINGS_DEFAULT_RPC_PORT;
  if (!o->host || !o->rpc_port) {
    size_t n = strlen(dir) + 1 + sizeof RPC_ENDPOINT_FILE;
    char *path = malloc(n);
    if (path == NULL)
      return EXIT_RUNTIME;
    snprintf(path, n, "%s/%s", dir, RPC_ENDPOINT_FILE);
    struct buf b;
    buf_init(&b, REMOTE_ENDPOINT_MAX);
    rc = read_file(path, &b);
    if (rc == 0 && remote__parse_endpoint((const char *)b.p, b.len, c->host, &c->port) < 0)
      rc = UV_EINVAL;
    if (rc < 0 && rc != UV_ENOENT) {
      fputs("shoal: ", stderr);
      remote__fput_clean(stderr, path);
      fprintf(stderr, ": %s\n", rc == UV_EINVAL || rc == UV_E2BIG ? "malformed: want \"HOST PORT\" (e.g. 127.0.0.1 6880)"
                                                                : uv_strerror(rc));
      buf_free(&b);
      free(path);
      return EXIT_RUNTIME;
    }
    buf_free(&b);                         /* UV_ENOENT (not started yet, or an older daemon): the defaults stay */
    free(path);
  }
  if (o->host)
    parse_host(o->host, c->host);         /* checked already */
  if (o->rpc_port) {
    long long v = 0;
    parse_int(o->rpc_port, 1, 65535, &v);
    c->port = (uint16_t)v;
  }
  return 0;
}

static int run(struct ropts *o)
{
  if (o->help) {
    fputs(usage_text, stdout);
    return EXIT_OK;
  }
  if (o->cmd == CMD_NONE)
    return usage_error("no command given");
  if (o->nargs < cmds[o->cmd].min_args || o->nargs > cmds[o->cmd].max_args)
    return usage_error("usage: shoal remote %s%s%s", cmds[o->cmd].name, *cmds[o->cmd].args ? " " : "",
                       cmds[o->cmd].args);
  char host[REMOTE_HOST_MAX];
  long long port;
  if (o->host && !parse_host(o->host, host))
    return usage_error("--host wants a numeric address such as 127.0.0.1 or ::1, not '%s'", o->host);
  if (o->rpc_port && !parse_int(o->rpc_port, 1, 65535, &port))
    return usage_error("--rpc-port wants a port number from 1 to 65535, not '%s'", o->rpc_port);
  if (o->config_dir && !*o->config_dir)
    return usage_error("--config-dir wants a folder");

  /* everything the user typed is checked before the daemon is asked */
  char *download_dir = NULL;
  json_t *params = NULL;
  if (o->cmd == CMD_ADD) {
    if (o->output) {
      if (!*o->output)
        return usage_error("-o wants a folder");
      if ((download_dir = absolute_dir(o->output)) == NULL)
        return EXIT_RUNTIME;
    }
    if (o->only && !only_list_ok(o->only)) {
      free(download_dir);
      return usage_error("--only wants file indexes like 0,3-5, not '%s'", o->only);
    }
  } else if (o->cmd != CMD_LIST && o->cmd != CMD_STATS) {
    if ((params = json_object()) == NULL)
      return EXIT_RUNTIME;
    int rc = build_params(o, params);
    if (rc != 0) {
      json_decref(params);
      if (rc == UV_ENOMEM)
        fputs("shoal: out of memory\n", stderr);
      return rc == EXIT_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
    }
  }

  char *dir = NULL;
  int status = EXIT_RUNTIME;
  if (o->config_dir) {
    dir = strdup(o->config_dir);
  } else {
    struct settings_env env;
    settings_env_from_process(&env);
    if (settings_config_dir(&env, &dir) == UV_ENOENT) {
      fputs("shoal: no config folder: set HOME (or XDG_CONFIG_HOME), or give --config-dir\n", stderr);
      goto out;
    }
  }
  if (dir == NULL) {
    fputs("shoal: out of memory\n", stderr);
    goto out;
  }
  struct conn c;
  if (find_daemon(o, dir, &c) != 0)
    goto out;
  if (o->cmd == CMD_ADD) {
    status = cmd_add(&c, o, download_dir);
  } else {
    json_t *result;
    if (call(&c, NULL, cmds[o->cmd].method, params, &result) == 0) {
      if (o->json)
        print_json(result);
      else
        show_result(o, result);
      json_decref(result);
      status = EXIT_OK;
    }
  }
  sodium_memzero(c.token, sizeof c.token);
out:
  free(dir);
  free(download_dir);
  json_decref(params);
  if (fflush(stdout) != 0 && status == EXIT_OK) {
    fprintf(stderr, "shoal: cannot write the output: %s\n", strerror(errno));
    status = EXIT_RUNTIME;
  }
  return status;
}

int remote_main(int argc, char **argv)
{
  struct ropts o;
  memset(&o, 0, sizeof o);
  size_t room = argc > 0 ? (size_t)argc : 1;
  o.prio = calloc(room, sizeof *o.prio);
  o.args = calloc(room, sizeof *o.args);
  int status;
  if (o.prio == NULL || o.args == NULL) {
    fputs("shoal: out of memory\n", stderr);
    status = EXIT_RUNTIME;
  } else {
    status = parse_cmdline(argc, argv, &o);
    if (status == 0)
      status = run(&o);
  }
  free(o.prio);
  free(o.args);
  return status;
}
