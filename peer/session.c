/* session.c -- a shoal node: listening socket, incoming handshakes, the torrents, shutdown. */
#include "peer/session.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "peer/engine-int.h"
#include "peer/http_client.h"

/* Azureus-style peer id: client "SH", version 0.1.0, then 12 random characters. */
static void make_peer_id(uint8_t id[20])
{
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  memcpy(id, "-SH0100-", 8);
  for (int i = 8; i < 20; i++)
    id[i] = (uint8_t)alphabet[randombytes_uniform(sizeof alphabet - 1)];
}

/* Incoming connections belong to no torrent until their handshake: their
 * time-outs run here. */
static void on_pending_tick(uv_timer_t *h)
{
  struct session *s = container_of(h, struct session, pending_tick);
  uint64_t now = uv_now(s->loop);
  struct peer *next;
  for (struct peer *p = s->pending; p; p = next) {
    next = p->next;
    peer__tick(p, now);
  }
}

int session_new(uv_loop_t *loop, const struct session_config *cfg, struct session **out)
{
  if (sodium_init() < 0)
    return UV_EIO;
  struct session *s = calloc(1, sizeof *s);
  if (s == NULL)
    return UV_ENOMEM;
  s->loop = loop;
  if (cfg)
    s->cfg = *cfg;
  if (s->cfg.max_peers == 0)
    s->cfg.max_peers = 50;
  if (s->cfg.upload_slots == 0)
    s->cfg.upload_slots = 4;
  if (s->cfg.announce_floor_s == 0)
    s->cfg.announce_floor_s = 30;
  make_peer_id(s->peer_id);
  int r = http_client_new(loop, &s->http);
  if (r < 0) {
    free(s);
    return r;
  }
  uv_timer_init(loop, &s->pending_tick);
  uv_timer_start(&s->pending_tick, on_pending_tick, 1000, 1000);
  uv_timer_init(loop, &s->rl_timer);
  uint64_t now = uv_now(loop);
  ratelimit_init(&s->rl_down, 0, 0, now);
  ratelimit_init(&s->rl_up, 0, 0, now);
  *out = s;
  return 0;
}

uint16_t session_port(const struct session *s) { return s->port; }
const uint8_t *session_peer_id(const struct session *s) { return s->peer_id; }

void session__peer_unpend(struct session *s, struct peer *p)
{
  DLIST_REMOVE(s->pending, p);
  s->npending--;
}

static void on_connection(uv_stream_t *server, int status)
{
  struct session *s = server->data;
  if (status < 0 || s->closing)
    return;
  struct sockaddr_in any = { .sin_family = AF_INET };
  bool room = s->npending < SESSION_MAX_PENDING && !session__full(s);
  struct peer *p = room ? peer__new(s, NULL, (struct sockaddr *)&any, false) : NULL;
  if (p == NULL) {
    /* take the connection off the queue and drop it */
    uv_tcp_t *tmp = malloc(sizeof *tmp);
    if (tmp && uv_tcp_init(s->loop, tmp) == 0) {
      if (uv_accept(server, (uv_stream_t *)tmp) == 0)
        LOG_DEBUG("refused an incoming connection: too many connections");
      uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
    } else {
      free(tmp);
    }
    return;
  }
  DLIST_PUSH(s->pending, p);
  s->npending++;
  int r = peer__accept(p, server);
  if (r < 0)
    peer__close(p, uv_strerror(r));
}

static int parse_bind(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
  memset(ss, 0, sizeof *ss);
  if (strchr(addr, ':'))
    return uv_ip6_addr(addr, port, (struct sockaddr_in6 *)ss);
  return uv_ip4_addr(addr, port, (struct sockaddr_in *)ss);
}

/* Opens listener i on addr:port.  On failure the handle is closed again. */
static int open_listener(struct session *s, unsigned i, const char *addr, uint16_t port)
{
  struct sockaddr_storage ss;
  int r = parse_bind(addr, port, &ss);
  if (r < 0)
    return r;
  if ((r = uv_tcp_init(s->loop, &s->listener[i])) < 0)
    return r;
  s->listener[i].data = s;
  unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  r = uv_tcp_bind(&s->listener[i], (struct sockaddr *)&ss, flags);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&s->listener[i], 128, on_connection);
  if (r < 0)
    uv_close((uv_handle_t *)&s->listener[i], NULL);
  return r;
}

static uint16_t bound_port(uv_tcp_t *h)
{
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len) < 0)
    return 0;
  return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
}

