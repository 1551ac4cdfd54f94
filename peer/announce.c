/* announce.c -- tracker client: HTTP(S) announce URL and reply parsing, BEP 12 tiers, schedule, loop shell over HTTP and UDP (BEP 15). */
#include "peer/announce.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/bencode.h"
#include "common/compact.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/url.h"
#include "peer/udp_tracker.h"

#define ANNOUNCE_URL_MAX 8192        /* built request URL */
#define ANNOUNCE_STOP_REPLY_MAX (64u << 10)

const char *announce_event_name(enum announce_event ev)
{
  switch (ev) {
  case ANNOUNCE_EVENT_STARTED: return "started";
  case ANNOUNCE_EVENT_COMPLETED: return "completed";
  case ANNOUNCE_EVENT_STOPPED: return "stopped";
  default: return "";
  }
}

/* ---- request URL ---- */

/* The numwant of a request: the asked number capped, 0 for event=stopped. */
static uint32_t numwant_of(const struct announce_params *p, enum announce_event ev)
{
  uint32_t numwant = p->numwant ? p->numwant : ANNOUNCE_DEFAULT_NUMWANT;
  if (numwant > ANNOUNCE_MAX_PEERS)
    numwant = ANNOUNCE_MAX_PEERS;
  return ev == ANNOUNCE_EVENT_STOPPED ? 0 : numwant;
}

int announce_build_url(struct buf *out, const char *base_url, const struct announce_params *p,
                       enum announce_event ev, uint64_t up, uint64_t down, uint64_t left,
                       const uint8_t *trackerid, size_t trackerid_len, const char *key)
{
  if (out == NULL || base_url == NULL || p == NULL)
    return UV_EINVAL;
  size_t n = strcspn(base_url, "#");
  if (n == 0)
    return UV_EINVAL;

  size_t old_len = out->len;
  const char *q = memchr(base_url, '?', n);
  const char *sep = "?";
  if (q != NULL)
    sep = (base_url[n - 1] == '?' || base_url[n - 1] == '&') ? "" : "&";
  uint32_t numwant = numwant_of(p, ev);

  int rc = buf_append(out, base_url, n);
  if (rc == 0) rc = buf_append_str(out, sep);
  if (rc == 0) rc = buf_append_str(out, "info_hash=");
  if (rc == 0) rc = url_encode(out, p->infohash, sizeof p->infohash);
  if (rc == 0) rc = buf_append_str(out, "&peer_id=");
  if (rc == 0) rc = url_encode(out, p->peer_id, sizeof p->peer_id);
  if (rc == 0)
    rc = buf_printf(out, "&port=%u&uploaded=%" PRIu64 "&downloaded=%" PRIu64 "&left=%" PRIu64
                    "&compact=1&no_peer_id=1&numwant=%" PRIu32,
                    (unsigned)p->port, up, down, left, numwant);
  if (rc == 0 && key != NULL && key[0] != '\0') {
    rc = buf_append_str(out, "&key=");
    if (rc == 0) rc = url_encode(out, (const uint8_t *)key, strlen(key));
  }
  if (rc == 0 && ev != ANNOUNCE_EVENT_NONE)
    rc = buf_printf(out, "&event=%s", announce_event_name(ev));
  if (rc == 0 && trackerid != NULL && trackerid_len > 0) {
    rc = buf_append_str(out, "&trackerid=");
    if (rc == 0) rc = url_encode(out, trackerid, trackerid_len);
  }
  if (rc != 0)
    out->len = old_len;
  return rc;
}

/* ---- reply ---- */

/* Copies text for people: valid UTF-8 kept (never cut inside a sequence),
 * control bytes and invalid bytes become '?'. */
static void copy_text(char *dst, size_t cap, const uint8_t *s, size_t n)
{
  size_t o = 0;
  size_t i = 0;
  while (i < n && o + 1 < cap) {
    uint8_t ch = s[i];
    size_t seq = 0;
    if (ch >= 0x20 && ch < 0x7f) {
      dst[o++] = (char)ch;
      i++;
      continue;
    }
    if (ch >= 0xc2 && ch <= 0xdf) seq = 2;
    else if (ch >= 0xe0 && ch <= 0xef) seq = 3;
    else if (ch >= 0xf0 && ch <= 0xf4) seq = 4;
    bool valid = seq > 0 && i + seq <= n;
    for (size_t k = 1; valid && k < seq; k++)
      valid = (s[i + k] & 0xc0) == 0x80;
    if (valid && seq == 3) {
      /* no overlongs, no surrogates */
      if ((ch == 0xe0 && s[i + 1] < 0xa0) || (ch == 0xed && s[i + 1] > 0x9f))
        valid = false;
    }
    if (valid && seq == 4) {
      if ((ch == 0xf0 && s[i + 1] < 0x90) || (ch == 0xf4 && s[i + 1] > 0x8f))
        valid = false;
    }
    if (!valid) {
      dst[o++] = '?';
      i++;
      continue;
    }
    if (o + seq + 1 > cap)
      break;
    memcpy(dst + o, s + i, seq);
    o += seq;
    i += seq;
  }
  dst[o] = '\0';
}

/* Optional non-negative integer key: 0 (*v set, or untouched when absent),
 * or SHOAL_EPROTO with err filled. */
