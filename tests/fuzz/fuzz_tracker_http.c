/* fuzz_tracker_http.c -- libFuzzer target: raw HTTP bytes sent to the tracker's real server (libuv + http-parser) over loopback. */
#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/bencode.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "tests/fuzz/fuzzutil.h"
#include "tracker/http.h"
#include "tracker/swarms.h"

/* Each input is one connection's bytes: a fresh server (and swarms table) on
 * 127.0.0.1 with a kernel-chosen port, a client that writes the input in
 * one write, waits until nothing moves any more (the server has answered
 * what it could), half-closes, and reads until the server closes.  The
 * answers must form a valid HTTP/1.1 response stream whose 200 bodies are
 * canonical bencode dicts.  A connection that does not end within GUARD_MS
 * is a hang (abort).
 *
 * Thousands of connections a second must not leave sockets in TIME_WAIT
 * (they would fill the machine's port space): the server's sockets get
 * SO_LINGER 0 (inherited from its listening socket) so that they end with
 * a reset, and the client half-closes only once the server has answered,
 * so that a server closing after a "Connection: close" answer sends its FIN
 * first and the client, answering with a reset, never reaches TIME_WAIT. */
#define INPUT_MAX 12000u            /* below the server's 16 KiB read buffer */
#define RESP_MAX (8u << 20)
#define GUARD_MS 10000
#define IDLE_TURNS 4                /* loop turns without progress: the server is done */

static const struct swarms_limits small = { .max_swarms = 8, .max_peers_per_swarm = 16, .max_peers = 64 };
static const uint8_t key[SWARMS_KEY_LEN] = "fuzz-swarms-key";
static uv_loop_t loop;

struct client {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  uv_timer_t guard;
  uv_buf_t out;
  struct buf in;
  bool written, shut, closed;
  int error;   /* a client-side failure (connect, write) */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  signal(SIGPIPE, SIG_IGN);
  log_level = -1;   /* the server's log lines are noise here */
  FUZZ_CHECK(uv_loop_init(&loop) == 0);
  return 0;
}

static void on_closed(uv_handle_t *h)
{
  struct client *c = h->data;
  c->closed = true;
}

static void client_close(struct client *c)
{
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  /* Reset rather than linger in TIME_WAIT: thousands of connections a second. */
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  static char space[65536];
  b->base = space;
  b->len = sizeof space;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct client *c = st->data;
  if (nread < 0) {
    client_close(c);     /* EOF (or a reset): the server is done */
    return;
  }
  if (nread > 0)
    FUZZ_CHECK(buf_append(&c->in, b->base, (size_t)nread) == 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) { (void)req; (void)status; }

static void on_written(uv_write_t *req, int status)
{
  struct client *c = req->data;
  (void)status;   /* the server may close before reading everything (e.g. after a 400) */
  c->written = true;
}

static void client_shutdown(struct client *c)
{
  c->shut = true;
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  c->shutdown_req.data = c;
  uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_connect(uv_connect_t *req, int status)
{
  struct client *c = req->data;
  if (status < 0) {
    c->error = status;
    client_close(c);
    return;
  }
  FUZZ_CHECK(uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0);
  c->write_req.data = c;
  if (c->out.len == 0) {
    c->written = true;
    return;
  }
  FUZZ_CHECK(uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &c->out, 1, on_written) == 0);
}

/* The server's listening socket (found by its address): its options are
 * inherited by the sockets it accepts. */
static void server_linger0(const struct sockaddr_storage *addr)
{
  for (int fd = 0; fd < 4096; fd++) {
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    int listening = 0;
    socklen_t llen = sizeof listening;
    if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0 || a.ss_family != AF_INET ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &llen) != 0 || !listening)
      continue;
    const struct sockaddr_in *x = (const struct sockaddr_in *)&a, *y = (const struct sockaddr_in *)addr;
    if (x->sin_port != y->sin_port || x->sin_addr.s_addr != y->sin_addr.s_addr)
      continue;
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    FUZZ_CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    return;
  }
  FUZZ_CHECK(!"the server's listening socket was not found");
}

static void on_guard(uv_timer_t *t)
{
  fprintf(stderr, "the connection did not end within %d ms\n", GUARD_MS);
  abort();
}

/* ---- checking the response stream ---- */

struct resp_check {
  struct buf body;
  int responses;
  bool complete;        /* the last message ended */
  bool saw_close;       /* a response said Connection: close */
  bool header_is_cl, header_is_conn;
  bool had_cl;
};

static int rc_begin(http_parser *p)
{
  struct resp_check *r = p->data;
  FUZZ_CHECK(!r->saw_close);              /* nothing after a closing answer */
  r->body.len = 0;
  r->complete = false;
  r->had_cl = false;
  return 0;
}

static int rc_header_field(http_parser *p, const char *at, size_t len)
{
  struct resp_check *r = p->data;
  r->header_is_cl = len == 14 && strncasecmp(at, "Content-Length", 14) == 0;
  r->header_is_conn = len == 10 && strncasecmp(at, "Connection", 10) == 0;
  if (r->header_is_cl)
    r->had_cl = true;
  return 0;
}

