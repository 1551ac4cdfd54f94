/* http.c -- the tracker's HTTP side: announce/scrape answers (pure) and the libuv + http-parser server. */
#include "tracker/http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "common/bencode.h"
#include "common/compact.h"
#include "common/err.h"
#include "common/log.h"
#include "common/url.h"

void trackerhttp_config_default(struct trackerhttp_config *cfg)
{
  cfg->interval = 1800;
  cfg->min_interval = 900;
  cfg->max_conns = 1024;
  cfg->idle_timeout_ms = 15000;
  cfg->max_requests = 100;
}

/* ---- request parsing ---- */

enum {
  AP_INFO_HASH, AP_PEER_ID, AP_PORT, AP_UPLOADED, AP_DOWNLOADED, AP_LEFT,
  AP_EVENT, AP_COMPACT, AP_NUMWANT, AP_NO_PEER_ID, AP_COUNT_
};
static const char *const trackerhttp_params[AP_COUNT_] = {
  "info_hash", "peer_id", "port", "uploaded", "downloaded", "left",
  "event", "compact", "numwant", "no_peer_id",
};
#define AP_REQUIRED ((1u << AP_INFO_HASH) | (1u << AP_PEER_ID) | (1u << AP_PORT) | \
                     (1u << AP_UPLOADED) | (1u << AP_DOWNLOADED) | (1u << AP_LEFT))

static bool trackerhttp_key_is(const char *k, size_t kl, const char *name)
{
  return kl == strlen(name) && memcmp(k, name, kl) == 0;
}

/* Strict decimal: 1 to 20 digits, no sign, no overflow, at most max. */
static int trackerhttp_parse_uint(const uint8_t *s, size_t n, uint64_t max, uint64_t *out)
{
  if (n == 0 || n > 20)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  if (v > max)
    return -1;
  *out = v;
  return 0;
}

static bool trackerhttp_val_is(const uint8_t *v, size_t n, const char *s)
{
  return n == strlen(s) && memcmp(v, s, n) == 0;
}

int trackerhttp_parse_announce(const char *query, size_t len, struct trackerhttp_announce_req *req,
                               char why[TRACKERHTTP_WHY_LEN])
{
  memset(req, 0, sizeof *req);
  req->compact = true;
  req->numwant = TRACKERHTTP_NUMWANT_DEFAULT;
  why[0] = '\0';
  uint32_t seen = 0;
  struct url_query_iter it = { query, len };
  const char *k, *v;
  size_t kl, vl;
  while (url_query_next(&it, &k, &kl, &v, &vl)) {
    int which = -1;
    for (int i = 0; i < AP_COUNT_; i++)
      if (trackerhttp_key_is(k, kl, trackerhttp_params[i]))
        which = i;
    if (which < 0)
      continue; /* ip, key, trackerid, supportcrypto, ...: not used */
    const char *name = trackerhttp_params[which];
    if (seen & (1u << which)) {
      snprintf(why, TRACKERHTTP_WHY_LEN, "duplicate %s", name);
      return SHOAL_EPROTO;
    }
    seen |= 1u << which;
    /* Every used value is at most 20 bytes once decoded. */
    uint8_t d[SWARMS_ID_LEN];
    long dl = url_decode(v, vl, d, sizeof d);
    uint64_t num = 0;
    int bad = dl < 0;
    if (!bad) {
      switch (which) {
      case AP_INFO_HASH:
        bad = dl != SWARMS_ID_LEN;
        if (!bad)
          memcpy(req->info_hash, d, SWARMS_ID_LEN);
        break;
      case AP_PEER_ID:
        bad = dl != SWARMS_ID_LEN;
        if (!bad)
          memcpy(req->peer_id, d, SWARMS_ID_LEN);
        break;
      case AP_PORT:
        bad = trackerhttp_parse_uint(d, (size_t)dl, 65535, &num) || num == 0;
        req->port = (uint16_t)num;
        break;
      case AP_UPLOADED:
        bad = trackerhttp_parse_uint(d, (size_t)dl, INT64_MAX, &req->uploaded);
        break;
      case AP_DOWNLOADED:
        bad = trackerhttp_parse_uint(d, (size_t)dl, INT64_MAX, &req->downloaded);
        break;
      case AP_LEFT:
        bad = trackerhttp_parse_uint(d, (size_t)dl, INT64_MAX, &req->left);
        break;
      case AP_EVENT:
        if (dl == 0 || trackerhttp_val_is(d, (size_t)dl, "empty"))
          req->event = SWARMS_EVENT_NONE;
        else if (trackerhttp_val_is(d, (size_t)dl, "started"))
          req->event = SWARMS_EVENT_STARTED;
        else if (trackerhttp_val_is(d, (size_t)dl, "completed"))
          req->event = SWARMS_EVENT_COMPLETED;
        else if (trackerhttp_val_is(d, (size_t)dl, "stopped"))
          req->event = SWARMS_EVENT_STOPPED;
        else
          bad = 1;
        break;
      case AP_COMPACT:
      case AP_NO_PEER_ID:
        bad = trackerhttp_parse_uint(d, (size_t)dl, 1, &num) || dl != 1;
        if (which == AP_COMPACT)
          req->compact = num == 1;
        else
          req->no_peer_id = num == 1;
        break;
      case AP_NUMWANT:
        bad = trackerhttp_parse_uint(d, (size_t)dl, UINT64_MAX, &num);
        req->numwant = num > TRACKERHTTP_NUMWANT_MAX ? TRACKERHTTP_NUMWANT_MAX : (uint32_t)num;
        break;
      }
    }
    if (bad) {
      snprintf(why, TRACKERHTTP_WHY_LEN, "invalid %s", name);
      return SHOAL_EPROTO;
    }
  }
  for (int i = 0; i < AP_COUNT_; i++) {
    if ((AP_REQUIRED & (1u << i)) && !(seen & (1u << i))) {
      snprintf(why, TRACKERHTTP_WHY_LEN, "missing %s", trackerhttp_params[i]);
      return SHOAL_EPROTO;
    }
  }
  return 0;
}