static int opt_seconds(const struct bencode_doc *d, const char *key, int64_t *v, char *err, size_t errlen)
{
  int idx = bencode_dict_get(d, 0, key);
  if (idx < 0)
    return 0;
  int64_t x;
  if (bencode_get_int(d, idx, &x) != 0)
    return shoal_fail(err, errlen, SHOAL_EPROTO, "%s is not an integer", key);
  if (x < 0)
    return shoal_fail(err, errlen, SHOAL_EPROTO, "%s is negative (%" PRId64 ")", key, x);
  *v = x;
  return 0;
}

/* One entry of the dictionary peer list; 0 and *out, or -1 to skip it. */
static int dict_peer(const struct bencode_doc *d, int entry, struct sockaddr_storage *out)
{
  if (d->tok[entry].type != BENCODE_DICT)
    return -1;
  const uint8_t *ip;
  size_t iplen;
  int64_t port;
  if (bencode_get_str(d, bencode_dict_get(d, entry, "ip"), &ip, &iplen) != 0 ||
      bencode_get_int(d, bencode_dict_get(d, entry, "port"), &port) != 0)
    return -1;
  if (iplen == 0 || iplen >= INET6_ADDRSTRLEN || port < 1 || port > 65535 || memchr(ip, 0, iplen))
    return -1;
  char host[INET6_ADDRSTRLEN];
  memcpy(host, ip, iplen);
  host[iplen] = '\0';
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    return 0;
  }
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    return 0;
  }
  return -1;
}

int announce_parse_reply(const uint8_t *body, size_t len, struct announce_reply *out,
                         char *err, size_t errlen)
{
  if (err && errlen)
    err[0] = '\0';
  memset(out, 0, sizeof *out);
  out->interval = -1;
  out->min_interval = -1;
  out->complete = -1;
  out->incomplete = -1;
  if (len > ANNOUNCE_MAX_REPLY)
    return shoal_fail(err, errlen, SHOAL_ETOOBIG, "reply larger than %u bytes", ANNOUNCE_MAX_REPLY);
  if (body == NULL && len > 0)
    return UV_EINVAL;

  static const struct bencode_limits lim = {
    .max_tokens = ANNOUNCE_MAX_TOKENS,
    .max_depth = ANNOUNCE_MAX_DEPTH,
    .allow_trailing = false,
    .require_sorted = false,
  };
  struct bencode_doc d;
  char berr[SHOAL_ERRLEN];
  int rc = bencode_decode(&d, body ? body : (const uint8_t *)"", len, &lim, berr, sizeof berr);
  if (rc != 0) {
    if (rc == UV_ENOMEM)
      return rc;
    return shoal_fail(err, errlen, rc, "reply is not bencode: %s", berr);
  }
  if (d.tok[0].type != BENCODE_DICT) {
    bencode_free(&d);
    return shoal_fail(err, errlen, SHOAL_EPROTO, "reply is not a dictionary");
  }

  const uint8_t *s;
  size_t slen;
  int idx;
  rc = SHOAL_EPROTO;

  idx = bencode_dict_get(&d, 0, "failure reason");
  if (idx >= 0) {
    if (bencode_get_str(&d, idx, &s, &slen) != 0) {
      shoal_fail(err, errlen, rc, "%s is not a string", "failure reason");
      goto fail;
    }
    out->failed = true;
    copy_text(out->failure, sizeof out->failure, s, slen);
  }
  idx = bencode_dict_get(&d, 0, "warning message");
  if (idx >= 0) {
    if (bencode_get_str(&d, idx, &s, &slen) != 0) {
      shoal_fail(err, errlen, rc, "%s is not a string", "warning message");
      goto fail;
    }
    copy_text(out->warning, sizeof out->warning, s, slen);
  }
  if (opt_seconds(&d, "interval", &out->interval, err, errlen) != 0 ||
      opt_seconds(&d, "min interval", &out->min_interval, err, errlen) != 0)
    goto fail;
  idx = bencode_dict_get(&d, 0, "tracker id");
  if (idx >= 0 && bencode_get_str(&d, idx, &s, &slen) == 0 && slen <= ANNOUNCE_MAX_TRACKERID) {
    memcpy(out->tracker_id, s, slen);
    out->tracker_id_len = slen;
  }
  int64_t v;
  if (bencode_get_int(&d, bencode_dict_get(&d, 0, "complete"), &v) == 0 && v >= 0)
    out->complete = v;
  if (bencode_get_int(&d, bencode_dict_get(&d, 0, "incomplete"), &v) == 0 && v >= 0)
    out->incomplete = v;

  if (out->failed) {
    bencode_free(&d);
    return 0;
  }

  /* Peers: check every form first, then size one array for all. */
  int p4 = bencode_dict_get(&d, 0, "peers");
  int p6 = bencode_dict_get(&d, 0, "peers6");
  size_t want = 0;
  if (p4 >= 0) {
    const struct bencode_tok *t = &d.tok[p4];
    if (t->type == BENCODE_STR) {
      if (t->str_len % COMPACT_V4_LEN != 0) {
        shoal_fail(err, errlen, rc, "compact peers length %zu is not a multiple of 6", t->str_len);
        goto fail;
      }
      want += t->str_len / COMPACT_V4_LEN;
    } else if (t->type == BENCODE_LIST) {
      want += t->count;
    } else {
      shoal_fail(err, errlen, rc, "%s is neither a string nor a list", "peers");
      goto fail;
    }
  }
  if (p6 >= 0) {
    const struct bencode_tok *t = &d.tok[p6];
    if (t->type != BENCODE_STR) {
      shoal_fail(err, errlen, rc, "%s is not a string", "peers6");
      goto fail;
    }
    if (t->str_len % COMPACT_V6_LEN != 0) {
      shoal_fail(err, errlen, rc, "compact peers6 length %zu is not a multiple of 18", t->str_len);
      goto fail;
    }
    want += t->str_len / COMPACT_V6_LEN;
  }
  if (want > ANNOUNCE_MAX_PEERS)
    want = ANNOUNCE_MAX_PEERS;
  if (want > 0) {
    out->peers = calloc(want, sizeof *out->peers);
    if (out->peers == NULL) {
      rc = UV_ENOMEM;
      goto fail;
    }
  }
  if (p4 >= 0 && d.tok[p4].type == BENCODE_STR && want > 0) {
    int n = compact_parse(AF_INET, body + d.tok[p4].str_off, d.tok[p4].str_len,
                          out->peers, want);
    if (n < 0) {
      shoal_fail(err, errlen, rc, "bad compact %s", "peers");
      goto fail;
    }
    out->npeers = (size_t)n;
  } else if (p4 >= 0) {
    for (int e = bencode_first(&d, p4); e >= 0 && out->npeers < want; e = bencode_next(&d, p4, e))
      if (dict_peer(&d, e, &out->peers[out->npeers]) == 0)
        out->npeers++;
  }
  if (p6 >= 0 && out->npeers < want) {
    int n = compact_parse(AF_INET6, body + d.tok[p6].str_off, d.tok[p6].str_len,
                          out->peers + out->npeers, want - out->npeers);
    if (n < 0) {
      shoal_fail(err, errlen, rc, "bad compact %s", "peers6");
      goto fail;
    }
    out->npeers += (size_t)n;
  }
  if (out->npeers == 0) {
    free(out->peers);
    out->peers = NULL;
  }
  bencode_free(&d);
  return 0;

fail:
  bencode_free(&d);
  announce_reply_free(out);
  return rc;
}

