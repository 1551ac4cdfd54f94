/* udp_tracker.c -- UDP tracker client (BEP 15): URL, packets, reply checks, connection-id cache, transport on a shared uv_udp_t per family. */
#include "peer/udp_tracker.h"

#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/compact.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define UDP_TRACKER_MAX_ADDRS 4          /* resolved addresses kept per request */
#define UDP_TRACKER_MAX_TIMEOUTS 8       /* BEP 15: n goes up to 8 */

/* ---- URL ---- */

static bool host_char(char ch, bool bracketed)
{
  if (bracketed)
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') ||
           ch == ':' || ch == '.';
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         ch == '-' || ch == '.' || ch == '_';
}

int udp_tracker_parse_url(const char *url, char *host, size_t hostcap, uint16_t *port)
{
  if (url == NULL || host == NULL || hostcap == 0 || port == NULL || strncasecmp(url, "udp://", 6) != 0)
    return UV_EINVAL;
  const char *a = url + 6;
  size_t alen = strcspn(a, "/?#");
  if (alen == 0 || memchr(a, '@', alen) != NULL)
    return UV_EINVAL;
  const char *h, *after;
  size_t hlen;
  bool bracketed = a[0] == '[';
  if (bracketed) {
    const char *close = memchr(a, ']', alen);
    if (close == NULL)
      return UV_EINVAL;
    h = a + 1;
    hlen = (size_t)(close - h);
    after = close + 1;
    if (memchr(h, ':', hlen) == NULL)
      return UV_EINVAL;
  } else {
    const char *colon = memchr(a, ':', alen);
    if (colon == NULL)
      return UV_EINVAL;
    h = a;
    hlen = (size_t)(colon - a);
    after = colon;
  }
  if (after >= a + alen || *after != ':')
    return UV_EINVAL;
  if (hlen == 0 || hlen > UDP_TRACKER_MAX_HOST || hlen >= hostcap)
    return UV_EINVAL;
  for (size_t i = 0; i < hlen; i++)
    if (!host_char(h[i], bracketed))
      return UV_EINVAL;
  const char *ps = after + 1;
  size_t plen = (size_t)(a + alen - ps);
  if (plen == 0 || plen > 5)
    return UV_EINVAL;
  uint32_t v = 0;
  for (size_t i = 0; i < plen; i++) {
    if (ps[i] < '0' || ps[i] > '9')
      return UV_EINVAL;
    v = v * 10 + (uint32_t)(ps[i] - '0');
  }
  if (v == 0 || v > 65535)
    return UV_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (uint16_t)v;
  return 0;
}

/* ---- packets ---- */

void udp_tracker_put_connect(uint8_t out[UDP_TRACKER_CONNECT_LEN], uint32_t tid)
{
  put_u64be(out, UDP_TRACKER_PROTOCOL_ID);
  put_u32be(out + 8, UDP_TRACKER_CONNECT);
  put_u32be(out + 12, tid);
}

void udp_tracker_put_announce(uint8_t out[UDP_TRACKER_ANNOUNCE_LEN], uint64_t conn_id, uint32_t tid,
                              const struct udp_tracker_announce_args *a)
{
  put_u64be(out, conn_id);
  put_u32be(out + 8, UDP_TRACKER_ANNOUNCE);
  put_u32be(out + 12, tid);
  memcpy(out + 16, a->infohash, 20);
  memcpy(out + 36, a->peer_id, 20);
  put_u64be(out + 56, a->downloaded);
  put_u64be(out + 64, a->left);
  put_u64be(out + 72, a->uploaded);
  put_u32be(out + 80, (uint32_t)a->event);
  put_u32be(out + 84, 0);                   /* IP address: the packet's source */
  put_u32be(out + 88, a->key);
  put_u32be(out + 92, (uint32_t)a->num_want);
  put_u16be(out + 96, a->port);
}