/* ---- answers ---- */

static int trackerhttp_failure(struct buf *out, const char *why)
{
  int r = bencode_put_dict(out);
  if (!r)
    r = bencode_put_kv_cstr(out, "failure reason", why);
  if (!r)
    r = bencode_put_end(out);
  return r;
}

/* The peer's address as stored: the connection's IP with the announced port. */
static int trackerhttp_peer_addr(const struct sockaddr *remote, uint16_t port, struct sockaddr_storage *ss)
{
  memset(ss, 0, sizeof *ss);
  if (remote->sa_family == AF_INET) {
    memcpy(ss, remote, sizeof(struct sockaddr_in));
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
    return 0;
  }
  if (remote->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)remote;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      /* A dual-stack socket's IPv4 client: keep it IPv4 for the compact lists. */
      struct sockaddr_in *sin = (struct sockaddr_in *)ss;
      sin->sin_family = AF_INET;
      memcpy(&sin->sin_addr, in6->sin6_addr.s6_addr + 12, 4);
      sin->sin_port = htons(port);
      return 0;
    }
    struct sockaddr_in6 *o = (struct sockaddr_in6 *)ss;
    o->sin6_family = AF_INET6;
    o->sin6_addr = in6->sin6_addr;
    o->sin6_port = htons(port);
    return 0;
  }
  return UV_EAFNOSUPPORT;
}

static int trackerhttp_peer_dict(struct buf *out, const struct swarms_peer *p, bool with_id)
{
  char ip[INET6_ADDRSTRLEN] = "";
  uint16_t port;
  if (p->addr.ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&p->addr;
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
    port = ntohs(sin->sin_port);
  } else {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&p->addr;
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
    port = ntohs(sin6->sin6_port);
  }
  int r = bencode_put_dict(out);
  if (!r)
    r = bencode_put_kv_cstr(out, "ip", ip);
  if (!r && with_id)
    r = bencode_put_kv_str(out, "peer id", p->id, SWARMS_ID_LEN);
  if (!r)
    r = bencode_put_kv_int(out, "port", port);
  if (!r)
    r = bencode_put_end(out);
  return r;
}