void announce_reply_free(struct announce_reply *r)
{
  if (r == NULL)
    return;
  free(r->peers);
  r->peers = NULL;
  r->npeers = 0;
}

/* ---- schedule ---- */

static uint32_t floor_of(const struct announce_sched *s)
{
  return s->floor_s ? s->floor_s : ANNOUNCE_FLOOR_S;
}

uint64_t announce_next_delay_ms(const struct announce_sched *s, uint32_t jitter_rand)
{
  uint32_t floor_s = floor_of(s);
  if (s->failures > 0) {
    uint64_t base = ANNOUNCE_BACKOFF_BASE_S < floor_s ? ANNOUNCE_BACKOFF_BASE_S : floor_s;
    uint64_t d = base;
    for (uint32_t i = 1; i < s->failures && d < ANNOUNCE_BACKOFF_MAX_S; i++)
      d *= 2;
    if (d > ANNOUNCE_BACKOFF_MAX_S)
      d = ANNOUNCE_BACKOFF_MAX_S;
    uint64_t ms = d * 1000;
    return ms + jitter_rand % (ms / 5 + 1);
  }
  uint64_t d = s->interval_s ? s->interval_s : ANNOUNCE_DEFAULT_INTERVAL_S;
  if (d > ANNOUNCE_MAX_INTERVAL_S)
    d = ANNOUNCE_MAX_INTERVAL_S;
  uint64_t mi = s->min_interval_s > ANNOUNCE_MAX_INTERVAL_S ? ANNOUNCE_MAX_INTERVAL_S : s->min_interval_s;
  if (d < mi)
    d = mi;
  if (d < floor_s)
    d = floor_s;
  return d * 1000;
}

uint64_t announce_min_gap_ms(const struct announce_sched *s)
{
  uint64_t d = s->min_interval_s > ANNOUNCE_MAX_INTERVAL_S ? ANNOUNCE_MAX_INTERVAL_S : s->min_interval_s;
  uint32_t floor_s = floor_of(s);
  if (d < floor_s)
    d = floor_s;
  return d * 1000;
}

/* ---- tiers ---- */

static bool url_is_udp(const char *url)
{
  return strncasecmp(url, "udp://", 6) == 0;
}

bool announce_url_supported(const char *url)
{
  return url && (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0 ||
                 url_is_udp(url));
}

void announce_tiers_free(struct announce_tiers *t)
{
  if (t == NULL)
    return;
  for (uint32_t i = 0; i < t->ntiers; i++) {
    for (uint32_t j = 0; j < t->tier[i].count; j++)
      free(t->tier[i].urls[j]);
    free(t->tier[i].urls);
  }
  free(t->tier);
  t->tier = NULL;
  t->ntiers = 0;
}