/* With --bind, one socket on that address.  Without, 0.0.0.0 and [::] on
 * the same port (the IPv6 one only if the machine has IPv6). */
int session_listen(struct session *s)
{
  const char *only = s->cfg.bind_addr;
  uint16_t ports[SESSION_PORT_TRIES + 1];
  int nports = 0;
  if (s->cfg.port) {
    ports[nports++] = s->cfg.port;
  } else {
    for (int i = 0; i < SESSION_PORT_TRIES; i++)
      ports[nports++] = (uint16_t)(SESSION_DEFAULT_PORT + i);
    ports[nports++] = 0;   /* any free port */
  }
  int r = UV_EADDRINUSE;
  for (int i = 0; i < nports; i++) {
    r = open_listener(s, 0, only ? only : "0.0.0.0", ports[i]);
    if (r == 0) {
      s->nlisteners = 1;
      s->port = bound_port(&s->listener[0]);
      if (only)
        break;
      int r6 = open_listener(s, 1, "::", s->port);
      if (r6 == 0) {
        s->nlisteners = 2;
        break;
      }
      if (r6 != UV_EADDRINUSE || ports[i] == 0) {
        LOG_DEBUG("no IPv6 listener: %s", uv_strerror(r6));
        break;                 /* no IPv6 here: IPv4 only */
      }
      uv_close((uv_handle_t *)&s->listener[0], NULL);
      s->nlisteners = 0;
      r = r6;
    }
    uv_run(s->loop, UV_RUN_NOWAIT);   /* let failed handles close before reuse */
    if (r != UV_EADDRINUSE)
      return r;
  }
  if (r < 0)
    return r;
  LOG_INFO("listening on %s port %u%s", only ? only : "0.0.0.0", s->port, s->nlisteners == 2 ? " and [::]" : "");
  return 0;
}

int session_add(struct session *s, struct manifest *m, const struct torrent_opts *opts,
                const struct torrent_events *ev, void *ctx, struct torrent **out)
{
  for (struct torrent *t = s->torrents; t; t = t->next) {
    if (memcmp(t->m->infohash, m->infohash, 20) == 0) {
      manifest_free(m);
      return SHOAL_EEXISTS;
    }
  }
  struct torrent *t;
  int r = torrent__new(s, m, opts, ev, ctx, &t);
  if (r < 0)
    return r;
  t->next = s->torrents;
  s->torrents = t;
  *out = t;
  return 0;
}

int session_add_magnet(struct session *s, const uint8_t infohash[20], const char *name,
                       const char *const *trackers, size_t ntrackers, const struct torrent_opts *opts,
                       const struct torrent_events *ev, void *ctx, struct torrent **out)
{
  /* a manifest that knows only its infohash, a name and trackers */
  struct manifest *m = calloc(1, sizeof *m);
  if (m == NULL)
    return UV_ENOMEM;
  memcpy(m->infohash, infohash, 20);
  char hex[41];
  hash_hex(infohash, 20, hex);
  m->name = strdup(name ? name : hex);
  m->tiers = calloc(ntrackers ? ntrackers : 1, sizeof *m->tiers);
  bool ok = m->name && m->tiers;
  for (size_t i = 0; ok && i < ntrackers; i++) {
    if ((m->tiers[i].urls = calloc(1, sizeof(char *))) == NULL) {
      ok = false;
      break;
    }
    m->num_tiers++;                            /* owned by m from here on */
    ok = (m->tiers[i].urls[0] = strdup(trackers[i])) != NULL;
    if (ok)
      m->tiers[i].count = 1;
  }
  if (!ok) {
    manifest_free(m);
    return UV_ENOMEM;
  }
  return session_add(s, m, opts, ev, ctx, out);
}

/* ---- limits ---- */

bool session__full(const struct session *s)
{
  return s->cfg.max_peers_global > 0 && s->npeers + s->npending >= s->cfg.max_peers_global;
}

void session_set_max_peers_global(struct session *s, unsigned n) { s->cfg.max_peers_global = n; }

static void on_rate_retry(uv_timer_t *h)
{
  struct session *s = container_of(h, struct session, rl_timer);
  bool again = false;
  for (struct torrent *t = s->torrents; t; t = t->next) {
    if (!t->rl_wait)
      continue;
    t->rl_wait = false;
    torrent__rate_retry(t);          /* sets rl_wait again if still held back */
    again |= t->rl_wait;
  }
  if (!again)
    uv_timer_stop(&s->rl_timer);
}