int trackerhttp_announce(struct swarms *s, const struct trackerhttp_config *cfg,
                         const char *query, size_t len, const struct sockaddr *remote,
                         uint64_t now, struct buf *out)
{
  struct trackerhttp_announce_req req;
  char why[TRACKERHTTP_WHY_LEN];
  if (trackerhttp_parse_announce(query, len, &req, why))
    return trackerhttp_failure(out, why);
  struct sockaddr_storage self;
  if (trackerhttp_peer_addr(remote, req.port, &self))
    return trackerhttp_failure(out, "unsupported address family");

  struct swarms_announce a = {
    .info_hash = req.info_hash,
    .peer_id = req.peer_id,
    .addr = (const struct sockaddr *)&self,
    .left = req.left,
    .event = req.event,
  };
  struct swarms_stats st;
  int stored = swarms_announce(s, &a, now, &st);
  if (stored < 0)
    return stored == UV_EINVAL ? trackerhttp_failure(out, "unsupported address family") : stored;

  struct swarms_peer peers[TRACKERHTTP_NUMWANT_MAX];
  size_t n = 0;
  if (req.event != SWARMS_EVENT_STOPPED)
    n = swarms_select(s, req.info_hash, req.peer_id, (const struct sockaddr *)&self, req.left == 0,
                      peers, req.numwant);

  int r = bencode_put_dict(out);
  if (!r)
    r = bencode_put_kv_int(out, "complete", st.complete);
  if (!r)
    r = bencode_put_kv_int(out, "incomplete", st.incomplete);
  if (!r)
    r = bencode_put_kv_int(out, "interval", cfg->interval);
  if (!r)
    r = bencode_put_kv_int(out, "min interval", cfg->min_interval);
  if (r)
    return r;
  if (req.compact) {
    uint8_t v4[TRACKERHTTP_NUMWANT_MAX * COMPACT_V4_LEN], v6[TRACKERHTTP_NUMWANT_MAX * COMPACT_V6_LEN];
    struct buf b4, b6;
    buf_init(&b4, sizeof v4);
    buf_init(&b6, sizeof v6);
    for (size_t i = 0; i < n && !r; i++)
      r = compact_put(peers[i].addr.ss_family == AF_INET ? &b4 : &b6, (const struct sockaddr *)&peers[i].addr);
    if (!r)
      r = bencode_put_kv_str(out, "peers", b4.p, b4.len);
    if (!r && b6.len > 0)
      r = bencode_put_kv_str(out, "peers6", b6.p, b6.len);
    buf_free(&b4);
    buf_free(&b6);
  } else {
    r = bencode_put_str(out, "peers", 5);
    if (!r)
      r = bencode_put_list(out);
    for (size_t i = 0; i < n && !r; i++)
      r = trackerhttp_peer_dict(out, &peers[i], !req.no_peer_id);
    if (!r)
      r = bencode_put_end(out);
  }
  if (!r && stored == SWARMS_NOT_STORED)
    r = bencode_put_kv_cstr(out, "warning message", "tracker full: this peer was not recorded");
  if (!r)
    r = bencode_put_end(out);
  return r;
}

static int trackerhttp_hash_cmp(const void *a, const void *b)
{
  return memcmp(a, b, SWARMS_ID_LEN);
}