int announce_tiers_init(struct announce_tiers *t, const struct manifest_tier *src, uint32_t nsrc,
                        uint32_t (*rnd)(void *), void *rnd_ctx)
{
  t->tier = NULL;
  t->ntiers = 0;
  if (nsrc == 0 || src == NULL)
    return 0;
  uint32_t ntiers = nsrc < ANNOUNCE_MAX_URLS ? nsrc : ANNOUNCE_MAX_URLS;
  t->tier = calloc(ntiers, sizeof *t->tier);
  if (t->tier == NULL)
    return UV_ENOMEM;
  uint32_t total = 0;
  for (uint32_t i = 0; i < nsrc && total < ANNOUNCE_MAX_URLS; i++) {
    struct announce_tier *dst = &t->tier[t->ntiers];
    uint32_t room = ANNOUNCE_MAX_URLS - total;
    uint32_t n = src[i].count < room ? src[i].count : room;
    if (n == 0)
      continue;
    dst->urls = calloc(n, sizeof *dst->urls);
    if (dst->urls == NULL)
      goto nomem;
    t->ntiers++;
    for (uint32_t j = 0; j < src[i].count && dst->count < n; j++) {
      const char *u = src[i].urls[j];
      if (u == NULL || u[0] == '\0' || strnlen(u, ANNOUNCE_MAX_URL_LEN + 1) > ANNOUNCE_MAX_URL_LEN)
        continue;
      char *copy = strdup(u);
      if (copy == NULL)
        goto nomem;
      dst->urls[dst->count++] = copy;
    }
    if (dst->count == 0) {
      free(dst->urls);
      dst->urls = NULL;
      t->ntiers--;
      continue;
    }
    total += dst->count;
    /* Fisher-Yates */
    for (uint32_t j = dst->count - 1; j > 0 && rnd; j--) {
      uint32_t k = rnd(rnd_ctx) % (j + 1);
      char *tmp = dst->urls[j];
      dst->urls[j] = dst->urls[k];
      dst->urls[k] = tmp;
    }
  }
  return 0;

nomem:
  announce_tiers_free(t);
  return UV_ENOMEM;
}

const char *announce_tiers_url(const struct announce_tiers *t, struct announce_pos pos)
{
  if (pos.tier >= t->ntiers || pos.url >= t->tier[pos.tier].count)
    return NULL;
  return t->tier[pos.tier].urls[pos.url];
}

static int tiers_scan(const struct announce_tiers *t, struct announce_pos from, struct announce_pos *pos)
{
  for (uint32_t i = from.tier; i < t->ntiers; i++) {
    for (uint32_t j = (i == from.tier ? from.url : 0); j < t->tier[i].count; j++) {
      if (announce_url_supported(t->tier[i].urls[j])) {
        pos->tier = i;
        pos->url = j;
        return 0;
      }
    }
  }
  return -1;
}

int announce_tiers_first(const struct announce_tiers *t, struct announce_pos *pos)
{
  struct announce_pos start = { 0, 0 };
  return tiers_scan(t, start, pos);
}

int announce_tiers_next(const struct announce_tiers *t, struct announce_pos *pos)
{
  struct announce_pos start = { pos->tier, pos->url + 1 };
  return tiers_scan(t, start, pos);
}

void announce_tiers_promote(struct announce_tiers *t, struct announce_pos *pos)
{
  if (pos->tier >= t->ntiers || pos->url >= t->tier[pos->tier].count)
    return;
  char **u = t->tier[pos->tier].urls;
  char *moved = u[pos->url];
  memmove(u + 1, u, pos->url * sizeof *u);
  u[0] = moved;
  pos->url = 0;
}

/* ---- the client on the loop ---- */

enum announce_state { ST_NEW, ST_RUNNING, ST_STOPPING, ST_STOPPED };

struct announce {
  uv_loop_t *loop;
  struct http_client *http;
  struct announce_tiers tiers;
  struct announce_params params;
  struct announce_cbs cbs;
  void *ctx;
  uv_timer_t timer;
  enum announce_state state;

  struct http_req *req;          /* the HTTP request in flight, or */
  struct udp_tracker_req *ureq;  /* the UDP one */
  struct udp_tracker_client *udp; /* the loop's shared UDP client, once used */
  struct announce_pos pos;       /* its URL */
  enum announce_event req_event; /* its event */
  uint64_t req_left;             /* the `left` it carried */

  struct announce_sched sched;
  uint32_t key_num;              /* the `key` (over HTTP in 8 hex digits) */
  char *started_url;             /* tracker that acknowledged event=started */
  bool want_completed;
  char *working_url;             /* last tracker that answered */
  uint8_t tracker_id[ANNOUNCE_MAX_TRACKERID];
  size_t tracker_id_len;
  char *tracker_id_url;          /* the tracker that gave tracker_id */
  uint64_t last_ok_ms;
  bool ever_ok;
  int64_t seeders, leechers;
  char status[ANNOUNCE_MAX_TEXT + 32];
  char *status_url;

  void (*stop_cb)(void *ctx);
  void *stop_ctx;
  unsigned busy;                 /* inside user callbacks */
  bool free_pending;
  bool freed;
};

static uint32_t rand32(void *unused)
{
  (void)unused;
  uint32_t v = 0;
  if (uv_random(NULL, NULL, &v, sizeof v, 0, NULL) != 0)
    v = (uint32_t)(uv_hrtime() * 2654435761u);
  return v;
}

static void send_round(struct announce *a);
static void really_free(struct announce *a);

/* One UDP client per loop, shared by the announces of that loop and closed
 * with the last of them.  The list is only touched under the lock; a client
 * is only used from its loop's thread. */
