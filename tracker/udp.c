/* udp.c -- the tracker's UDP side (BEP 15): keyed-hash connection ids, connect/announce/scrape answers (pure), the uv_udp_t server. */
#include "tracker/udp.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/compact.h"
#include "common/err.h"
#include "common/log.h"

enum {
  TRACKERUDP_CONNECT = 0,
  TRACKERUDP_ANNOUNCE = 1,
  TRACKERUDP_SCRAPE = 2,
  TRACKERUDP_ERROR = 3,
};

_Static_assert(TRACKERUDP_SECRET_LEN == crypto_shorthash_KEYBYTES, "secret size");
_Static_assert(crypto_shorthash_BYTES == 8, "connection id size");

void trackerudp_config_default(struct trackerudp_config *cfg)
{
  cfg->interval = 1800;
}

/* ---- connection ids ---- */

/* The address as stored in the swarms: family and IP of the client, the given port. */
static void trackerudp_peer_addr(uint8_t family, const uint8_t ip[16], uint16_t port, struct sockaddr_storage *ss)
{
  memset(ss, 0, sizeof *ss);
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, ip, 4);
    sin->sin_port = htons(port);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, ip, 16);
    sin6->sin6_port = htons(port);
  }
}

void trackerudp_secrets_init(struct trackerudp_secrets *s, const uint8_t key[TRACKERUDP_SECRET_LEN],
                             uint64_t now)
{
  memset(s, 0, sizeof *s);
  memcpy(s->cur, key, TRACKERUDP_SECRET_LEN);
  s->rotated_at = now;
}

bool trackerudp_secrets_due(const struct trackerudp_secrets *s, uint64_t now)
{
  return now < s->rotated_at || now - s->rotated_at >= TRACKERUDP_ROTATE_S;
}

void trackerudp_secrets_rotate(struct trackerudp_secrets *s, const uint8_t fresh[TRACKERUDP_SECRET_LEN],
                               uint64_t now)
{
  bool stale = now < s->rotated_at || now - s->rotated_at >= 2 * (uint64_t)TRACKERUDP_ROTATE_S;
  memcpy(s->prev, s->cur, TRACKERUDP_SECRET_LEN);
  s->have_prev = !stale;
  memcpy(s->cur, fresh, TRACKERUDP_SECRET_LEN);
  s->rotated_at = now;
}

static uint64_t trackerudp_hash(const uint8_t key[TRACKERUDP_SECRET_LEN], uint8_t family, const uint8_t ip[16],
                                uint16_t port)
{
  uint8_t in[1 + 16 + 2], h[crypto_shorthash_BYTES];
  in[0] = family;
  memcpy(in + 1, ip, 16);
  put_u16be(in + 17, port);
  crypto_shorthash(h, in, sizeof in, key);
  return get_u64be(h);
}

uint64_t trackerudp_conn_id(const struct trackerudp_secrets *s, const struct sockaddr *client)
{
  uint8_t fam, ip[16];
  uint16_t port;
  if (compact_addr_split(client, &fam, ip, &port) != 0)
    return 0;
  return trackerudp_hash(s->cur, fam, ip, port);
}

static bool trackerudp_id_eq(uint64_t a, uint64_t b)
{
  uint8_t x[8], y[8];
  put_u64be(x, a);
  put_u64be(y, b);
  return sodium_memcmp(x, y, sizeof x) == 0;
}

bool trackerudp_conn_id_ok(const struct trackerudp_secrets *s, const struct sockaddr *client, uint64_t id)
{
  uint8_t fam, ip[16];
  uint16_t port;
  if (compact_addr_split(client, &fam, ip, &port) != 0)
    return false;
  bool ok = trackerudp_id_eq(trackerudp_hash(s->cur, fam, ip, port), id);
  if (s->have_prev)
    ok |= trackerudp_id_eq(trackerudp_hash(s->prev, fam, ip, port), id);
  return ok;
}

/* ---- answers ---- */

static int trackerudp_error(struct buf *out, uint32_t tid, const char *msg)
{
  int r = buf_append_u32be(out, TRACKERUDP_ERROR);
  if (!r)
    r = buf_append_u32be(out, tid);
  if (!r)
    r = buf_append_str(out, msg);
  return r;
}