int trackerhttp_scrape(const struct swarms *s, const char *query, size_t len, struct buf *out)
{
  /* Room for the larger of the two cases. */
  _Static_assert(TRACKERHTTP_SCRAPE_ALL_MAX >= TRACKERHTTP_SCRAPE_MAX, "scrape sizes");
  uint8_t (*hashes)[SWARMS_ID_LEN] = malloc(TRACKERHTTP_SCRAPE_ALL_MAX * SWARMS_ID_LEN);
  if (hashes == NULL)
    return UV_ENOMEM;
  size_t n = 0;
  struct url_query_iter it = { query, len };
  const char *k, *v;
  size_t kl, vl;
  int r = 0;
  const char *fail = NULL;
  while (url_query_next(&it, &k, &kl, &v, &vl)) {
    if (!trackerhttp_key_is(k, kl, "info_hash"))
      continue;
    if (n == TRACKERHTTP_SCRAPE_MAX) {
      fail = "too many info_hash";
      break;
    }
    if (url_decode(v, vl, hashes[n], SWARMS_ID_LEN) != SWARMS_ID_LEN) {
      fail = "invalid info_hash";
      break;
    }
    n++;
  }
  if (fail != NULL) {
    free(hashes);
    return trackerhttp_failure(out, fail);
  }
  if (n == 0) {
    size_t total = swarms_count(s);
    for (size_t i = 0; i < total && n < TRACKERHTTP_SCRAPE_ALL_MAX; i++)
      if (swarms_at(s, i, hashes[n], NULL) == 0)
        n++;
  }
  /* Dict keys go out sorted and once. */
  qsort(hashes, n, SWARMS_ID_LEN, trackerhttp_hash_cmp);
  r = bencode_put_dict(out);
  if (!r)
    r = bencode_put_str(out, "files", 5);
  if (!r)
    r = bencode_put_dict(out);
  for (size_t i = 0; i < n && !r; i++) {
    if (i > 0 && memcmp(hashes[i], hashes[i - 1], SWARMS_ID_LEN) == 0)
      continue;
    struct swarms_stats st;
    swarms_lookup(s, hashes[i], &st);
    r = bencode_put_str(out, hashes[i], SWARMS_ID_LEN);
    if (!r)
      r = bencode_put_dict(out);
    if (!r)
      r = bencode_put_kv_int(out, "complete", st.complete);
    if (!r)
      r = bencode_put_kv_int(out, "downloaded", (int64_t)(st.downloaded > INT64_MAX ? INT64_MAX : st.downloaded));
    if (!r)
      r = bencode_put_kv_int(out, "incomplete", st.incomplete);
    if (!r)
      r = bencode_put_end(out);
  }
  if (!r)
    r = bencode_put_end(out);
  if (!r)
    r = bencode_put_end(out);
  free(hashes);
  return r;
}

int trackerhttp_route(struct swarms *s, const struct trackerhttp_config *cfg,
                      const char *target, size_t len, const struct sockaddr *remote,
                      uint64_t now, struct buf *body)
{
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (len == 0 || len > UINT16_MAX || http_parser_parse_url(target, len, 0, &u) != 0 ||
      !(u.field_set & (1u << UF_PATH))) {
    buf_append_str(body, "bad request\n");
    return 400;
  }
  const char *path = target + u.field_data[UF_PATH].off;
  size_t plen = u.field_data[UF_PATH].len;
  const char *q = "";
  size_t qlen = 0;
  if (u.field_set & (1u << UF_QUERY)) {
    q = target + u.field_data[UF_QUERY].off;
    qlen = u.field_data[UF_QUERY].len;
  }
  int r;
  if (trackerhttp_key_is(path, plen, "/announce"))
    r = trackerhttp_announce(s, cfg, q, qlen, remote, now, body);
  else if (trackerhttp_key_is(path, plen, "/scrape"))
    r = trackerhttp_scrape(s, q, qlen, body);
  else {
    buf_append_str(body, "not found\n");
    return 404;
  }
  if (r) {
    body->len = 0;
    buf_append_str(body, "internal error\n");
    return 500;
  }
  return 200;
}

static const char *trackerhttp_reason(int status)
{
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 413: return "Payload Too Large";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

int trackerhttp_response(struct buf *out, int status, const void *body, size_t body_len,
                         bool keep_alive)
{
  int r = buf_printf(out,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: %s\r\n"
                     "\r\n",
                     status, trackerhttp_reason(status), body_len, keep_alive ? "keep-alive" : "close");
  if (!r)
    r = buf_append(out, body, body_len);
  return r;
}

/* ---- the server ---- */

#define TRACKERHTTP_RBUF 16384        /* read buffer per connection */
#define TRACKERHTTP_DRAIN_MS 2000     /* lingering after the last answer */

struct trackerhttp_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown_req;
  uv_write_t write_req;
  http_parser parser;
  struct trackerhttp_server *srv;
  struct trackerhttp_conn *prev, *next;
  struct sockaddr_storage remote;
  char url[TRACKERHTTP_HEAD_MAX];
  size_t url_len;
  size_t head_bytes;        /* of the request being read */
  bool url_overflow;
  bool headers_done;
  bool have_request;        /* on_message_complete fired */
  int reject;               /* an HTTP status decided while parsing the head */
  uint32_t requests;
  bool reading, writing, closing, draining, last_answer;
  int open_handles;
  struct buf wbuf;
  char rbuf[TRACKERHTTP_RBUF];
  size_t roff, rlen;
};