struct udp_share {
  uv_loop_t *loop;
  struct udp_tracker_client *client;
  unsigned refs;
  struct udp_share *next;
};
static struct udp_share *udp_shares;
static pthread_mutex_t udp_shares_lock = PTHREAD_MUTEX_INITIALIZER;

static int udp_acquire(struct announce *a)
{
  if (a->udp != NULL)
    return 0;
  int rc = 0;
  pthread_mutex_lock(&udp_shares_lock);
  struct udp_share *sh = udp_shares;
  while (sh && sh->loop != a->loop)
    sh = sh->next;
  if (sh == NULL) {
    sh = calloc(1, sizeof *sh);
    if (sh == NULL) {
      rc = UV_ENOMEM;
    } else if ((rc = udp_tracker_client_new(a->loop, &sh->client)) != 0) {
      free(sh);
      sh = NULL;
    } else {
      sh->loop = a->loop;
      sh->next = udp_shares;
      udp_shares = sh;
    }
  }
  if (sh != NULL) {
    sh->refs++;
    a->udp = sh->client;
  }
  pthread_mutex_unlock(&udp_shares_lock);
  return rc;
}

static void udp_release(struct announce *a)
{
  if (a->udp == NULL)
    return;
  pthread_mutex_lock(&udp_shares_lock);
  for (struct udp_share **pp = &udp_shares; *pp; pp = &(*pp)->next) {
    struct udp_share *sh = *pp;
    if (sh->client != a->udp)
      continue;
    if (--sh->refs == 0) {
      *pp = sh->next;
      udp_tracker_client_close(sh->client);
      free(sh);
    }
    break;
  }
  pthread_mutex_unlock(&udp_shares_lock);
  a->udp = NULL;
}

static bool in_flight(const struct announce *a)
{
  return a->req != NULL || a->ureq != NULL;
}

/* Cancels the request in flight, if any (no callback runs). */
static void cancel_request(struct announce *a)
{
  if (a->req != NULL) {
    http_cancel(a->req);
    a->req = NULL;
  }
  if (a->ureq != NULL) {
    udp_tracker_cancel(a->ureq);
    a->ureq = NULL;
  }
}

static void set_str(char **dst, const char *s)
{
  if (*dst && s && strcmp(*dst, s) == 0)
    return;
  char *copy = s ? strdup(s) : NULL;
  free(*dst);
  *dst = copy;   /* NULL on allocation failure: treated as "none" */
}

static void set_status(struct announce *a, const char *url, const char *msg)
{
  snprintf(a->status, sizeof a->status, "%s", msg);
  set_str(&a->status_url, url);
}

static void arm(struct announce *a, uint64_t delay_ms);

/* The stop is over: tells the announce_stop caller, who may free a. */
static void stopped(struct announce *a)
{
  a->state = ST_STOPPED;
  if (a->stop_cb)
    a->stop_cb(a->stop_ctx);
}

static void on_timer(uv_timer_t *t)
{
  struct announce *a = container_of(t, struct announce, timer);
  if (a->state == ST_RUNNING)
    send_round(a);
  else if (a->state == ST_STOPPING && !in_flight(a))
    stopped(a);   /* may free a */
}

static void arm(struct announce *a, uint64_t delay_ms)
{
  uv_timer_start(&a->timer, on_timer, delay_ms, 0);
}

static enum announce_event event_for(const struct announce *a, const char *url)
{
  if (a->started_url == NULL || strcmp(a->started_url, url) != 0)
    return ANNOUNCE_EVENT_STARTED;
  if (a->want_completed)
    return ANNOUNCE_EVENT_COMPLETED;
  return ANNOUNCE_EVENT_NONE;
}

static void on_reply(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg);
static void on_stop_reply(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg);
static void on_udp_reply(void *ctx, int status, const struct udp_tracker_reply *u, const char *errmsg);
static void on_udp_stop_reply(void *ctx, int status, const struct udp_tracker_reply *u, const char *errmsg);

static enum udp_tracker_event udp_event(enum announce_event ev)
{
  switch (ev) {
  case ANNOUNCE_EVENT_STARTED: return UDP_TRACKER_EVENT_STARTED;
  case ANNOUNCE_EVENT_COMPLETED: return UDP_TRACKER_EVENT_COMPLETED;
  case ANNOUNCE_EVENT_STOPPED: return UDP_TRACKER_EVENT_STOPPED;
  default: return UDP_TRACKER_EVENT_NONE;
  }
}

/* Starts a UDP announce to url; 0, or an error (nothing in flight). */
static int send_udp(struct announce *a, const char *url, enum announce_event ev, bool stop,
                    uint64_t up, uint64_t down, uint64_t left)
{
  int rc = udp_acquire(a);
  if (rc != 0)
    return rc;
  struct udp_tracker_announce_args args;
  memset(&args, 0, sizeof args);
  memcpy(args.infohash, a->params.infohash, sizeof args.infohash);
  memcpy(args.peer_id, a->params.peer_id, sizeof args.peer_id);
  args.downloaded = down;
  args.left = left;
  args.uploaded = up;
  args.event = udp_event(ev);
  args.key = a->key_num;
  args.num_want = (int32_t)numwant_of(&a->params, ev);
  args.port = a->params.port;
  uint32_t f = floor_of(&a->sched);
  unsigned base_ms = (f < ANNOUNCE_UDP_BASE_S ? f : ANNOUNCE_UDP_BASE_S) * 1000u;
  unsigned tries = ANNOUNCE_UDP_TIMEOUTS;
  if (stop) {
    /* Two tries within ANNOUNCE_STOP_TIMEOUT_MS: base + 2 base. */
    if (base_ms > ANNOUNCE_STOP_TIMEOUT_MS / 3)
      base_ms = ANNOUNCE_STOP_TIMEOUT_MS / 3;
    tries = 2;
  }
  return udp_tracker_announce(a->udp, url, &args, base_ms, tries, stop ? on_udp_stop_reply : on_udp_reply,
                              a, &a->ureq);
}