static int trackerudp_announce(struct swarms *s, const struct trackerudp_config *cfg, struct cur *c,
                               uint32_t tid, uint8_t fam, const uint8_t ip[16], uint64_t now, struct buf *out)
{
  /* c is past the 16-byte header. */
  if (c->len < TRACKERUDP_ANNOUNCE_LEN - TRACKERUDP_MIN_PACKET)
    return trackerudp_error(out, tid, "announce too short");
  uint8_t info_hash[SWARMS_ID_LEN], peer_id[SWARMS_ID_LEN];
  uint64_t downloaded, left, uploaded;
  uint32_t event, ipfield, key, num_want;
  uint16_t port;
  if (cur_copy(c, info_hash, sizeof info_hash) || cur_copy(c, peer_id, sizeof peer_id) ||
      cur_u64be(c, &downloaded) || cur_u64be(c, &left) || cur_u64be(c, &uploaded) ||
      cur_u32be(c, &event) || cur_u32be(c, &ipfield) || cur_u32be(c, &key) ||
      cur_u32be(c, &num_want) || cur_u16be(c, &port))
    return trackerudp_error(out, tid, "announce too short");
  static const enum swarms_event events[] = {
    SWARMS_EVENT_NONE, SWARMS_EVENT_COMPLETED, SWARMS_EVENT_STARTED, SWARMS_EVENT_STOPPED,
  };
  if (event > 3)
    return trackerudp_error(out, tid, "invalid event");
  if (port == 0)
    return trackerudp_error(out, tid, "invalid port");

  struct sockaddr_storage self;
  trackerudp_peer_addr(fam, ip, port, &self);
  struct swarms_announce a = {
    .info_hash = info_hash,
    .peer_id = peer_id,
    .addr = (const struct sockaddr *)&self,
    .left = left,
    .event = events[event],
  };
  struct swarms_stats st;
  int stored = swarms_announce(s, &a, now, &st);
  if (stored < 0)
    return stored == UV_EINVAL ? trackerudp_error(out, tid, "unsupported address family") : stored;

  size_t esz = fam == AF_INET ? COMPACT_V4_LEN : COMPACT_V6_LEN;
  size_t want = (int32_t)num_want < 0 ? TRACKERUDP_NUMWANT_DEFAULT : num_want;
  if (want > TRACKERUDP_NUMWANT_MAX)
    want = TRACKERUDP_NUMWANT_MAX;
  if (want > (TRACKERUDP_REPLY_MAX - 20) / esz)
    want = (TRACKERUDP_REPLY_MAX - 20) / esz;
  struct swarms_peer peers[TRACKERUDP_NUMWANT_MAX];
  size_t n = 0;
  if (a.event != SWARMS_EVENT_STOPPED)
    n = swarms_select_family(s, info_hash, peer_id, (const struct sockaddr *)&self, left == 0, fam, peers, want);

  int r = buf_append_u32be(out, TRACKERUDP_ANNOUNCE);
  if (!r)
    r = buf_append_u32be(out, tid);
  if (!r)
    r = buf_append_u32be(out, cfg->interval);
  if (!r)
    r = buf_append_u32be(out, st.incomplete);
  if (!r)
    r = buf_append_u32be(out, st.complete);
  for (size_t i = 0; i < n && !r; i++)
    r = compact_put(out, (const struct sockaddr *)&peers[i].addr);
  return r;
}

static int trackerudp_scrape(const struct swarms *s, struct cur *c, uint32_t tid, struct buf *out)
{
  size_t n = c->len / SWARMS_ID_LEN;
  if (n == 0)
    return trackerudp_error(out, tid, "scrape without info_hash");
  if (n > TRACKERUDP_SCRAPE_MAX)
    n = TRACKERUDP_SCRAPE_MAX;
  int r = buf_append_u32be(out, TRACKERUDP_SCRAPE);
  if (!r)
    r = buf_append_u32be(out, tid);
  for (size_t i = 0; i < n && !r; i++) {
    uint8_t ih[SWARMS_ID_LEN];
    if (cur_copy(c, ih, sizeof ih) != 0)
      break;   /* not reached: n whole hashes remain */
    struct swarms_stats st;
    swarms_lookup(s, ih, &st);
    r = buf_append_u32be(out, st.complete);
    if (!r)
      r = buf_append_u32be(out, st.downloaded > UINT32_MAX ? UINT32_MAX : (uint32_t)st.downloaded);
    if (!r)
      r = buf_append_u32be(out, st.incomplete);
  }
  return r;
}

int trackerudp_handle(struct swarms *s, const struct trackerudp_config *cfg,
                      const struct trackerudp_secrets *sec, const uint8_t *pkt, size_t len,
                      const struct sockaddr *from, uint64_t now, struct buf *out)
{
  if (pkt == NULL || len < TRACKERUDP_MIN_PACKET || len > TRACKERUDP_PACKET_MAX)
    return 0;
  uint8_t fam, ip[16];
  uint16_t sport;
  if (compact_addr_split(from, &fam, ip, &sport) != 0 || sport == 0)
    return 0;
  struct cur c = cur_make(pkt, len);
  uint64_t cid = 0;
  uint32_t action = 0, tid = 0;
  if (cur_u64be(&c, &cid) || cur_u32be(&c, &action) || cur_u32be(&c, &tid))
    return 0;   /* not reached: len >= 16 */
  size_t old_len = out->len;
  int r;
  if (action == TRACKERUDP_CONNECT) {
    if (cid != TRACKERUDP_PROTOCOL_ID)
      return 0;
    r = buf_append_u32be(out, TRACKERUDP_CONNECT);
    if (!r)
      r = buf_append_u32be(out, tid);
    if (!r)
      r = buf_append_u64be(out, trackerudp_conn_id(sec, from));
  } else if (!trackerudp_conn_id_ok(sec, from, cid)) {
    return 0;
  } else if (action == TRACKERUDP_ANNOUNCE) {
    r = trackerudp_announce(s, cfg, &c, tid, fam, ip, now, out);
  } else if (action == TRACKERUDP_SCRAPE) {
    r = trackerudp_scrape(s, &c, tid, out);
  } else {
    r = trackerudp_error(out, tid, "unknown action");
  }
  if (r)
    out->len = old_len;
  return r;
}