struct trackerhttp_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct swarms *swarms;
  struct trackerhttp_config cfg;
  struct trackerhttp_conn *conns;
  uint32_t nconns;
  bool closing, listener_closed;
};

static void trackerhttp_conn_close(struct trackerhttp_conn *c);
static void trackerhttp_conn_process(struct trackerhttp_conn *c);

static void trackerhttp_server_maybe_free(struct trackerhttp_server *srv)
{
  if (srv->closing && srv->listener_closed && srv->nconns == 0)
    free(srv);
}

static int trackerhttp_on_message_begin(http_parser *p)
{
  struct trackerhttp_conn *c = p->data;
  c->url_len = 0;
  c->url_overflow = false;
  c->headers_done = false;
  c->have_request = false;
  return 0;
}

static int trackerhttp_on_url(http_parser *p, const char *at, size_t len)
{
  struct trackerhttp_conn *c = p->data;
  if (len > sizeof c->url - c->url_len) {
    c->url_overflow = true;
    return -1;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  return 0;
}

static int trackerhttp_on_headers_complete(http_parser *p)
{
  struct trackerhttp_conn *c = p->data;
  c->headers_done = true;
  if (p->method != HTTP_GET)
    c->reject = 405;
  else if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != UINT64_MAX))
    c->reject = 413; /* the tracker takes no request bodies */
  if (c->reject)
    http_parser_pause(p, 1);
  return 0;
}

static int trackerhttp_on_message_complete(http_parser *p)
{
  struct trackerhttp_conn *c = p->data;
  c->have_request = true;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings trackerhttp_settings = {
  .on_message_begin = trackerhttp_on_message_begin,
  .on_url = trackerhttp_on_url,
  .on_headers_complete = trackerhttp_on_headers_complete,
  .on_message_complete = trackerhttp_on_message_complete,
};

static void trackerhttp_on_handle_closed(uv_handle_t *h)
{
  struct trackerhttp_conn *c = h->data;
  if (--c->open_handles > 0)
    return;
  struct trackerhttp_server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->nconns--;
  buf_free(&c->wbuf);
  free(c);
  trackerhttp_server_maybe_free(srv);
}

static void trackerhttp_conn_close(struct trackerhttp_conn *c)
{
  if (c->closing)
    return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, trackerhttp_on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, trackerhttp_on_handle_closed);
}

static void trackerhttp_on_timeout(uv_timer_t *t)
{
  struct trackerhttp_conn *c = t->data;
  LOG_DEBUG("connection timed out");
  trackerhttp_conn_close(c);
}

static void trackerhttp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  struct trackerhttp_conn *c = h->data;
  /* Reading happens only once the previous bytes are all consumed. */
  b->base = c->rbuf;
  b->len = sizeof c->rbuf;
}

static void trackerhttp_on_drain_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct trackerhttp_conn *c = st->data;
  if (nread < 0)
    trackerhttp_conn_close(c); /* the client closed too: done */
}

static void trackerhttp_on_shutdown(uv_shutdown_t *req, int status)
{
  struct trackerhttp_conn *c = req->data;
  if (c->closing)
    return;
  if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, trackerhttp_alloc, trackerhttp_on_drain_read) != 0) {
    trackerhttp_conn_close(c);
    return;
  }
  /* Read and drop until the client closes, so that closing does not reset
   * the connection under an answer it has not read yet; bounded in time. */
  uv_timer_start(&c->timer, trackerhttp_on_timeout, TRACKERHTTP_DRAIN_MS, 0);
}

/* After the last answer: half-close, then linger briefly. */
static void trackerhttp_conn_finish(struct trackerhttp_conn *c)
{
  if (c->closing || c->draining)
    return;
  c->draining = true;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, trackerhttp_on_shutdown) != 0)
    trackerhttp_conn_close(c);
}

static void trackerhttp_on_written(uv_write_t *req, int status)
{
  struct trackerhttp_conn *c = req->data;
  c->writing = false;
  buf_free(&c->wbuf);
  if (c->closing)
    return;
  if (status < 0) {
    trackerhttp_conn_close(c);
    return;
  }
  if (c->last_answer) {
    trackerhttp_conn_finish(c);
    return;
  }
  uv_timer_start(&c->timer, trackerhttp_on_timeout, c->srv->cfg.idle_timeout_ms, 0);
  trackerhttp_conn_process(c);
}