void session__rate_wait(struct session *s)
{
  if (!s->closing && !uv_is_active((uv_handle_t *)&s->rl_timer))
    uv_timer_start(&s->rl_timer, on_rate_retry, SESSION_RATE_RETRY_MS, SESSION_RATE_RETRY_MS);
}

void session_set_rate_limits(struct session *s, uint64_t down, uint64_t up)
{
  uint64_t now = uv_now(s->loop);
  ratelimit_set_rate(&s->rl_down, down, 0, now);
  ratelimit_set_rate(&s->rl_up, up, 0, now);
  for (struct torrent *t = s->torrents; t; t = t->next)
    t->rl_wait = true;                 /* a raised limit frees held-back peers */
  session__rate_wait(s);
}

void session_get_stats(const struct session *s, struct session_stats *st)
{
  memset(st, 0, sizeof *st);
  st->pending = s->npending;
  st->peers = s->npeers;
  st->downloaded = s->removed_down;
  st->uploaded = s->removed_up;
  for (const struct torrent *t = s->torrents; t; t = t->next) {
    st->torrents++;
    st->downloaded += t->down.total;
    st->uploaded += t->up.total;
    st->down_rate += t->down.per_s;
    st->up_rate += t->up.per_s;
  }
}

/* ---- removing one torrent ---- */

static void on_torrent_stopped(void *ctx);

static void on_removed(void *arg)
{
  struct torrent *t = arg;
  struct session *s = t->session;
  session_removed_cb cb = t->removed_cb;
  void *ctx = t->removed_ctx;
  struct manifest *m = torrent__take_manifest(t);
  torrent__free(t);
  s->removing--;
  if (cb)
    cb(ctx, m);
  else
    manifest_free(m);
  if (s->closing)
    on_torrent_stopped(s);
}

void session_remove(struct session *s, struct torrent *t, session_removed_cb cb, void *ctx)
{
  struct torrent **pp = &s->torrents;
  while (*pp && *pp != t)
    pp = &(*pp)->next;
  if (*pp == NULL)
    return;
  *pp = t->next;
  t->next = NULL;
  memset(&t->ev, 0, sizeof t->ev);     /* no more events for the program */
  s->removed_down += t->down.total;
  s->removed_up += t->up.total;
  t->removed_cb = cb;
  t->removed_ctx = ctx;
  s->removing++;
  torrent__stop(t, on_removed, t);
}

/* ---- shutdown ---- */

static void close_step(struct session *s)
{
  if (--s->close_pending > 0)
    return;
  struct torrent *next;
  for (struct torrent *t = s->torrents; t; t = next) {
    next = t->next;
    torrent__free(t);
  }
  void (*cb)(void *) = s->closed_cb;
  void *ctx = s->closed_ctx;
  free(s);
  if (cb)
    cb(ctx);
}

static void on_http_closed(void *ctx) { close_step(ctx); }
static void on_pending_tick_closed(uv_handle_t *h) { close_step(container_of(h, struct session, pending_tick)); }
static void on_listener_closed(uv_handle_t *h) { close_step(h->data); }
static void on_rl_timer_closed(uv_handle_t *h) { close_step(container_of(h, struct session, rl_timer)); }

/* The http client closes only after every torrent has sent its `stopped`. */
static void on_torrent_stopped(void *ctx)
{
  struct session *s = ctx;
  if (--s->stopping_torrents == 0)
    http_client_close(s->http, on_http_closed, s);
  close_step(s);
}

void session_close(struct session *s, void (*cb)(void *ctx), void *ctx)
{
  s->closing = true;
  s->closed_cb = cb;
  s->closed_ctx = ctx;
  struct peer *next;
  for (struct peer *p = s->pending; p; p = next) {
    next = p->next;
    peer__close(p, "shutting down");
  }
  unsigned ntorrents = 0;
  for (struct torrent *t = s->torrents; t; t = t->next)
    ntorrents++;
  /* torrents (and those being removed), http, the two timers, listeners */
  s->close_pending = ntorrents + s->removing + 3 + s->nlisteners;
  uv_close((uv_handle_t *)&s->pending_tick, on_pending_tick_closed);
  uv_close((uv_handle_t *)&s->rl_timer, on_rl_timer_closed);
  s->stopping_torrents = ntorrents + s->removing;
  for (unsigned i = 0; i < s->nlisteners; i++)
    uv_close((uv_handle_t *)&s->listener[i], on_listener_closed);
  if (ntorrents + s->removing == 0)
    http_client_close(s->http, on_http_closed, s);
  for (struct torrent *t = s->torrents; t; t = t->next)
    torrent__stop(t, on_torrent_stopped, s);
}
