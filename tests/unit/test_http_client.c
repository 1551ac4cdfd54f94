/* test_http_client.c -- http_client and the announce loop against a tiny HTTP responder on 127.0.0.1. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "peer/announce.h"
#include "peer/http_client.h"

/* ---- a tiny HTTP/1.1 responder: one request per connection ---- */

#define SRV_MAX_REQS 64

struct conn {
  uv_tcp_t tcp;
  char in[8192];
  size_t inlen;
  bool answered;
  uv_write_t wr;
  struct buf out;
  struct conn *next;
};

struct srv {
  uv_tcp_t tcp;
  int port;
  int nreq;
  char target[SRV_MAX_REQS][1024];   /* request targets, in arrival order */
  char last_head[8192];              /* the last request head */
  struct conn *conns;
};

/* What the tracker path answers. */
struct tracker {
  int code;
  const char *body;
  size_t len;
  bool hold;
};

static struct {
  uv_loop_t loop;
  struct srv srv;
  struct http_client *http;
  uv_timer_t guard;
  bool guard_fired;
  int closed;
  struct tracker tr;
} env;

static void respond(struct buf *o, int code, const char *extra, const char *body, size_t len)
{
  buf_printf(o, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", code, len, extra);
  buf_append(o, body, len);
}

static void route(const char *target, struct buf *o)
{
  char big[5000];
  memset(big, 'x', sizeof big);
  if (strcmp(target, "/hello") == 0) {
    respond(o, 200, "", "hello world", 11);
  } else if (strcmp(target, "/404") == 0) {
    respond(o, 404, "", "nope", 4);
  } else if (strcmp(target, "/big") == 0) {
    respond(o, 200, "", big, sizeof big);
  } else if (strcmp(target, "/bigchunked") == 0) {
    buf_printf(o, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 5; i++) {
      buf_printf(o, "3e8\r\n");
      buf_append(o, big, 1000);
      buf_printf(o, "\r\n");
    }
    buf_printf(o, "0\r\n\r\n");
  } else if (strcmp(target, "/redir") == 0) {
    respond(o, 302, "Location: /hello\r\n", "", 0);
  } else if (strcmp(target, "/loop") == 0) {
    respond(o, 302, "Location: /loop\r\n", "", 0);
  } else if (strcmp(target, "/toftp") == 0) {
    respond(o, 302, "Location: ftp://127.0.0.1/x\r\n", "", 0);
  } else if (strncmp(target, "/announce", 9) == 0) {
    if (!env.tr.hold)
      respond(o, env.tr.code, "", env.tr.body, env.tr.len);
  } else if (strcmp(target, "/hold") != 0) {
    respond(o, 400, "", "", 0);
  }
}

static void conn_closed(uv_handle_t *h)
{
  struct conn *c = (struct conn *)h;
  for (struct conn **pp = &env.srv.conns; *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  }
  buf_free(&c->out);
  free(c);
}

static void conn_close(struct conn *c)
{
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
  (void)status;
  conn_close((struct conn *)w->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  struct conn *c = (struct conn *)h;
  (void)suggested;
  b->base = c->in + c->inlen;
  b->len = sizeof c->in - 1 - c->inlen;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct conn *c = (struct conn *)st;
  (void)b;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  c->inlen += (size_t)nread;
  c->in[c->inlen] = '\0';
  if (c->answered || strstr(c->in, "\r\n\r\n") == NULL) {
    if (c->inlen >= sizeof c->in - 1)
      conn_close(c);
    return;
  }
  c->answered = true;
  char target[1024] = "";
  sscanf(c->in, "GET %1023s HTTP/1.1", target);
  if (env.srv.nreq < SRV_MAX_REQS)
    snprintf(env.srv.target[env.srv.nreq], sizeof env.srv.target[0], "%s", target);
  env.srv.nreq++;
  snprintf(env.srv.last_head, sizeof env.srv.last_head, "%s", c->in);
  route(target, &c->out);
  if (c->out.len == 0)
    return;   /* hold: never answer */
  uv_buf_t ob = uv_buf_init((char *)c->out.p, (unsigned)c->out.len);
  c->wr.data = c;
  if (uv_write(&c->wr, st, &ob, 1, on_written) != 0)
    conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
  if (status < 0)
    return;
  struct conn *c = calloc(1, sizeof *c);
  ck_assert_ptr_nonnull(c);
  buf_init(&c->out, 1 << 20);
  uv_tcp_init(&env.loop, &c->tcp);
  c->next = env.srv.conns;
  env.srv.conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    conn_close(c);
}

static int tcp_port(uv_tcp_t *t)
{
  struct sockaddr_storage ss;
  int len = sizeof ss;
  ck_assert_int_eq(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A port with nothing listening (bound, then closed). */
static int refused_port(void)
{
  uv_tcp_t t;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&env.loop, &t);
  ck_assert_int_eq(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
  int port = tcp_port(&t);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&env.loop, UV_RUN_NOWAIT);
  return port;
}

static void on_guard(uv_timer_t *t)
{
  (void)t;
  env.guard_fired = true;
}

/* Runs the loop until *counter >= want or ms pass.  Returns true when reached. */
static bool run_until(const int *counter, int want, unsigned ms)
{
  env.guard_fired = false;
  uv_timer_start(&env.guard, on_guard, ms, 0);
  while (*counter < want && !env.guard_fired)
    uv_run(&env.loop, UV_RUN_ONCE);
  uv_timer_stop(&env.guard);
  return *counter >= want;
}

static void run_for(unsigned ms)
{
  static const int never = 0;
  run_until(&never, 1, ms);
}

static void setup(void)
{
  memset(&env, 0, sizeof env);
  /* Loopback only: never through a proxy from the environment. */
  setenv("no_proxy", "*", 1);
  setenv("NO_PROXY", "*", 1);
  ck_assert_int_eq(uv_loop_init(&env.loop), 0);
  ck_assert_int_eq(uv_timer_init(&env.loop, &env.guard), 0);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  ck_assert_int_eq(uv_tcp_init(&env.loop, &env.srv.tcp), 0);
  ck_assert_int_eq(uv_tcp_bind(&env.srv.tcp, (const struct sockaddr *)&a, 0), 0);
  ck_assert_int_eq(uv_listen((uv_stream_t *)&env.srv.tcp, 64, on_connection), 0);
  env.srv.port = tcp_port(&env.srv.tcp);
  ck_assert_int_eq(http_client_new(&env.loop, &env.http), 0);
  env.tr.code = 200;
}

static void on_client_closed(void *ctx)
{
  int *n = ctx;
  (*n)++;
}

static void teardown(void)
{
  int closed = 0;
  if (env.http)
    http_client_close(env.http, on_client_closed, &closed);
  for (struct conn *c = env.srv.conns; c; c = c->next)
    conn_close(c);
  uv_close((uv_handle_t *)&env.srv.tcp, NULL);
  uv_close((uv_handle_t *)&env.guard, NULL);
  uv_run(&env.loop, UV_RUN_DEFAULT);
  if (env.http)
    ck_assert_int_eq(closed, 1);
  ck_assert_int_eq(uv_loop_close(&env.loop), 0);   /* nothing left open */
}

static void url(char *out, size_t cap, const char *path)
{
  snprintf(out, cap, "http://127.0.0.1:%d%s", env.srv.port, path);
}

/* ---- http_client ---- */

struct result {
  int calls;
  int status;
  long code;
  char body[8192];
  size_t len;
  char err[256];
};

static void on_done(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg)
{
  struct result *r = ctx;
  r->calls++;
  r->status = status;
  r->code = code;
  ck_assert_ptr_nonnull(body);
  ck_assert_int_eq(body[len], 0);
  ck_assert_ptr_nonnull(errmsg);
  r->len = len;
  if (len < sizeof r->body)
    memcpy(r->body, body, len + 1);
  snprintf(r->err, sizeof r->err, "%s", errmsg);
}

static void get(const char *path, unsigned timeout_ms, size_t max, struct result *r)
{
  char u[256];
  url(u, sizeof u, path);
  memset(r, 0, sizeof *r);
  ck_assert_int_eq(http_get(env.http, u, timeout_ms, max, on_done, r, NULL), 0);
  ck_assert_int_eq(r->calls, 0);   /* never from inside http_get */
}

START_TEST(test_get_ok)
{
  struct result r;
  get("/hello", 2000, 0, &r);
  ck_assert_uint_eq(http_client_pending(env.http), 1);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 200);
  ck_assert_uint_eq(r.len, 11);
  ck_assert_str_eq(r.body, "hello world");
  ck_assert_str_eq(r.err, "");
  ck_assert_uint_eq(http_client_pending(env.http), 0);
  ck_assert_int_eq(env.srv.nreq, 1);
  ck_assert_ptr_nonnull(strstr(env.srv.last_head, "User-Agent: shoal/0.1\r\n"));
  ck_assert_ptr_nonnull(strstr(env.srv.last_head, "Accept-Encoding:"));
  run_for(50);
  ck_assert_int_eq(r.calls, 1);   /* exactly once */

  get("/404", 2000, 0, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 404);
  ck_assert_str_eq(r.body, "nope");
}
END_TEST

START_TEST(test_body_cap)
{
  struct result r;
  get("/big", 2000, 4999, &r);              /* Content-Length over the cap */
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, SHOAL_ETOOBIG);
  ck_assert_int_eq(r.code, 0);
  ck_assert_uint_eq(r.len, 0);
  ck_assert_str_ne(r.err, "");

  get("/bigchunked", 2000, 4999, &r);       /* no length: stopped while receiving */
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, SHOAL_ETOOBIG);

  get("/bigchunked", 2000, 1, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, SHOAL_ETOOBIG);

  get("/big", 2000, 5000, &r);              /* exactly the cap: fine */
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.len, 5000);
  get("/bigchunked", 2000, 5000, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, 0);
  ck_assert_uint_eq(r.len, 5000);
}
END_TEST