static void trackerhttp_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

/* Queues one answer; reading pauses until it is written. */
static void trackerhttp_conn_answer(struct trackerhttp_conn *c, int status, const struct buf *body, bool keep_alive)
{
  buf_init(&c->wbuf, TRACKERHTTP_BODY_MAX + 512);
  c->last_answer = !keep_alive;
  if (trackerhttp_response(&c->wbuf, status, body->p, body->len, keep_alive) != 0) {
    trackerhttp_conn_close(c);
    return;
  }
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  uv_buf_t ub = uv_buf_init((char *)c->wbuf.p, (unsigned)c->wbuf.len);
  c->write_req.data = c;
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &ub, 1, trackerhttp_on_written) != 0) {
    buf_free(&c->wbuf);
    trackerhttp_conn_close(c);
    return;
  }
  c->writing = true;
  uv_timer_start(&c->timer, trackerhttp_on_timeout, c->srv->cfg.idle_timeout_ms, 0);
}

static void trackerhttp_conn_error(struct trackerhttp_conn *c, int status, const char *msg)
{
  struct buf body;
  buf_init(&body, 256);
  buf_append_str(&body, msg);
  trackerhttp_conn_answer(c, status, &body, false);
  buf_free(&body);
}

static void trackerhttp_conn_request(struct trackerhttp_conn *c)
{
  struct trackerhttp_server *srv = c->srv;
  struct buf body;
  buf_init(&body, TRACKERHTTP_BODY_MAX);
  uint64_t now = uv_now(srv->loop) / 1000;
  int status = trackerhttp_route(srv->swarms, &srv->cfg, c->url, c->url_len,
                                 (const struct sockaddr *)&c->remote, now, &body);
  c->requests++;
  bool keep = http_should_keep_alive(&c->parser) && c->requests < srv->cfg.max_requests && !srv->closing;
  if (LOG_LEVEL_DEBUG <= log_level) {
    char shown[201];
    size_t n = c->url_len < sizeof shown - 1 ? c->url_len : sizeof shown - 1;
    for (size_t i = 0; i < n; i++)
      shown[i] = c->url[i] > 0x20 && c->url[i] < 0x7f ? c->url[i] : '?';
    shown[n] = '\0';
    LOG_DEBUG("%d %s", status, shown);
  }
  trackerhttp_conn_answer(c, status, &body, keep);
  buf_free(&body);
}

/* Feeds buffered bytes to the parser until a request is answered (then waits
 * for the write), the bytes run out (then reads more), or the connection ends. */
static void trackerhttp_conn_process(struct trackerhttp_conn *c)
{
  while (!c->closing && !c->writing && !c->draining) {
    if (c->roff == c->rlen) {
      if (!c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, trackerhttp_alloc, trackerhttp_on_read) != 0) {
          trackerhttp_conn_close(c);
          return;
        }
        c->reading = true;
      }
      return;
    }
    size_t avail = c->rlen - c->roff;
    bool in_head = !c->headers_done;
    if (in_head && avail > TRACKERHTTP_HEAD_MAX + 1 - c->head_bytes)
      avail = TRACKERHTTP_HEAD_MAX + 1 - c->head_bytes; /* one byte too many is enough to tell */
    size_t n = http_parser_execute(&c->parser, &trackerhttp_settings, c->rbuf + c->roff, avail);
    c->roff += n;
    if (in_head)
      c->head_bytes += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      if (c->reject) {
        trackerhttp_conn_error(c, c->reject, c->reject == 405 ? "only GET\n" : "no request bodies\n");
        return;
      }
      if (c->have_request) {
        if (c->head_bytes > TRACKERHTTP_HEAD_MAX) {
          trackerhttp_conn_error(c, 431, "request head too large\n");
          return;
        }
        c->have_request = false;
        c->head_bytes = 0;
        c->headers_done = false;
        trackerhttp_conn_request(c);
        return;
      }
      continue;
    }
    if (e != HPE_OK || c->parser.upgrade) {
      if (c->url_overflow || e == HPE_HEADER_OVERFLOW)
        trackerhttp_conn_error(c, 431, "request head too large\n");
      else
        trackerhttp_conn_error(c, 400, "bad request\n");
      return;
    }
    if (c->head_bytes > TRACKERHTTP_HEAD_MAX) {
      trackerhttp_conn_error(c, 431, "request head too large\n");
      return;
    }
  }
}