/* Sends to the URL at a->pos (to the last working tracker for `stop`); 0,
 * or an error (nothing in flight). */
static int send_to(struct announce *a, enum announce_event ev, bool stop)
{
  const char *url = stop ? a->working_url : announce_tiers_url(&a->tiers, a->pos);
  if (url == NULL)
    return UV_EINVAL;
  uint64_t up = 0, down = 0, left = 0;
  if (a->cbs.stats)
    a->cbs.stats(a->ctx, &up, &down, &left);
  LOG_DEBUG("announce: %s event=%s", url, ev ? announce_event_name(ev) : "none");
  int rc;
  if (url_is_udp(url)) {
    rc = send_udp(a, url, ev, stop, up, down, left);
  } else {
    bool same_tracker = a->tracker_id_url && strcmp(a->tracker_id_url, url) == 0;
    char key[9];
    snprintf(key, sizeof key, "%08" PRIx32, a->key_num);
    struct buf b;
    buf_init(&b, ANNOUNCE_URL_MAX);
    rc = announce_build_url(&b, url, &a->params, ev, up, down, left,
                            same_tracker ? a->tracker_id : NULL,
                            same_tracker ? a->tracker_id_len : 0, key);
    if (rc == 0)
      rc = buf_append_u8(&b, 0);
    if (rc == 0)
      rc = http_get(a->http, (const char *)b.p, stop ? ANNOUNCE_STOP_TIMEOUT_MS : ANNOUNCE_TIMEOUT_MS,
                    stop ? ANNOUNCE_STOP_REPLY_MAX : ANNOUNCE_MAX_REPLY, stop ? on_stop_reply : on_reply,
                    a, &a->req);
    buf_free(&b);
  }
  if (rc == 0) {
    a->req_event = ev;
    a->req_left = left;
  }
  return rc;
}

static void round_failed(struct announce *a)
{
  if (a->sched.failures < UINT32_MAX)
    a->sched.failures++;
  uint64_t d = announce_next_delay_ms(&a->sched, rand32(NULL));
  LOG_INFO("announce: every tracker failed (%" PRIu32 " in a row), retrying in %" PRIu64 " s",
           a->sched.failures, d / 1000);
  arm(a, d);
}

/* Tries the URL at a->pos, then the next ones, until one request is in flight. */
static void send_from_pos(struct announce *a)
{
  for (;;) {
    const char *url = announce_tiers_url(&a->tiers, a->pos);
    int rc = send_to(a, event_for(a, url), false);
    if (rc == 0)
      return;
    LOG_INFO("announce: %s: %s", url, shoal_strerror(rc));
    set_status(a, url, shoal_strerror(rc));
    if (announce_tiers_next(&a->tiers, &a->pos) != 0) {
      round_failed(a);
      return;
    }
  }
}

static void send_round(struct announce *a)
{
  if (in_flight(a) || a->state != ST_RUNNING)
    return;
  uv_timer_stop(&a->timer);
  if (announce_tiers_first(&a->tiers, &a->pos) != 0) {
    set_status(a, NULL, "no usable tracker (only http, https and udp are supported)");
    return;
  }
  send_from_pos(a);
}

static void on_success(struct announce *a, const char *url, const struct announce_reply *r)
{
  announce_tiers_promote(&a->tiers, &a->pos);
  set_str(&a->working_url, url);
  if (r->tracker_id_len > 0) {
    memcpy(a->tracker_id, r->tracker_id, r->tracker_id_len);
    a->tracker_id_len = r->tracker_id_len;
    set_str(&a->tracker_id_url, url);
  }
  a->seeders = r->complete;
  a->leechers = r->incomplete;
  if (a->req_event == ANNOUNCE_EVENT_STARTED) {
    set_str(&a->started_url, url);
    if (a->req_left == 0)
      a->want_completed = false;   /* complete when started: no `completed` (BEP 3) */
  } else if (a->req_event == ANNOUNCE_EVENT_COMPLETED) {
    a->want_completed = false;
  }
  a->sched.failures = 0;
  a->sched.interval_s = r->interval > 0 ? (uint32_t)(r->interval > UINT32_MAX ? UINT32_MAX : r->interval) : 0;
  a->sched.min_interval_s = r->min_interval > 0 ? (uint32_t)(r->min_interval > UINT32_MAX ? UINT32_MAX : r->min_interval) : 0;
  a->ever_ok = true;
  a->last_ok_ms = uv_now(a->loop);
  if (a->want_completed)
    arm(a, 0);
  else
    arm(a, announce_next_delay_ms(&a->sched, 0));
  if (r->warning[0])
    snprintf(a->status, sizeof a->status, "warning: %s", r->warning);
  else
    snprintf(a->status, sizeof a->status, "ok");
  set_str(&a->status_url, url);
}