START_TEST(test_errors)
{
  struct result r;
  char u[256];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/x", refused_port());
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(http_get(env.http, u, 2000, 0, on_done, &r, NULL), 0);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, UV_ECONNREFUSED);
  ck_assert_str_ne(r.err, "");

  uint64_t t0 = uv_now(&env.loop);
  get("/hold", 300, 0, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, UV_ETIMEDOUT);
  ck_assert_uint_ge(uv_now(&env.loop) - t0, 250);

  /* Schemes other than http/https, directly or by redirect. */
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(http_get(env.http, "ftp://127.0.0.1:1/x", 2000, 0, on_done, &r, NULL), 0);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, UV_EPROTONOSUPPORT);
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(http_get(env.http, "udp://127.0.0.1:1/announce", 2000, 0, on_done, &r, NULL), 0);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, UV_EPROTONOSUPPORT);
  get("/toftp", 2000, 0, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, UV_EPROTONOSUPPORT);

  /* Refused synchronously: no callback ever. */
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(http_get(env.http, "http://127.0.0.1/", 0, 0, NULL, NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(http_get(env.http, "", 0, 0, on_done, &r, NULL), UV_EINVAL);
  ck_assert_int_eq(http_get(env.http, "http://127.0.0.1/", 0, HTTP_CLIENT_MAX_BODY + 1, on_done, &r, NULL), UV_EINVAL);
  char *longu = malloc(HTTP_CLIENT_MAX_URL + 16);
  memset(longu, 'a', HTTP_CLIENT_MAX_URL + 15);
  memcpy(longu, "http://x/", 9);
  longu[HTTP_CLIENT_MAX_URL + 15] = '\0';
  ck_assert_int_eq(http_get(env.http, longu, 0, 0, on_done, &r, NULL), UV_EINVAL);
  free(longu);
  run_for(50);
  ck_assert_int_eq(r.calls, 0);
}
END_TEST

START_TEST(test_redirects)
{
  struct result r;
  get("/redir", 2000, 0, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(r.code, 200);
  ck_assert_str_eq(r.body, "hello world");
  ck_assert_int_eq(env.srv.nreq, 2);

  env.srv.nreq = 0;
  get("/loop", 2000, 0, &r);
  ck_assert(run_until(&r.calls, 1, 3000));
  ck_assert_int_eq(r.status, UV_ELOOP);
  ck_assert_int_eq(env.srv.nreq, 4);   /* the request and 3 redirects */
}
END_TEST

START_TEST(test_cancel)
{
  struct result r1, r2;
  char u[256];
  url(u, sizeof u, "/hold");
  struct http_req *req = NULL;
  memset(&r1, 0, sizeof r1);
  ck_assert_int_eq(http_get(env.http, u, 2000, 0, on_done, &r1, &req), 0);
  ck_assert_ptr_nonnull(req);
  http_cancel(req);                    /* before it even started */
  ck_assert_uint_eq(http_client_pending(env.http), 0);

  memset(&r2, 0, sizeof r2);
  ck_assert_int_eq(http_get(env.http, u, 500, 0, on_done, &r2, &req), 0);
  ck_assert(run_until(&env.srv.nreq, 1, 3000));   /* the server holds it */
  http_cancel(req);
  run_for(800);                        /* past its timeout */
  ck_assert_int_eq(r1.calls, 0);
  ck_assert_int_eq(r2.calls, 0);

  /* The client still works. */
  struct result r3;
  get("/hello", 2000, 0, &r3);
  ck_assert(run_until(&r3.calls, 1, 3000));
  ck_assert_int_eq(r3.status, 0);
  ck_assert_str_eq(r3.body, "hello world");
}
END_TEST

START_TEST(test_close_pending)
{
  struct result r[3];
  for (int i = 0; i < 3; i++)
    get("/hold", 2000, 0, &r[i]);
  ck_assert(run_until(&env.srv.nreq, 3, 3000));
  int closed = 0;
  http_client_close(env.http, on_client_closed, &closed);
  env.http = NULL;
  ck_assert_int_eq(closed, 0);         /* from the loop, not inside */
  ck_assert(run_until(&closed, 1, 2000));
  run_for(100);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(r[i].calls, 0);
}
END_TEST

static int close_from_cb_closed;
static void on_done_close(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg)
{
  on_done(ctx, status, code, body, len, errmsg);
  http_client_close(env.http, on_client_closed, &close_from_cb_closed);
  env.http = NULL;
}

START_TEST(test_close_from_callback)
{
  struct result held, r;
  get("/hold", 2000, 0, &held);
  char u[256];
  url(u, sizeof u, "/hello");
  memset(&r, 0, sizeof r);
  close_from_cb_closed = 0;
  ck_assert_int_eq(http_get(env.http, u, 2000, 0, on_done_close, &r, NULL), 0);
  ck_assert(run_until(&close_from_cb_closed, 1, 3000));
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(held.calls, 0);
}
END_TEST

struct chain {
  int done;
  int ok;
  int left;
};
static void on_chain(void *ctx, int status, long code, const uint8_t *body, size_t len, const char *errmsg)
{
  struct chain *c = ctx;
  (void)errmsg;
  c->done++;
  if (status == 0 && code == 200 && len == 11 && memcmp(body, "hello world", 11) == 0)
    c->ok++;
  if (c->left > 0) {   /* the next one from inside the callback: sockets closed and reopened */
    c->left--;
    char u[256];
    url(u, sizeof u, "/hello");
    ck_assert_int_eq(http_get(env.http, u, 2000, 0, on_chain, c, NULL), 0);
  }
}

START_TEST(test_many)
{
  struct chain par = { 0, 0, 0 };
  char u[256];
  url(u, sizeof u, "/hello");
  for (int i = 0; i < 20; i++)
    ck_assert_int_eq(http_get(env.http, u, 3000, 0, on_chain, &par, NULL), 0);
  ck_assert(run_until(&par.done, 20, 5000));
  ck_assert_int_eq(par.ok, 20);

  struct chain seq = { 0, 0, 29 };
  ck_assert_int_eq(http_get(env.http, u, 3000, 0, on_chain, &seq, NULL), 0);
  ck_assert(run_until(&seq.done, 30, 8000));
  ck_assert_int_eq(seq.ok, 30);
  ck_assert_uint_eq(http_client_pending(env.http), 0);
}
END_TEST

/* ---- announce on the loop ---- */

struct tctx {
  int stats_calls;
  int peers_calls;
  size_t npeers;
  struct sockaddr_storage first;
  int status_calls;
  char status[512];
  char status_url[512];
  int stopped;
  bool free_in_status;
  struct announce *a;
};

static void t_stats(void *ctx, uint64_t *up, uint64_t *down, uint64_t *left)
{
  struct tctx *t = ctx;
  t->stats_calls++;
  *up = 10;
  *down = 20;
  *left = 30;
}

static void t_peers(void *ctx, const struct sockaddr_storage *p, size_t n)
{
  struct tctx *t = ctx;
  t->peers_calls++;
  t->npeers = n;
  ck_assert_uint_gt(n, 0);
  t->first = p[0];
}

static void t_status(void *ctx, const char *u, const char *msg)
{
  struct tctx *t = ctx;
  t->status_calls++;
  snprintf(t->status, sizeof t->status, "%s", msg);
  snprintf(t->status_url, sizeof t->status_url, "%s", u);
  if (t->free_in_status) {
    announce_free(t->a);
    t->a = NULL;
  }
}

static void t_stopped(void *ctx)
{
  struct tctx *t = ctx;
  t->stopped++;
}

static const struct announce_cbs tcbs = { t_stats, t_peers, t_status };

static struct announce *mk(struct tctx *t, struct manifest_tier *tiers, uint32_t n)
{
  struct announce_params p;
  memset(&p, 0, sizeof p);
  for (int i = 0; i < 20; i++)
    p.infohash[i] = (uint8_t)(0xa0 + i);
  memcpy(p.peer_id, "-SH0001-abcdefghijkl", 20);
  p.port = 6881;
  p.min_interval_floor_s = 1;
  struct announce *a = NULL;
  ck_assert_int_eq(announce_new(&env.loop, env.http, tiers, n, &p, &tcbs, t, &a), 0);
  t->a = a;
  return a;
}

static void set_reply(const char *body, size_t len)
{
  env.tr.body = body;
  env.tr.len = len;
}
#define SET_REPLY(lit) set_reply((lit), sizeof(lit) - 1)

static const char ok_reply[] =
    "d8:completei3e10:incompletei4e8:intervali1e12:min intervali1e"
    "5:peers12:\x7f\x00\x00\x02\x1a\xe1\x7f\x00\x00\x03\x1a\xe2"
    "10:tracker id3:tide";

START_TEST(test_announce_flow)
{
  char u[256];
  url(u, sizeof u, "/announce");
  char *urls[] = { u };
  struct manifest_tier tier = { urls, 1 };
  struct tctx t;
  memset(&t, 0, sizeof t);
  SET_REPLY(ok_reply);
  struct announce *a = mk(&t, &tier, 1);
  run_for(50);
  ck_assert_int_eq(env.srv.nreq, 0);   /* nothing before start */

  announce_start(a);
  ck_assert(run_until(&t.peers_calls, 1, 3000));
  ck_assert_int_eq(env.srv.nreq, 1);
  const char *q = env.srv.target[0];
  ck_assert(strncmp(q, "/announce?info_hash=%A0%A1%A2", 29) == 0);
  ck_assert_ptr_nonnull(strstr(q, "&peer_id=-SH0001-abcdefghijkl&port=6881&uploaded=10&downloaded=20&left=30&"));
  ck_assert_ptr_nonnull(strstr(q, "&compact=1&no_peer_id=1&numwant=50&key="));
  ck_assert_ptr_nonnull(strstr(q, "&event=started"));
  ck_assert_ptr_null(strstr(q, "trackerid="));
  const char *k = strstr(q, "&key=");
  ck_assert_uint_eq(strspn(k + 5, "0123456789abcdef"), 8);
  ck_assert_uint_eq(t.npeers, 2);
  ck_assert_int_eq(t.first.ss_family, AF_INET);
  ck_assert_int_eq(ntohs(((struct sockaddr_in *)&t.first)->sin_port), 6881);
  ck_assert_str_eq(t.status, "ok");
  ck_assert_str_eq(t.status_url, u);
  struct announce_info info;
  announce_get_info(a, &info);
  ck_assert_int_eq(info.seeders, 3);
  ck_assert_int_eq(info.leechers, 4);
  ck_assert_str_eq(info.status, "ok");
  ck_assert_str_eq(info.working_url, u);
  ck_assert_uint_eq(info.failures, 0);
  ck_assert_uint_gt(info.next_in_ms, 0);
  ck_assert_uint_le(info.next_in_ms, 1000);

  /* Regular re-announce after the interval: no event, tracker id echoed, same key. */
  ck_assert(run_until(&env.srv.nreq, 2, 3000));
  q = env.srv.target[1];
  ck_assert_ptr_null(strstr(q, "event="));
  ck_assert_ptr_nonnull(strstr(q, "&trackerid=tid"));
  ck_assert(strncmp(strstr(q, "&key="), k, 13) == 0);

  /* Completed goes out at once. */
  ck_assert(run_until(&t.peers_calls, 2, 3000));
  announce_completed(a);
  ck_assert(run_until(&env.srv.nreq, 3, 500));
  ck_assert_ptr_nonnull(strstr(env.srv.target[2], "&event=completed"));
  ck_assert(run_until(&t.peers_calls, 3, 3000));

  /* Stop: event=stopped with numwant=0 to the working tracker, then done. */
  int before = env.srv.nreq;
  announce_stop(a, t_stopped, &t);
  ck_assert(run_until(&t.stopped, 1, 3000));
  ck_assert_int_eq(env.srv.nreq, before + 1);
  q = env.srv.target[before];
  ck_assert_ptr_nonnull(strstr(q, "&event=stopped"));
  ck_assert_ptr_nonnull(strstr(q, "&numwant=0"));
  ck_assert_ptr_nonnull(strstr(q, "&trackerid=tid"));
  /* Nothing more after stop. */
  run_for(1300);
  ck_assert_int_eq(env.srv.nreq, before + 1);
  ck_assert_int_eq(t.stopped, 1);
  announce_free(a);
}
END_TEST

START_TEST(test_announce_failover)
{
  char good[256], bad[256], backup[256];
  url(good, sizeof good, "/announce?t=good");
  url(backup, sizeof backup, "/announce?t=backup");
  snprintf(bad, sizeof bad, "http://127.0.0.1:%d/announce", refused_port());
  char *t0[] = { bad, "wss://127.0.0.1:1/announce", good };
  char *t1[] = { backup };
  struct manifest_tier tiers[2] = { { t0, 3 }, { t1, 1 } };
  struct tctx t;
  memset(&t, 0, sizeof t);
  SET_REPLY(ok_reply);
  struct announce *a = mk(&t, tiers, 2);
  announce_start(a);
  ck_assert(run_until(&t.peers_calls, 1, 3000));
  /* Whatever the shuffle, the good tracker of tier 0 answered; the backup tier was not asked. */
  struct announce_info info;
  announce_get_info(a, &info);
  ck_assert_str_eq(info.working_url, good);
  ck_assert_int_eq(env.srv.nreq, 1);
  ck_assert(strncmp(env.srv.target[0], "/announce?t=good&info_hash=", 27) == 0);
  announce_free(a);

  /* Tier 0 dead: the backup tier answers. */
  char *d0[] = { bad };
  struct manifest_tier tiers2[2] = { { d0, 1 }, { t1, 1 } };
  memset(&t, 0, sizeof t);
  a = mk(&t, tiers2, 2);
  announce_start(a);
  ck_assert(run_until(&t.peers_calls, 1, 3000));
  announce_get_info(a, &info);
  ck_assert_str_eq(info.working_url, backup);
  ck_assert_int_eq(t.status_calls, 2);   /* the refusal, then ok */
  ck_assert(strncmp(env.srv.target[1], "/announce?t=backup&info_hash=", 29) == 0);
  ck_assert_ptr_nonnull(strstr(env.srv.target[1], "&event=started"));
  announce_free(a);
}
END_TEST

START_TEST(test_announce_failure_backoff)
{
  char u[256];
  url(u, sizeof u, "/announce");
  char *urls[] = { u };
  struct manifest_tier tier = { urls, 1 };
  struct tctx t;
  memset(&t, 0, sizeof t);
  SET_REPLY("d14:failure reason7:go awaye");
  struct announce *a = mk(&t, &tier, 1);
  announce_start(a);
  ck_assert(run_until(&t.status_calls, 1, 3000));
  ck_assert_str_eq(t.status, "failure: go away");
  struct announce_info info;
  announce_get_info(a, &info);
  ck_assert_uint_eq(info.failures, 1);
  ck_assert_ptr_null(info.working_url);
  ck_assert_uint_gt(info.next_in_ms, 0);
  ck_assert_uint_le(info.next_in_ms, 1200);   /* floor 1 s: back-off starts at 1 s + jitter */
  ck_assert_int_eq(t.peers_calls, 0);

  /* The retry still says started; a 404 counts as a failure too. */
  env.tr.code = 404;
  SET_REPLY(ok_reply);
  ck_assert(run_until(&t.status_calls, 2, 3000));
  ck_assert_str_eq(t.status, "HTTP 404");
  ck_assert_ptr_nonnull(strstr(env.srv.target[1], "&event=started"));
  announce_get_info(a, &info);
  ck_assert_uint_eq(info.failures, 2);
  ck_assert_uint_gt(info.next_in_ms, 1000);   /* 2 s now */

  /* Garbage with 200: a failure as well. */
  env.tr.code = 200;
  SET_REPLY("<html>oops</html>");
  ck_assert(run_until(&t.status_calls, 3, 4000));
  ck_assert(strncmp(t.status, "bad reply: ", 11) == 0);

  env.tr.code = 200;
  SET_REPLY(ok_reply);
  ck_assert(run_until(&t.peers_calls, 1, 6000));
  ck_assert_ptr_nonnull(strstr(env.srv.target[3], "&event=started"));
  announce_get_info(a, &info);
  ck_assert_uint_eq(info.failures, 0);
  ck_assert_str_eq(info.status, "ok");
  announce_free(a);
}
END_TEST

START_TEST(test_announce_now_rate_limited)
{
  char u[256];
  url(u, sizeof u, "/announce");
  char *urls[] = { u };
  struct manifest_tier tier = { urls, 1 };
  struct tctx t;
  memset(&t, 0, sizeof t);
  SET_REPLY("d8:intervali60e12:min intervali1e5:peers6:\x7f\x00\x00\x02\x1a\xe1" "e");
  struct announce *a = mk(&t, &tier, 1);
  announce_start(a);
  ck_assert(run_until(&t.peers_calls, 1, 3000));
  struct announce_info info;
  announce_get_info(a, &info);
  ck_assert_uint_gt(info.next_in_ms, 50000);   /* interval 60 s */
  uint64_t t0 = uv_now(&env.loop);
  announce_now(a);
  announce_now(a);
  announce_get_info(a, &info);
  ck_assert_uint_le(info.next_in_ms, 1000);    /* min interval 1 s */
  ck_assert(run_until(&env.srv.nreq, 2, 3000));
  ck_assert_uint_ge(uv_now(&env.loop) - t0, 900);
  ck_assert_ptr_null(strstr(env.srv.target[1], "event="));
  ck_assert(run_until(&t.peers_calls, 2, 3000));
  run_for(300);
  ck_assert_int_eq(env.srv.nreq, 2);
  announce_free(a);
}
END_TEST

START_TEST(test_announce_stop_cases)
{
  /* Only an unsupported (wss) tracker: nothing sent, stop's done comes from the loop. */
  char *urls[] = { "wss://127.0.0.1:1/announce" };
  struct manifest_tier tier = { urls, 1 };
  struct tctx t;
  memset(&t, 0, sizeof t);
  struct announce *a = mk(&t, &tier, 1);
  announce_start(a);
  run_for(100);
  ck_assert_int_eq(env.srv.nreq, 0);
  struct announce_info info;
  announce_get_info(a, &info);
  ck_assert_ptr_nonnull(strstr(info.status, "no usable tracker"));
  announce_stop(a, t_stopped, &t);
  ck_assert_int_eq(t.stopped, 0);
  ck_assert(run_until(&t.stopped, 1, 1000));
  announce_free(a);

  /* Stop before start: done, nothing sent. */
  char u[256];
  url(u, sizeof u, "/announce");
  char *urls2[] = { u };
  struct manifest_tier tier2 = { urls2, 1 };
  memset(&t, 0, sizeof t);
  a = mk(&t, &tier2, 1);
  announce_stop(a, t_stopped, &t);
  ck_assert(run_until(&t.stopped, 1, 1000));
  ck_assert_int_eq(env.srv.nreq, 0);
  announce_start(a);                      /* no effect once stopped */
  run_for(100);
  ck_assert_int_eq(env.srv.nreq, 0);
  announce_free(a);

  /* Free with the started request in flight: no callback at all. */
  env.tr.hold = true;
  memset(&t, 0, sizeof t);
  a = mk(&t, &tier2, 1);
  announce_start(a);
  ck_assert(run_until(&env.srv.nreq, 1, 3000));
  announce_free(a);
  run_for(200);
  ck_assert_int_eq(t.status_calls, 0);
  ck_assert_int_eq(t.peers_calls, 0);

  /* Stop then free before the stopped reply: done never called. */
  env.tr.hold = false;
  SET_REPLY(ok_reply);
  memset(&t, 0, sizeof t);
  a = mk(&t, &tier2, 1);
  announce_start(a);
  ck_assert(run_until(&t.peers_calls, 1, 3000));
  env.tr.hold = true;
  int before = env.srv.nreq;
  announce_stop(a, t_stopped, &t);
  ck_assert(run_until(&env.srv.nreq, before + 1, 3000));
  announce_free(a);
  run_for(200);
  ck_assert_int_eq(t.stopped, 0);

  /* The stopped request times out: done after ANNOUNCE_STOP_TIMEOUT_MS at most. */
  env.tr.hold = false;
  memset(&t, 0, sizeof t);
  a = mk(&t, &tier2, 1);
  announce_start(a);
  ck_assert(run_until(&t.peers_calls, 1, 3000));
  env.tr.hold = true;
  uint64_t t0 = uv_now(&env.loop);
  announce_stop(a, t_stopped, &t);
  ck_assert(run_until(&t.stopped, 1, ANNOUNCE_STOP_TIMEOUT_MS + 2000));
  ck_assert_uint_ge(uv_now(&env.loop) - t0, ANNOUNCE_STOP_TIMEOUT_MS - 100);
  announce_free(a);
}
END_TEST

START_TEST(test_announce_free_in_callback)
{
  char u[256];
  url(u, sizeof u, "/announce");
  char *urls[] = { u };
  struct manifest_tier tier = { urls, 1 };
  struct tctx t;
  memset(&t, 0, sizeof t);
  t.free_in_status = true;
  SET_REPLY(ok_reply);
  mk(&t, &tier, 1);
  announce_start(t.a);
  ck_assert(run_until(&t.status_calls, 1, 3000));
  ck_assert_ptr_null(t.a);
  run_for(1500);
  ck_assert_int_eq(t.peers_calls, 0);   /* freed in status: peers not delivered */
  ck_assert_int_eq(t.status_calls, 1);
  ck_assert_int_eq(env.srv.nreq, 1);
}
END_TEST

Suite *http_client_suite(void)
{
  Suite *s = suite_create("http_client");
  TCase *tc = tcase_create("http");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_get_ok);
  tcase_add_test(tc, test_body_cap);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_redirects);
  tcase_add_test(tc, test_cancel);
  tcase_add_test(tc, test_close_pending);
  tcase_add_test(tc, test_close_from_callback);
  tcase_add_test(tc, test_many);
  suite_add_tcase(s, tc);

  tc = tcase_create("announce_loop");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_announce_flow);
  tcase_add_test(tc, test_announce_failover);
  tcase_add_test(tc, test_announce_failure_backoff);
  tcase_add_test(tc, test_announce_now_rate_limited);
  tcase_add_test(tc, test_announce_stop_cases);
  tcase_add_test(tc, test_announce_free_in_callback);
  suite_add_tcase(s, tc);
  return s;
}