static void trackerhttp_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct trackerhttp_conn *c = st->data;
  if (nread < 0) {
    trackerhttp_conn_close(c);
    return;
  }
  if (nread == 0)
    return;
  c->roff = 0;
  c->rlen = (size_t)nread;
  trackerhttp_conn_process(c);
}

/* Over the connection cap: accept (so the listener keeps going) and close. */
struct trackerhttp_refused { uv_tcp_t tcp; };

static void trackerhttp_on_refused_closed(uv_handle_t *h)
{
  free(h->data);
}

static void trackerhttp_on_connection(uv_stream_t *listener, int status)
{
  struct trackerhttp_server *srv = listener->data;
  if (status < 0) {
    LOG_WARN("accept: %s", uv_strerror(status));
    return;
  }
  if (srv->closing)
    return;
  if (srv->nconns >= srv->cfg.max_conns) {
    struct trackerhttp_refused *rf = malloc(sizeof *rf);
    if (rf == NULL)
      return;
    uv_tcp_init(srv->loop, &rf->tcp);
    rf->tcp.data = rf;
    if (uv_accept(listener, (uv_stream_t *)&rf->tcp) == 0)
      LOG_INFO("connection refused: %u connections open", srv->nconns);
    uv_close((uv_handle_t *)&rf->tcp, trackerhttp_on_refused_closed);
    return;
  }
  struct trackerhttp_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  buf_init(&c->wbuf, TRACKERHTTP_BODY_MAX + 512);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    trackerhttp_conn_close(c);
    return;
  }
  int len = sizeof c->remote;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->remote, &len) != 0) {
    trackerhttp_conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, trackerhttp_on_timeout, srv->cfg.idle_timeout_ms, 0);
  trackerhttp_conn_process(c); /* nothing buffered yet: starts reading */
}

int trackerhttp_server_new(uv_loop_t *loop, struct swarms *swarms,
                           const struct trackerhttp_config *cfg, const struct sockaddr *bind,
                           struct trackerhttp_server **out)
{
  struct trackerhttp_server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return UV_ENOMEM;
  srv->loop = loop;
  srv->swarms = swarms;
  trackerhttp_config_default(&srv->cfg);
  if (cfg != NULL)
    srv->cfg = *cfg;
  if (srv->cfg.max_conns == 0)
    srv->cfg.max_conns = 1;
  if (srv->cfg.max_requests == 0)
    srv->cfg.max_requests = 1;
  if (srv->cfg.idle_timeout_ms == 0)
    srv->cfg.idle_timeout_ms = 15000;
  int r = uv_tcp_init(loop, &srv->listener);
  if (r) {
    free(srv);
    return r;
  }
  srv->listener.data = srv;
  r = uv_tcp_bind(&srv->listener, bind, 0);
  if (!r)
    r = uv_listen((uv_stream_t *)&srv->listener, 511, trackerhttp_on_connection);
  if (r) {
    /* The handle must still be closed; the server frees itself then. */
    srv->closing = true;
    trackerhttp_server_close(srv);
    return r;
  }
  *out = srv;
  return 0;
}

int trackerhttp_server_addr(const struct trackerhttp_server *srv, struct sockaddr_storage *out)
{
  int len = sizeof *out;
  return uv_tcp_getsockname(&srv->listener, (struct sockaddr *)out, &len);
}

uint32_t trackerhttp_server_conns(const struct trackerhttp_server *srv) { return srv->nconns; }

static void trackerhttp_on_listener_closed(uv_handle_t *h)
{
  struct trackerhttp_server *srv = h->data;
  srv->listener_closed = true;
  trackerhttp_server_maybe_free(srv);
}

void trackerhttp_server_close(struct trackerhttp_server *srv)
{
  srv->closing = true;
  if (!uv_is_closing((uv_handle_t *)&srv->listener))
    uv_close((uv_handle_t *)&srv->listener, trackerhttp_on_listener_closed);
  for (struct trackerhttp_conn *c = srv->conns; c != NULL; c = c->next)
    trackerhttp_conn_close(c);
}