/* ---- the server ---- */

struct trackerudp_server {
  uv_loop_t *loop;
  uv_udp_t sock;
  struct swarms *swarms;
  struct trackerudp_config cfg;
  struct trackerudp_secrets sec;
  uint64_t received, answered;
  bool closing;
  uint8_t rbuf[TRACKERUDP_PACKET_MAX];
  struct buf out;                  /* the answer being made, reused for every datagram */
};

static void trackerudp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  struct trackerudp_server *srv = h->data;
  b->base = (char *)srv->rbuf;
  b->len = sizeof srv->rbuf;
}

static void trackerudp_on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *addr,
                               unsigned flags)
{
  struct trackerudp_server *srv = h->data;
  if (srv->closing || nread <= 0 || addr == NULL) {
    if (nread < 0)
      LOG_DEBUG("udp: receive: %s", uv_strerror((int)nread));
    return;
  }
  srv->received++;
  if (flags & UV_UDP_PARTIAL) {
    LOG_DEBUG("udp: datagram over %d bytes dropped", TRACKERUDP_PACKET_MAX);
    return;
  }
  uint64_t now = uv_now(srv->loop) / 1000;
  if (trackerudp_secrets_due(&srv->sec, now)) {
    uint8_t fresh[TRACKERUDP_SECRET_LEN];
    randombytes_buf(fresh, sizeof fresh);
    trackerudp_secrets_rotate(&srv->sec, fresh, now);
    sodium_memzero(fresh, sizeof fresh);
  }
  struct buf *out = &srv->out;
  out->len = 0;
  int r = trackerudp_handle(srv->swarms, &srv->cfg, &srv->sec, (const uint8_t *)b->base, (size_t)nread, addr,
                            now, out);
  if (LOG_LEVEL_DEBUG <= log_level) {
    char as[96];
    compact_addr_str(addr, as, sizeof as);
    uint32_t action = nread >= 12 ? get_u32be((const uint8_t *)b->base + 8) : UINT32_MAX;
    LOG_DEBUG("udp: %zd bytes from %s, action %u: %s", nread, as, (unsigned)action,
              r ? uv_strerror(r) : out->len ? "answered" : "ignored");
  }
  if (r == 0 && out->len > 0) {
    uv_buf_t ub = uv_buf_init((char *)out->p, (unsigned)out->len);
    int sr = uv_udp_try_send(&srv->sock, &ub, 1, addr);
    if (sr >= 0)
      srv->answered++;
    else
      LOG_DEBUG("udp: send: %s", uv_strerror(sr));
  }
}

static void trackerudp_on_closed(uv_handle_t *h)
{
  struct trackerudp_server *srv = h->data;
  sodium_memzero(&srv->sec, sizeof srv->sec);
  buf_free(&srv->out);
  free(srv);
}

int trackerudp_server_new(uv_loop_t *loop, struct swarms *swarms, const struct trackerudp_config *cfg,
                          const struct sockaddr *bind, struct trackerudp_server **out)
{
  struct trackerudp_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return UV_ENOMEM;
  srv->loop = loop;
  srv->swarms = swarms;
  buf_init(&srv->out, TRACKERUDP_REPLY_MAX);
  trackerudp_config_default(&srv->cfg);
  if (cfg != NULL)
    srv->cfg = *cfg;
  uint8_t key[TRACKERUDP_SECRET_LEN];
  randombytes_buf(key, sizeof key);
  trackerudp_secrets_init(&srv->sec, key, uv_now(loop) / 1000);
  sodium_memzero(key, sizeof key);
  int r = uv_udp_init(loop, &srv->sock);
  if (r) {
    free(srv);
    return r;
  }
  srv->sock.data = srv;
  r = uv_udp_bind(&srv->sock, bind, 0);
  if (!r)
    r = uv_udp_recv_start(&srv->sock, trackerudp_alloc, trackerudp_on_recv);
  if (r) {
    trackerudp_server_close(srv);
    return r;
  }
  *out = srv;
  return 0;
}

int trackerudp_server_addr(const struct trackerudp_server *srv, struct sockaddr_storage *out)
{
  int len = sizeof *out;
  return uv_udp_getsockname(&srv->sock, (struct sockaddr *)out, &len);
}

uint64_t trackerudp_server_received(const struct trackerudp_server *srv) { return srv->received; }
uint64_t trackerudp_server_answered(const struct trackerudp_server *srv) { return srv->answered; }

void trackerudp_server_close(struct trackerudp_server *srv)
{
  if (srv->closing)
    return;
  srv->closing = true;
  uv_close((uv_handle_t *)&srv->sock, trackerudp_on_closed);
}