int udp_tracker_put_scrape(uint8_t *out, size_t cap, uint64_t conn_id, uint32_t tid,
                           const uint8_t (*hashes)[20], size_t n)
{
  if (out == NULL || hashes == NULL || n == 0 || n > UDP_TRACKER_SCRAPE_MAX)
    return UV_EINVAL;
  size_t len = 16 + 20 * n;
  if (cap < len)
    return UV_ENOBUFS;
  put_u64be(out, conn_id);
  put_u32be(out + 8, UDP_TRACKER_SCRAPE);
  put_u32be(out + 12, tid);
  for (size_t i = 0; i < n; i++)
    memcpy(out + 16 + 20 * i, hashes[i], 20);
  return (int)len;
}

static const char *action_name(uint32_t a)
{
  switch (a) {
  case UDP_TRACKER_CONNECT: return "connect";
  case UDP_TRACKER_ANNOUNCE: return "announce";
  case UDP_TRACKER_SCRAPE: return "scrape";
  case UDP_TRACKER_ERROR: return "error";
  default: return "unknown";
  }
}

int udp_tracker_parse_reply(const uint8_t *p, size_t len, uint32_t expect, uint32_t tid, int family,
                            struct udp_tracker_reply *out, char *err, size_t errlen)
{
  if (err && errlen)
    err[0] = '\0';
  if (out == NULL)
    return UV_EINVAL;
  memset(out, 0, sizeof *out);
  if ((family != AF_INET && family != AF_INET6) || expect > UDP_TRACKER_SCRAPE || (p == NULL && len > 0))
    return UV_EINVAL;
  struct cur c = cur_make(p, len);
  uint32_t action, rtid;
  if (cur_u32be(&c, &action) != 0 || cur_u32be(&c, &rtid) != 0)
    return shoal_fail(err, errlen, SHOAL_EPROTO, "reply of %zu bytes is shorter than %d", len, UDP_TRACKER_HDR);
  if (rtid != tid)
    return UDP_TRACKER_OTHER_TID;
  out->action = action;
  out->tid = rtid;
  if (action == UDP_TRACKER_ERROR) {
    out->message = c.p;
    out->message_len = c.len;
    return 0;
  }
  if (action != expect)
    return shoal_fail(err, errlen, SHOAL_EPROTO, "%s reply (action %" PRIu32 ") to a %s request",
                action_name(action), action, action_name(expect));
  switch (expect) {
  case UDP_TRACKER_CONNECT:
    if (cur_u64be(&c, &out->conn_id) != 0)
      return shoal_fail(err, errlen, SHOAL_EPROTO, "connect reply of %zu bytes is shorter than %d", len,
                  UDP_TRACKER_CONNECT_LEN);
    return 0;
  case UDP_TRACKER_ANNOUNCE: {
    if (cur_u32be(&c, &out->interval) != 0 || cur_u32be(&c, &out->leechers) != 0 ||
        cur_u32be(&c, &out->seeders) != 0)
      return shoal_fail(err, errlen, SHOAL_EPROTO, "announce reply of %zu bytes is shorter than %d", len,
                  UDP_TRACKER_ANNOUNCE_HDR);
    size_t esz = family == AF_INET ? COMPACT_V4_LEN : COMPACT_V6_LEN;
    if (c.len % esz != 0)
      return shoal_fail(err, errlen, SHOAL_EPROTO, "peer list of %zu bytes is not a multiple of %zu", c.len, esz);
    out->entry_len = esz;
    out->peers = c.len ? c.p : NULL;
    out->npeers = c.len / esz;
    return 0;
  }
  default: /* UDP_TRACKER_SCRAPE */
    if (c.len % UDP_TRACKER_SCRAPE_ENTRY != 0)
      return shoal_fail(err, errlen, SHOAL_EPROTO, "scrape list of %zu bytes is not a multiple of %d", c.len,
                  UDP_TRACKER_SCRAPE_ENTRY);
    out->scrape = c.len ? c.p : NULL;
    out->nscrape = c.len / UDP_TRACKER_SCRAPE_ENTRY;
    return 0;
  }
}

void udp_tracker_scrape_entry(const struct udp_tracker_reply *r, size_t i, uint32_t *seeders,
                              uint32_t *completed, uint32_t *leechers)
{
  const uint8_t *e = r->scrape + i * UDP_TRACKER_SCRAPE_ENTRY;
  *seeders = get_u32be(e);
  *completed = get_u32be(e + 4);
  *leechers = get_u32be(e + 8);
}