/* The end of a request to the URL at a->pos.  msg NULL: success with r;
 * otherwise the status line of a failure, and the round moves on to the
 * next URL.  r (may be NULL on failure) is freed here. */
static void request_done(struct announce *a, const char *url, const char *msg, struct announce_reply *r)
{
  if (msg != NULL) {
    LOG_INFO("announce: %s: %s", url, msg);
    set_status(a, url, msg);
    if (r != NULL)
      announce_reply_free(r);
    a->busy++;
    if (a->cbs.status)
      a->cbs.status(a->ctx, url, a->status);
    a->busy--;
    if (a->free_pending) {
      really_free(a);
      return;
    }
    if (a->state != ST_RUNNING || in_flight(a))
      return;   /* stopped, or a round restarted from the callback */
    if (announce_tiers_next(&a->tiers, &a->pos) == 0)
      send_from_pos(a);
    else
      round_failed(a);
    return;
  }

  on_success(a, url, r);
  LOG_DEBUG("announce: %s: %s, %zu peers, next in %" PRIu64 " s", url, a->status, r->npeers,
            uv_timer_get_due_in(&a->timer) / 1000);
  a->busy++;
  if (a->cbs.status)
    a->cbs.status(a->ctx, a->status_url ? a->status_url : "", a->status);
  if (!a->free_pending && a->state == ST_RUNNING && a->cbs.peers && r->npeers > 0)
    a->cbs.peers(a->ctx, r->peers, r->npeers);
  a->busy--;
  announce_reply_free(r);
  if (a->free_pending)
    really_free(a);
}

static void on_reply(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg)
{
  struct announce *a = ctx;
  a->req = NULL;
  const char *url = announce_tiers_url(&a->tiers, a->pos);
  struct announce_reply r;
  char perr_buf[SHOAL_ERRLEN];
  char msg[ANNOUNCE_MAX_TEXT + 32];
  bool ok = false;
  bool parsed = false;

  if (status != 0) {
    snprintf(msg, sizeof msg, "%s", errmsg && errmsg[0] ? errmsg : shoal_strerror(status));
  } else {
    int rc = announce_parse_reply(body, len, &r, perr_buf, sizeof perr_buf);
    parsed = rc == 0;
    if (parsed && r.failed)
      snprintf(msg, sizeof msg, "failure: %s", r.failure);
    else if (code < 200 || code > 299)
      snprintf(msg, sizeof msg, "HTTP %ld", code);
    else if (!parsed)
      snprintf(msg, sizeof msg, "bad reply: %s", perr_buf);
    else
      ok = true;
  }
  request_done(a, url, ok ? NULL : msg, parsed ? &r : NULL);
}

/* A UDP tracker's answer as a parsed reply: 0, or UV_ENOMEM. */
static int udp_to_reply(const struct udp_tracker_reply *u, struct announce_reply *r)
{
  memset(r, 0, sizeof *r);
  r->interval = u->interval > 0 ? (int64_t)u->interval : -1;
  r->min_interval = -1;
  r->complete = -1;
  r->incomplete = -1;
  if (u->action == UDP_TRACKER_ERROR) {
    r->failed = true;
    copy_text(r->failure, sizeof r->failure, u->message, u->message_len);
    return 0;
  }
  r->complete = u->seeders;
  r->incomplete = u->leechers;
  size_t n = u->npeers < ANNOUNCE_MAX_PEERS ? u->npeers : ANNOUNCE_MAX_PEERS;
  if (n == 0)
    return 0;
  r->peers = calloc(n, sizeof *r->peers);
  if (r->peers == NULL)
    return UV_ENOMEM;
  int got = compact_parse(u->entry_len == COMPACT_V6_LEN ? AF_INET6 : AF_INET, u->peers, n * u->entry_len,
                          r->peers, n);
  r->npeers = got > 0 ? (size_t)got : 0;
  if (r->npeers == 0) {
    free(r->peers);
    r->peers = NULL;
  }
  return 0;
}

static void on_udp_reply(void *ctx, int status, const struct udp_tracker_reply *u, const char *errmsg)
{
  struct announce *a = ctx;
  a->ureq = NULL;
  const char *url = announce_tiers_url(&a->tiers, a->pos);
  char msg[ANNOUNCE_MAX_TEXT + 32];
  struct announce_reply r;
  if (status != 0) {
    snprintf(msg, sizeof msg, "%s", errmsg && errmsg[0] ? errmsg : shoal_strerror(status));
    request_done(a, url, msg, NULL);
    return;
  }
  if (udp_to_reply(u, &r) != 0) {
    request_done(a, url, shoal_strerror(UV_ENOMEM), NULL);
    return;
  }
  if (r.failed) {
    snprintf(msg, sizeof msg, "failure: %s", r.failure);
    request_done(a, url, msg, &r);
    return;
  }
  request_done(a, url, NULL, &r);
}

static void on_udp_stop_reply(void *ctx, int status, const struct udp_tracker_reply *u, const char *errmsg)
{
  struct announce *a = ctx;
  a->ureq = NULL;
  if (status != 0)
    LOG_INFO("announce: stopped: %s: %s", a->working_url, errmsg);
  else if (u->action == UDP_TRACKER_ERROR)
    LOG_INFO("announce: stopped: %s: tracker error", a->working_url);
  else
    LOG_DEBUG("announce: stopped: %s: ok", a->working_url);
  stopped(a);   /* may free a */
}

