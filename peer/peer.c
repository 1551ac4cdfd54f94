/* peer.c -- one peer connection: dial or accept, handshake, framing, writes, time-outs, lifetime. */
#include <stdlib.h>

#include "common/compact.h"
#include "common/err.h"
#include "common/log.h"
#include "peer/engine-int.h"

struct wreq {
  uv_write_t req;
  struct peer *peer;
  size_t len;
  void *owned;                     /* freed with the request (peer__send_bufs) */
  uint8_t data[];
};

uint64_t engine__now(const struct session *s) { return uv_now(s->loop); }

static void peer_free(struct peer *p)
{
  buf_free(&p->rbuf);
  bitfield_free(&p->have);
  bitfield_free(&p->fast_pick);
  buf_free(&p->md_bits);
  free(p->reqs);
  free(p->cancelled);
  free(p->inq);
  free(p);
}

/* A peer is freed once its handle is closed and no disk read still points at it. */
static bool peer_closed(const struct peer *p) { return p->state == PEER_CLOSING && !p->tcp_open; }

void peer__maybe_free(struct peer *p)
{
  if (peer_closed(p) && p->reads_in_flight == 0)
    peer_free(p);
}

struct peer *peer__new(struct session *s, struct torrent *t, const struct sockaddr *sa, bool outgoing)
{
  struct peer *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->session = s;
  p->torrent = t;
  p->outgoing = outgoing;
  memcpy(&p->addr, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  compact_addr_str(sa, p->name, sizeof p->name);
  p->state = outgoing ? PEER_CONNECTING : PEER_HANDSHAKE;
  p->am_choking = p->peer_choking = true;
  p->target_reqs = PEER_MIN_PIPELINE;
  p->started_ms = p->last_recv_ms = p->last_send_ms = engine__now(s);
  buf_init(&p->rbuf, PEER_RBUF_INITIAL);
  buf_init(&p->md_bits, WIRE_MAX_BITFIELD);
  ext_handshake_init(&p->ext);
  p->reqs = calloc(PEER_MAX_PIPELINE, sizeof *p->reqs);
  p->inq = calloc(PEER_MAX_INCOMING_REQUESTS, sizeof *p->inq);
  p->cancelled = calloc(PEER_CANCEL_MEMORY, sizeof *p->cancelled);
  if (p->reqs == NULL || p->inq == NULL || p->cancelled == NULL) {
    peer_free(p);
    return NULL;
  }
  return p;
}

static void on_close(uv_handle_t *h)
{
  struct peer *p = container_of(h, struct peer, tcp);
  p->tcp_open = false;
  peer__maybe_free(p);
}

void peer__close(struct peer *p, const char *why)
{
  if (p->state == PEER_CLOSING)
    return;
  bool was_connecting = p->state == PEER_CONNECTING;
  LOG_DEBUG("peer %s: closed: %s", p->name, why);
  p->state = PEER_CLOSING;
  if (p->torrent) {
    if (was_connecting && p->torrent->half_open)
      p->torrent->half_open--;
    torrent__peer_gone(p->torrent, p);
  } else {
    session__peer_unpend(p->session, p);
  }
  if (p->tcp_open)
    uv_close((uv_handle_t *)&p->tcp, on_close);
  else
    peer__maybe_free(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  struct peer *p = container_of(h, struct peer, tcp);
  (void)suggested;
  size_t room = p->rbuf.cap - p->rbuf.len;
  if (room < 16384 && buf_reserve(&p->rbuf, 16384) == 0)
    room = p->rbuf.cap - p->rbuf.len;
  if (p->rbuf.p == NULL || room == 0) {
    b->base = NULL;
    b->len = 0;
    return;
  }
  b->base = (char *)p->rbuf.p + p->rbuf.len;
  b->len = room;
}

static int handle_handshake(struct peer *p, const uint8_t *in)
{
  struct wire_handshake h;
  if (wire_handshake_parse(in, &h) != 0)
    return SHOAL_EPROTO;
  if (memcmp(h.peer_id, p->session->peer_id, 20) == 0)
    return SHOAL_ESELF;
  if (p->torrent == NULL)
    return torrent__attach_incoming(p->session, p, &h);
  return torrent__handshake_done(p->torrent, p, &h);
}

static void process_input(struct peer *p)
{
  size_t off = 0;
  while (p->state != PEER_CLOSING) {
    const uint8_t *in = p->rbuf.p + off;
    size_t avail = p->rbuf.len - off;
    if (p->state == PEER_HANDSHAKE) {
      if (avail < WIRE_HANDSHAKE_LEN)
        break;
      int r = handle_handshake(p, in);
      if (r < 0) {
        if (r == SHOAL_ESELF && p->entry)
          p->entry->self = true;               /* our own address: never dial it again */
        peer__close(p, r == SHOAL_ESELF ? "connection to ourselves" : shoal_strerror(r));
        return;
      }
      off += WIRE_HANDSHAKE_LEN;
      continue;
    }
    size_t total;
    uint32_t np = torrent__num_pieces(p->torrent);
    size_t bflen = np == WIRE_PIECES_UNKNOWN ? SIZE_MAX : bitfield_bytes(np);
    int r = wire_frame(in, avail, bflen, &total);
    if (r < 0) {
      peer__close(p, r == SHOAL_ETOOBIG ? "oversized message" : "malformed message");
      return;
    }
    if (r == 0) {
      /* make room for a long message whose size is known and allowed */
      if (avail >= 5) {
        size_t need = (size_t)get_u32be(in) + 4;
        if (need > p->rbuf.max)
          p->rbuf.max = need;
      }
      break;
    }
    struct wire_msg m;
    if (wire_parse(in, total, np, &m) != 0) {
      peer__close(p, "malformed message");
      return;
    }
    off += total;
    r = torrent__on_message(p->torrent, p, &m);
    if (r < 0) {
      peer__close(p, shoal_strerror(r));
      return;
    }
  }
  if (p->state != PEER_CLOSING)
    buf_consume(&p->rbuf, off);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct peer *p = container_of(st, struct peer, tcp);
  (void)b;
  if (p->state == PEER_CLOSING)
    return;
  if (nread < 0) {
    peer__close(p, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
    return;
  }
  if (nread == 0)
    return;
  if (b->base == NULL) {
    peer__close(p, "out of memory");
    return;
  }
  p->rbuf.len += (size_t)nread;
  p->last_recv_ms = engine__now(p->session);
  process_input(p);
}

static int start_reading(struct peer *p)
{
  uv_tcp_nodelay(&p->tcp, 1);
  return uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
}

static void on_connect(uv_connect_t *req, int status)
{
  struct peer *p = container_of(req, struct peer, connect_req);
  if (p->state == PEER_CLOSING)
    return;
  if (p->torrent && p->torrent->half_open)
    p->torrent->half_open--;
  if (status < 0) {
    p->state = PEER_HANDSHAKE;  /* no longer counted as half-open */
    peer__close(p, uv_strerror(status));
    return;
  }
  p->state = PEER_HANDSHAKE;
  p->last_recv_ms = engine__now(p->session);
  int r = start_reading(p);
  if (r < 0) {
    peer__close(p, uv_strerror(r));
    return;
  }
  peer__send_handshake(p);
}

int peer__connect(struct peer *p)
{
  int r = uv_tcp_init(p->session->loop, &p->tcp);
  if (r < 0)
    return r;
  p->tcp_open = true;
  r = uv_tcp_connect(&p->connect_req, &p->tcp, (const struct sockaddr *)&p->addr, on_connect);
  if (r < 0)
    return r;
  return 0;
}

int peer__accept(struct peer *p, uv_stream_t *server)
{
  int r = uv_tcp_init(p->session->loop, &p->tcp);
  if (r < 0)
    return r;
  p->tcp_open = true;
  if ((r = uv_accept(server, (uv_stream_t *)&p->tcp)) < 0)
    return r;
  int len = sizeof p->addr;
  if (uv_tcp_getpeername(&p->tcp, (struct sockaddr *)&p->addr, &len) == 0)
    compact_addr_str((struct sockaddr *)&p->addr, p->name, sizeof p->name);
  return start_reading(p);
}

static void on_write(uv_write_t *req, int status)
{
  struct wreq *w = container_of(req, struct wreq, req);
  struct peer *p = w->peer;
  p->write_queued -= w->len;
  free(w->owned);
  free(w);
  if (p->state == PEER_CLOSING)
    return;
  if (status < 0) {
    peer__close(p, uv_strerror(status));
    return;
  }
  if (p->torrent && p->inq_len)
    torrent__serve(p->torrent, p);
}

void *peer__wreq_new(size_t len, uint8_t **data)
{
  struct wreq *w = malloc(sizeof *w + len);
  if (w == NULL)
    return NULL;
  w->owned = NULL;
  w->len = len;
  *data = w->data;
  return w;
}

void peer__wreq_send(struct peer *p, void *wr)
{
  struct wreq *w = wr;
  if (p->state == PEER_CLOSING || p->state == PEER_CONNECTING) {
    free(w);
    return;
  }
  w->peer = p;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
  int r = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_write);
  if (r < 0) {
    free(w);
    peer__close(p, uv_strerror(r));
    return;
  }
  p->write_queued += w->len;
  p->last_send_ms = engine__now(p->session);
}

void peer__send_bufs(struct peer *p, void *owned, const uv_buf_t *bufs, unsigned n)
{
  struct wreq *w = malloc(sizeof *w);
  if (w == NULL || p->state == PEER_CLOSING || p->state == PEER_CONNECTING) {
    free(w);
    free(owned);
    if (w == NULL)
      peer__close(p, "out of memory");
    return;
  }
  w->peer = p;
  w->owned = owned;
  w->len = 0;
  for (unsigned i = 0; i < n; i++)
    w->len += bufs[i].len;
  int r = uv_write(&w->req, (uv_stream_t *)&p->tcp, bufs, n, on_write);   /* libuv copies bufs[] */
  if (r < 0) {
    free(owned);
    free(w);
    peer__close(p, uv_strerror(r));
    return;
  }
  p->write_queued += w->len;
  p->last_send_ms = engine__now(p->session);
}

void peer__send(struct peer *p, const void *data, size_t len)
{
  uint8_t *d;
  void *w = peer__wreq_new(len, &d);
  if (w == NULL) {
    peer__close(p, "out of memory");
    return;
  }
  memcpy(d, data, len);
  peer__wreq_send(p, w);
}

void peer__send_handshake(struct peer *p)
{
  uint8_t hs[WIRE_HANDSHAKE_LEN];
  uint8_t reserved[8] = { 0 };
  ext_reserved_set(reserved);                  /* BEP 10 extension protocol, BEP 6 fast */
  wire_handshake_write(hs, reserved, p->torrent->m->infohash, p->session->peer_id);
  peer__send(p, hs, sizeof hs);
}

void peer__tick(struct peer *p, uint64_t now)
{
  rate_tick(&p->down, now / TORRENT_TICK_MS);
  rate_tick(&p->up, now / TORRENT_TICK_MS);

  switch (p->state) {
  case PEER_CONNECTING:
    if (now - p->started_ms > PEER_CONNECT_TIMEOUT_MS)
      peer__close(p, "connect timed out");
    return;
  case PEER_HANDSHAKE:
    if (now - p->started_ms > PEER_HANDSHAKE_TIMEOUT_MS)
      peer__close(p, "handshake timed out");
    return;
  case PEER_ACTIVE:
    if (now - p->last_recv_ms > PEER_IDLE_TIMEOUT_MS) {
      peer__close(p, "idle timed out");
      return;
    }
    if (now - p->last_send_ms > PEER_KEEPALIVE_MS) {
      uint8_t ka[4];
      peer__send(p, ka, wire_put_keepalive(ka));
    }
    return;
  case PEER_CLOSING:
    return;
  }
}