/* ---- connection-id cache ---- */

bool udp_tracker_same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
  if (a->sa_family != b->sa_family)
    return false;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && memcmp(&x->sin_addr, &y->sin_addr, 4) == 0;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 &&
           x->sin6_scope_id == y->sin6_scope_id;
  }
  return false;
}

static size_t addr_len(const struct sockaddr *sa)
{
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

void udp_tracker_cache_init(struct udp_tracker_cache *c)
{
  memset(c, 0, sizeof *c);
}

int udp_tracker_cache_get(struct udp_tracker_cache *c, const struct sockaddr *addr, uint64_t now_ms,
                          uint64_t *conn_id)
{
  for (size_t i = 0; i < UDP_TRACKER_CACHE_SIZE; i++) {
    if (!c->e[i].used || !udp_tracker_same_addr((const struct sockaddr *)&c->e[i].addr, addr))
      continue;
    if (now_ms < c->e[i].got_ms || now_ms - c->e[i].got_ms >= UDP_TRACKER_CONN_TTL_MS) {
      c->e[i].used = false;
      return -1;
    }
    *conn_id = c->e[i].conn_id;
    return 0;
  }
  return -1;
}

void udp_tracker_cache_put(struct udp_tracker_cache *c, const struct sockaddr *addr, uint64_t conn_id,
                           uint64_t now_ms)
{
  if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
    return;
  size_t slot = SIZE_MAX, oldest = 0;
  for (size_t i = 0; i < UDP_TRACKER_CACHE_SIZE; i++) {
    if (c->e[i].used && udp_tracker_same_addr((const struct sockaddr *)&c->e[i].addr, addr)) {
      slot = i;
      break;
    }
    if (!c->e[i].used && slot == SIZE_MAX)
      slot = i;
    if (c->e[i].used && c->e[oldest].used && c->e[i].got_ms < c->e[oldest].got_ms)
      oldest = i;
  }
  if (slot == SIZE_MAX)
    slot = oldest;
  memset(&c->e[slot].addr, 0, sizeof c->e[slot].addr);
  memcpy(&c->e[slot].addr, addr, addr_len(addr));
  c->e[slot].conn_id = conn_id;
  c->e[slot].got_ms = now_ms;
  c->e[slot].used = true;
}

void udp_tracker_cache_drop(struct udp_tracker_cache *c, const struct sockaddr *addr)
{
  for (size_t i = 0; i < UDP_TRACKER_CACHE_SIZE; i++)
    if (c->e[i].used && udp_tracker_same_addr((const struct sockaddr *)&c->e[i].addr, addr))
      c->e[i].used = false;
}

/* ---- transport ---- */

enum req_state { RQ_RESOLVING, RQ_CONNECTING, RQ_ANNOUNCING };

/* A family's socket: not made yet, working, or failed to bind (kept until
 * the client closes, so that the family is not retried at every request). */
enum { SOCK_NONE, SOCK_OPEN, SOCK_FAILED };

struct udp_tracker_req {
  struct udp_tracker_client *c;    /* NULL once cancelled while resolving */
  struct udp_tracker_req *prev, *next;
  uv_getaddrinfo_t gai;
  enum req_state state;
  char host[UDP_TRACKER_MAX_HOST + 1];
  char service[8];
  struct sockaddr_storage addrs[UDP_TRACKER_MAX_ADDRS];
  size_t naddrs, cur;
  uint32_t tid;
  uint64_t conn_id;
  struct udp_tracker_announce_args args;
  unsigned base_ms, max_timeouts, timeouts;
  uint64_t deadline_ms;
  udp_tracker_done_cb cb;
  void *ctx;
};

struct udp_tracker_client {
  uv_loop_t *loop;
  uv_udp_t sock4, sock6;
  int state4, state6;              /* SOCK_* */
  int err4, err6;                  /* why a socket is SOCK_FAILED */
  uv_timer_t timer;
  struct udp_tracker_req *reqs;
  size_t npending;
  struct udp_tracker_cache cache;
  int open_handles;
  bool closing;
  uint8_t rbuf[UDP_TRACKER_MAX_DATAGRAM];
};

static void client_link(struct udp_tracker_client *c, struct udp_tracker_req *r)
{
  DLIST_PUSH(c->reqs, r);
  c->npending++;
}

static void client_unlink(struct udp_tracker_client *c, struct udp_tracker_req *r)
{
  DLIST_REMOVE(c->reqs, r);
  c->npending--;
}

static void on_timer(uv_timer_t *t);

/* Points the client's timer at the earliest deadline. */
static void client_rearm(struct udp_tracker_client *c)
{
  if (c->closing)
    return;
  uint64_t best = UINT64_MAX;
  for (struct udp_tracker_req *r = c->reqs; r; r = r->next)
    if (r->state != RQ_RESOLVING && r->deadline_ms < best)
      best = r->deadline_ms;
  if (best == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = uv_now(c->loop);
  uv_timer_start(&c->timer, on_timer, best > now ? best - now : 0, 0);
}

static uint32_t fresh_tid(const struct udp_tracker_client *c)
{
  for (;;) {
    uint32_t v;
    randombytes_buf(&v, sizeof v);
    bool taken = false;
    for (const struct udp_tracker_req *r = c->reqs; r && !taken; r = r->next)
      taken = r->state != RQ_RESOLVING && r->tid == v;
    if (!taken)
      return v;
  }
}

/* Ends a request: unlinks it, runs its callback, frees it. */
static void finish(struct udp_tracker_req *r, int status, const struct udp_tracker_reply *reply, const char *msg)
{
  struct udp_tracker_client *c = r->c;
  client_unlink(c, r);
  client_rearm(c);
  if (r->cb)
    r->cb(r->ctx, status, status == 0 ? reply : NULL, msg ? msg : "");
  free(r);
}

/* Ends a request whose packet could not be sent. */
static void finish_send_error(struct udp_tracker_req *r, int rc)
{
  char msg[128];
  snprintf(msg, sizeof msg, "cannot send: %s", uv_strerror(rc));
  finish(r, rc, NULL, msg);
}

/* The deadline of the packet sent now: base_ms * 2^timeouts (BEP 15). */
static void set_deadline(struct udp_tracker_req *r, uint64_t now)
{
  r->deadline_ms = now + ((uint64_t)r->base_ms << r->timeouts);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  struct udp_tracker_client *c = h->data;
  (void)suggested;
  b->base = (char *)c->rbuf;
  b->len = sizeof c->rbuf;
}

/* The socket of a family, opened on first use.  NULL and *err on failure. */
static uv_udp_t *client_sock(struct udp_tracker_client *c, int family, int *err)
{
  bool v6 = family == AF_INET6;
  uv_udp_t *s = v6 ? &c->sock6 : &c->sock4;
  int *state = v6 ? &c->state6 : &c->state4;
  int *why = v6 ? &c->err6 : &c->err4;
  if (*state == SOCK_OPEN)
    return s;
  if (*state == SOCK_FAILED) {
    *err = *why;
    return NULL;
  }
  int rc = uv_udp_init(c->loop, s);
  if (rc != 0) {
    *err = rc;
    return NULL;
  }
  s->data = c;
  c->open_handles++;
  struct sockaddr_storage any;
  memset(&any, 0, sizeof any);
  if (v6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&any;
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = in6addr_any;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&any;
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
  }
  rc = uv_udp_bind(s, (const struct sockaddr *)&any, v6 ? UV_UDP_IPV6ONLY : 0);
  if (rc == 0)
    rc = uv_udp_recv_start(s, on_alloc, on_recv);
  if (rc != 0) {
    LOG_INFO("udp tracker: cannot open an %s socket: %s", v6 ? "IPv6" : "IPv4", uv_strerror(rc));
    *state = SOCK_FAILED;
    *why = rc;
    *err = rc;
    return NULL;
  }
  *state = SOCK_OPEN;
  return s;
}

static const struct sockaddr *cur_addr(const struct udp_tracker_req *r)
{
  return (const struct sockaddr *)&r->addrs[r->cur];
}

/* Sends the packet of the current phase to the current address.  0, or the
 * socket error (packets the kernel could not queue count as lost). */
static int transmit(struct udp_tracker_req *r)
{
  struct udp_tracker_client *c = r->c;
  uint8_t pkt[UDP_TRACKER_ANNOUNCE_LEN];
  size_t len;
  if (r->state == RQ_CONNECTING) {
    udp_tracker_put_connect(pkt, r->tid);
    len = UDP_TRACKER_CONNECT_LEN;
  } else {
    udp_tracker_put_announce(pkt, r->conn_id, r->tid, &r->args);
    len = UDP_TRACKER_ANNOUNCE_LEN;
  }
  int err = 0;
  uv_udp_t *s = client_sock(c, cur_addr(r)->sa_family, &err);
  if (s == NULL)
    return err;
  uv_buf_t b = uv_buf_init((char *)pkt, (unsigned)len);
  int rc = uv_udp_try_send(s, &b, 1, cur_addr(r));
  if (LOG_LEVEL_DEBUG <= log_level) {
    char as[96];
    compact_addr_str(cur_addr(r), as, sizeof as);
    LOG_DEBUG("udp tracker: %s to %s (transaction %08" PRIx32 "): %s",
              r->state == RQ_CONNECTING ? "connect" : "announce", as, r->tid,
              rc >= 0 ? "sent" : uv_strerror(rc));
  }
  if (rc >= 0 || rc == UV_EAGAIN || rc == UV_ENOBUFS)
    return 0;
  return rc;
}

/* Starts the exchange with the current address: connect, or announce with a
 * cached connection id; on a socket error tries the other addresses.  May
 * finish the request (then returns true). */
static bool start_exchange(struct udp_tracker_req *r)
{
  struct udp_tracker_client *c = r->c;
  int rc = 0;
  for (size_t tries = 0; tries < r->naddrs; tries++) {
    uint64_t now = uv_now(c->loop);
    if (udp_tracker_cache_get(&c->cache, cur_addr(r), now, &r->conn_id) == 0)
      r->state = RQ_ANNOUNCING;
    else
      r->state = RQ_CONNECTING;
    r->tid = fresh_tid(c);
    set_deadline(r, now);
    rc = transmit(r);
    if (rc == 0) {
      client_rearm(c);
      return false;
    }
    r->cur = (r->cur + 1) % r->naddrs;
  }
  finish_send_error(r, rc);
  return true;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
  struct udp_tracker_req *r = container_of(g, struct udp_tracker_req, gai);
  if (r->c == NULL) {   /* cancelled meanwhile */
    if (res)
      uv_freeaddrinfo(res);
    free(r);
    return;
  }
  if (status != 0) {
    if (res)
      uv_freeaddrinfo(res);
    char msg[UDP_TRACKER_MAX_HOST + 64];
    snprintf(msg, sizeof msg, "cannot resolve %s: %s", r->host, uv_strerror(status));
    finish(r, status, NULL, msg);
    return;
  }
  r->naddrs = 0;
  for (struct addrinfo *ai = res; ai && r->naddrs < UDP_TRACKER_MAX_ADDRS; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addr == NULL ||
        ai->ai_addrlen > sizeof r->addrs[0] || ai->ai_addrlen < addr_len(ai->ai_addr))
      continue;
    bool dup = false;
    for (size_t i = 0; i < r->naddrs && !dup; i++)
      dup = udp_tracker_same_addr((const struct sockaddr *)&r->addrs[i], ai->ai_addr);
    if (dup)
      continue;
    memset(&r->addrs[r->naddrs], 0, sizeof r->addrs[0]);
    memcpy(&r->addrs[r->naddrs], ai->ai_addr, ai->ai_addrlen);
    r->naddrs++;
  }
  if (res)
    uv_freeaddrinfo(res);
  if (r->naddrs == 0) {
    char msg[UDP_TRACKER_MAX_HOST + 64];
    snprintf(msg, sizeof msg, "%s has no IPv4 or IPv6 address", r->host);
    finish(r, UV_EAFNOSUPPORT, NULL, msg);
    return;
  }
  r->cur = 0;
  start_exchange(r);
}

static struct udp_tracker_req *find_tid(struct udp_tracker_client *c, uint32_t tid)
{
  for (struct udp_tracker_req *r = c->reqs; r; r = r->next)
    if (r->state != RQ_RESOLVING && r->tid == tid)
      return r;
  return NULL;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
  struct udp_tracker_client *c = h->data;
  if (c->closing || nread == 0 || addr == NULL)
    return;
  if (nread < 0) {
    LOG_DEBUG("udp tracker: receive: %s", uv_strerror((int)nread));
    return;
  }
  char as[96];
  compact_addr_str(addr, as, sizeof as);
  if (flags & UV_UDP_PARTIAL) {
    LOG_INFO("udp tracker: datagram from %s longer than %d bytes: dropped", as, UDP_TRACKER_MAX_DATAGRAM);
    return;
  }
  const uint8_t *p = (const uint8_t *)buf->base;
  size_t len = (size_t)nread;
  if (len < UDP_TRACKER_HDR) {
    LOG_INFO("udp tracker: %zu-byte datagram from %s: dropped", len, as);
    return;
  }
  uint32_t tid = get_u32be(p + 4);
  struct udp_tracker_req *r = find_tid(c, tid);
  if (r == NULL) {
    LOG_INFO("udp tracker: reply from %s with unknown transaction id %08" PRIx32 ": ignored", as, tid);
    return;
  }
  if (!udp_tracker_same_addr(addr, cur_addr(r))) {
    LOG_INFO("udp tracker: reply for transaction %08" PRIx32 " from %s, not from the tracker: ignored", tid, as);
    return;
  }
  uint32_t expect = r->state == RQ_CONNECTING ? UDP_TRACKER_CONNECT : UDP_TRACKER_ANNOUNCE;
  struct udp_tracker_reply rep;
  char err[SHOAL_ERRLEN];
  int rc = udp_tracker_parse_reply(p, len, expect, r->tid, cur_addr(r)->sa_family, &rep, err, sizeof err);
  if (rc == UDP_TRACKER_OTHER_TID)
    return;
  if (rc != 0) {
    LOG_INFO("udp tracker: bad reply from %s: %s", as, err);
    char msg[SHOAL_ERRLEN + 16];
    snprintf(msg, sizeof msg, "bad reply: %s", err);
    finish(r, SHOAL_EPROTO, NULL, msg);
    return;
  }
  if (rep.action == UDP_TRACKER_ERROR || expect == UDP_TRACKER_ANNOUNCE) {
    finish(r, 0, &rep, "");
    return;
  }
  /* Connected: announce with the new id. */
  uint64_t now = uv_now(c->loop);
  udp_tracker_cache_put(&c->cache, cur_addr(r), rep.conn_id, now);
  r->conn_id = rep.conn_id;
  r->state = RQ_ANNOUNCING;
  r->tid = fresh_tid(c);
  set_deadline(r, now);
  rc = transmit(r);
  if (rc != 0) {
    finish_send_error(r, rc);
    return;
  }
  client_rearm(c);
}

/* One request's deadline passed: retransmit or give up.  True when it was
 * finished (its callback ran). */
static bool on_deadline(struct udp_tracker_req *r)
{
  struct udp_tracker_client *c = r->c;
  r->timeouts++;
  if (r->state == RQ_ANNOUNCING)
    udp_tracker_cache_drop(&c->cache, cur_addr(r));   /* the tracker may have restarted */
  if (r->timeouts >= r->max_timeouts) {
    char as[96], msg[160];
    compact_addr_str(cur_addr(r), as, sizeof as);
    snprintf(msg, sizeof msg, "no answer from %s (%u tries)", as, r->timeouts);
    finish(r, UV_ETIMEDOUT, NULL, msg);
    return true;
  }
  if (r->naddrs > 1 || r->state == RQ_ANNOUNCING) {
    r->cur = (r->cur + 1) % r->naddrs;
    return start_exchange(r);
  }
  /* Same connect again, same transaction id: a late answer still counts. */
  set_deadline(r, uv_now(c->loop));
  int rc = transmit(r);
  if (rc != 0) {
    finish_send_error(r, rc);
    return true;
  }
  return false;
}

static void on_timer(uv_timer_t *t)
{
  struct udp_tracker_client *c = t->data;
  for (;;) {
    if (c->closing)
      return;
    uint64_t now = uv_now(c->loop);
    struct udp_tracker_req *due = NULL;
    for (struct udp_tracker_req *r = c->reqs; r && !due; r = r->next)
      if (r->state != RQ_RESOLVING && r->deadline_ms <= now)
        due = r;
    if (due == NULL)
      break;
    on_deadline(due);
  }
  client_rearm(c);
}

int udp_tracker_client_new(uv_loop_t *loop, struct udp_tracker_client **out)
{
  if (loop == NULL || out == NULL)
    return UV_EINVAL;
  if (sodium_init() < 0)
    return UV_EIO;
  struct udp_tracker_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return UV_ENOMEM;
  c->loop = loop;
  int rc = uv_timer_init(loop, &c->timer);
  if (rc != 0) {
    free(c);
    return rc;
  }
  c->timer.data = c;
  c->open_handles = 1;
  udp_tracker_cache_init(&c->cache);
  *out = c;
  return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
  struct udp_tracker_client *c = h->data;
  if (--c->open_handles == 0)
    free(c);
}

void udp_tracker_client_close(struct udp_tracker_client *c)
{
  if (c == NULL || c->closing)
    return;
  while (c->reqs)
    udp_tracker_cancel(c->reqs);
  c->closing = true;
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  if (c->state4 != SOCK_NONE)
    uv_close((uv_handle_t *)&c->sock4, on_handle_closed);
  if (c->state6 != SOCK_NONE)
    uv_close((uv_handle_t *)&c->sock6, on_handle_closed);
}

int udp_tracker_announce(struct udp_tracker_client *c, const char *url,
                         const struct udp_tracker_announce_args *args, unsigned base_ms,
                         unsigned max_timeouts, udp_tracker_done_cb cb, void *ctx,
                         struct udp_tracker_req **req_out)
{
  if (c == NULL || args == NULL || base_ms == 0 || max_timeouts == 0)
    return UV_EINVAL;
  if (c->closing)
    return UV_ECANCELED;
  if (max_timeouts > UDP_TRACKER_MAX_TIMEOUTS)
    max_timeouts = UDP_TRACKER_MAX_TIMEOUTS;
  struct udp_tracker_req *r = calloc(1, sizeof *r);
  if (r == NULL)
    return UV_ENOMEM;
  uint16_t port;
  if (udp_tracker_parse_url(url, r->host, sizeof r->host, &port) != 0) {
    free(r);
    return UV_EINVAL;
  }
  snprintf(r->service, sizeof r->service, "%u", (unsigned)port);
  r->c = c;
  r->args = *args;
  r->base_ms = base_ms;
  r->max_timeouts = max_timeouts;
  r->cb = cb;
  r->ctx = ctx;
  r->state = RQ_RESOLVING;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  hints.ai_flags = AI_NUMERICSERV;
  client_link(c, r);
  int rc = uv_getaddrinfo(c->loop, &r->gai, on_resolved, r->host, r->service, &hints);
  if (rc != 0) {
    client_unlink(c, r);
    free(r);
    return rc;
  }
  if (req_out)
    *req_out = r;
  return 0;
}

void udp_tracker_cancel(struct udp_tracker_req *r)
{
  if (r == NULL || r->c == NULL)
    return;
  struct udp_tracker_client *c = r->c;
  client_unlink(c, r);
  if (r->state == RQ_RESOLVING) {
    /* The resolver owns r until its callback, which then frees it. */
    r->c = NULL;
    uv_cancel((uv_req_t *)&r->gai);
  } else {
    free(r);
  }
  client_rearm(c);
}

size_t udp_tracker_pending(const struct udp_tracker_client *c)
{
  return c->npending;
}