static void on_stop_reply(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg)
{
  struct announce *a = ctx;
  a->req = NULL;
  (void)body;
  (void)len;
  if (status != 0)
    LOG_INFO("announce: stopped: %s: %s", a->working_url, errmsg);
  else
    LOG_DEBUG("announce: stopped: %s: HTTP %ld", a->working_url, code);
  stopped(a);   /* may free a */
}

int announce_new(uv_loop_t *loop, struct http_client *http,
                 const struct manifest_tier *tiers, uint32_t ntiers,
                 const struct announce_params *params, const struct announce_cbs *cbs,
                 void *ctx, struct announce **out)
{
  if (loop == NULL || http == NULL || params == NULL || out == NULL)
    return UV_EINVAL;
  struct announce *a = calloc(1, sizeof *a);
  if (a == NULL)
    return UV_ENOMEM;
  int rc = announce_tiers_init(&a->tiers, tiers, ntiers, rand32, NULL);
  if (rc != 0) {
    free(a);
    return rc;
  }
  rc = uv_timer_init(loop, &a->timer);
  if (rc != 0) {
    announce_tiers_free(&a->tiers);
    free(a);
    return rc;
  }
  a->loop = loop;
  a->http = http;
  a->params = *params;
  if (cbs)
    a->cbs = *cbs;
  a->ctx = ctx;
  a->sched.floor_s = params->min_interval_floor_s;
  a->seeders = a->leechers = -1;
  a->key_num = rand32(NULL);
  for (uint32_t i = 0; i < a->tiers.ntiers; i++)
    for (uint32_t j = 0; j < a->tiers.tier[i].count; j++)
      if (!announce_url_supported(a->tiers.tier[i].urls[j]))
        LOG_INFO("announce: skipping %s (only http, https and udp trackers)", a->tiers.tier[i].urls[j]);
  *out = a;
  return 0;
}

void announce_start(struct announce *a)
{
  if (a == NULL || a->state != ST_NEW)
    return;
  a->state = ST_RUNNING;
  send_round(a);
}

void announce_completed(struct announce *a)
{
  if (a == NULL || a->state == ST_STOPPING || a->state == ST_STOPPED)
    return;
  a->want_completed = true;
  if (a->state != ST_RUNNING)
    return;
  if (in_flight(a)) {
    if (a->req_event != ANNOUNCE_EVENT_NONE)
      return;   /* started/completed in flight: completed follows its success */
    cancel_request(a);
  }
  if (!a->busy)
    send_round(a);
  else
    arm(a, 0);
}

void announce_now(struct announce *a)
{
  if (a == NULL || a->state != ST_RUNNING || in_flight(a) || a->sched.failures > 0)
    return;
  uint64_t delay = 0;
  if (a->ever_ok) {
    uint64_t now = uv_now(a->loop);
    uint64_t earliest = a->last_ok_ms + announce_min_gap_ms(&a->sched);
    delay = earliest > now ? earliest - now : 0;
  }
  if (uv_is_active((uv_handle_t *)&a->timer) && uv_timer_get_due_in(&a->timer) <= delay)
    return;
  arm(a, delay);
}

void announce_stop(struct announce *a, void (*done)(void *ctx), void *ctx)
{
  if (a == NULL || a->state == ST_STOPPING || a->state == ST_STOPPED)
    return;
  bool was_running = a->state == ST_RUNNING;
  a->state = ST_STOPPING;
  a->stop_cb = done;
  a->stop_ctx = ctx;
  uv_timer_stop(&a->timer);
  cancel_request(a);
  if (was_running && a->working_url != NULL && send_to(a, ANNOUNCE_EVENT_STOPPED, true) == 0)
    return;
  arm(a, 0);   /* done at the next iteration */
}

static void on_closed(uv_handle_t *h)
{
  struct announce *a = container_of((uv_timer_t *)h, struct announce, timer);
  announce_tiers_free(&a->tiers);
  free(a->started_url);
  free(a->working_url);
  free(a->tracker_id_url);
  free(a->status_url);
  free(a);
}

static void really_free(struct announce *a)
{
  if (a->freed)
    return;
  a->freed = true;
  cancel_request(a);
  udp_release(a);
  a->state = ST_STOPPED;
  a->stop_cb = NULL;
  uv_close((uv_handle_t *)&a->timer, on_closed);
}

void announce_free(struct announce *a)
{
  if (a == NULL || a->freed || a->free_pending)
    return;
  if (a->busy) {
    a->free_pending = true;
    a->stop_cb = NULL;
    cancel_request(a);
    a->state = ST_STOPPED;
    return;
  }
  really_free(a);
}

void announce_get_info(const struct announce *a, struct announce_info *out)
{
  out->status = a->status;
  out->status_url = a->status_url ? a->status_url : "";
  out->working_url = a->working_url;
  out->seeders = a->seeders;
  out->leechers = a->leechers;
  out->failures = a->sched.failures;
  out->next_in_ms = (a->state == ST_RUNNING && uv_is_active((const uv_handle_t *)&a->timer))
                        ? uv_timer_get_due_in(&a->timer) : 0;
}