static int rc_header_value(http_parser *p, const char *at, size_t len)
{
  struct resp_check *r = p->data;
  if (r->header_is_conn && len == 5 && strncasecmp(at, "close", 5) == 0)
    r->saw_close = true;
  return 0;
}

static int rc_body(http_parser *p, const char *at, size_t len)
{
  struct resp_check *r = p->data;
  FUZZ_CHECK(buf_append(&r->body, at, len) == 0);
  return 0;
}

static int rc_complete(http_parser *p)
{
  struct resp_check *r = p->data;
  unsigned status = p->status_code;
  FUZZ_CHECK(p->http_major == 1 && p->http_minor == 1);
  FUZZ_CHECK(status == 200 || status == 400 || status == 404 || status == 405 || status == 413 ||
             status == 431 || status == 500);
  FUZZ_CHECK(r->had_cl && r->body.len > 0 && r->body.len <= TRACKERHTTP_BODY_MAX);
  if (status == 200) {
    static const struct bencode_limits lim = {
      .max_tokens = 1u << 20, .max_depth = 8, .allow_trailing = false, .require_sorted = true,
    };
    struct bencode_doc d;
    char err[SHOAL_ERRLEN];
    int rc = bencode_decode(&d, r->body.p, r->body.len, &lim, err, sizeof err);
    if (rc)
      fprintf(stderr, "200 answer is not canonical bencode: %s\n", err);
    FUZZ_CHECK(rc == 0 && d.tok[0].type == BENCODE_DICT);
    bencode_free(&d);
  }
  r->responses++;
  r->complete = true;
  return 0;
}

static const http_parser_settings rc_settings = {
  .on_message_begin = rc_begin,
  .on_header_field = rc_header_field,
  .on_header_value = rc_header_value,
  .on_body = rc_body,
  .on_message_complete = rc_complete,
};

static void check_responses(const struct buf *in)
{
  struct resp_check r;
  memset(&r, 0, sizeof r);
  r.complete = true;
  buf_init(&r.body, TRACKERHTTP_BODY_MAX + 1);
  http_parser p;
  http_parser_init(&p, HTTP_RESPONSE);
  p.data = &r;
  size_t n = in->len ? http_parser_execute(&p, &rc_settings, (const char *)in->p, in->len) : 0;
  if (HTTP_PARSER_ERRNO(&p) != HPE_OK)
    fprintf(stderr, "bad response stream: %s after %zu bytes\n",
            http_errno_description(HTTP_PARSER_ERRNO(&p)), n);
  FUZZ_CHECK(HTTP_PARSER_ERRNO(&p) == HPE_OK && n == in->len);
  FUZZ_CHECK(r.complete);                  /* no answer cut short */
  buf_free(&r.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > INPUT_MAX)
    return 0;
  struct swarms *s = swarms_new(&small, key);
  FUZZ_CHECK(s != NULL);
  struct trackerhttp_config cfg;
  trackerhttp_config_default(&cfg);
  cfg.idle_timeout_ms = GUARD_MS / 2;
  struct sockaddr_in bind;
  FUZZ_CHECK(uv_ip4_addr("127.0.0.1", 0, &bind) == 0);
  struct trackerhttp_server *srv = NULL;
  FUZZ_CHECK(trackerhttp_server_new(&loop, s, &cfg, (const struct sockaddr *)&bind, &srv) == 0);
  struct sockaddr_storage addr;
  FUZZ_CHECK(trackerhttp_server_addr(srv, &addr) == 0);
  server_linger0(&addr);

  struct client c;
  memset(&c, 0, sizeof c);
  buf_init(&c.in, RESP_MAX);
  c.out = uv_buf_init((char *)data, (unsigned)size);
  FUZZ_CHECK(uv_tcp_init(&loop, &c.tcp) == 0);
  c.tcp.data = &c;
  c.connect_req.data = &c;
  FUZZ_CHECK(uv_timer_init(&loop, &c.guard) == 0);
  c.guard.data = &c;
  FUZZ_CHECK(uv_timer_start(&c.guard, on_guard, GUARD_MS, 0) == 0);
  FUZZ_CHECK(uv_tcp_connect(&c.connect_req, &c.tcp, (const struct sockaddr *)&addr, on_connect) == 0);
  /* Everything is on this thread and loopback delivers at once, so a few
   * turns of the loop in which nothing arrives mean the server is waiting. */
  size_t seen = 0;
  int idle = 0;
  while (!c.closed) {
    if (c.shut) {
      uv_run(&loop, UV_RUN_ONCE);
      continue;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    if (!c.written || c.in.len != seen) {
      seen = c.in.len;
      idle = 0;
    } else if (++idle >= IDLE_TURNS) {
      client_shutdown(&c);
    }
  }
  FUZZ_CHECK(c.error == 0);

  /* Close the server and let every handle finish closing. */
  trackerhttp_server_close(srv);
  uv_close((uv_handle_t *)&c.guard, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  swarms_free(s);

  if (getenv("FUZZ_SHOW"))   /* for a person replaying one input */
    fprintf(stderr, "---- %zu bytes of answers ----\n%.*s\n----\n", c.in.len, (int)c.in.len,
            c.in.p ? (const char *)c.in.p : "");
  check_responses(&c.in);
  buf_free(&c.in);
  return 0;
}
