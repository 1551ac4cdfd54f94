/* test_rpc.c -- control API: Host/token checks, token file, and a real loopback server driven by raw sockets and rpc_client_call. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "peer/rpc.h"
#include "peer/rpc_client.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_BAD "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee"
#define TOKEN_UP "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- pure checks ---- */

static bool host_ok(const char *h, const char *const *names, size_t n)
{
  return rpc_host_allowed(h, strlen(h), names, n);
}

START_TEST(test_host_allowed)
{
  static const char *const yes[] = {
    "localhost", "LOCALHOST", "LocalHost:6880", "localhost:1", "localhost:65535", "127.0.0.1",
    "127.0.0.1:6880", "::1", "[::1]", "[::1]:6880", "[::1]:0",
  };
  static const char *const no[] = {
    "", "localhost.evil.com", "localhost.evil.com:6880", "127.0.0.1.nip.io", "127.0.0.1.nip.io:6880",
    "evil.com", "localhost.", "localhost:", "localhost:abc", "localhost:65536", "localhost:123456",
    "localhost:-1", "localhost:+1", " localhost", "localhost ", "127.0.0.2", "127.0.0.1:6880:1",
    "::2", "[::2]:6880", "[::1", "[::1]x", "[::1]:", "[::1]6880", "[localhost]", "[127.0.0.1]:6880",
    "0:0:0:0:0:0:0:1", "local host", "mybox.lan", ":6880", "[]", "[]:1",
  };
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    ck_assert_msg(host_ok(yes[i], NULL, 0), "should accept '%s'", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    ck_assert_msg(!host_ok(no[i], NULL, 0), "should refuse '%s'", no[i]);

  /* A NUL inside the value does not cut it short. */
  ck_assert(!rpc_host_allowed("localhost\0.evil", 15, NULL, 0));
  /* len is honoured: only "localhost" of "localhostX" is looked at. */
  ck_assert(rpc_host_allowed("localhostX", 9, NULL, 0));
  ck_assert(!rpc_host_allowed(NULL, 0, NULL, 0));

  static const char *const names[] = { "mybox.lan", "", "fe80::1" };
  ck_assert(host_ok("mybox.lan", names, 3));
  ck_assert(host_ok("MyBox.LAN:6880", names, 3));
  ck_assert(host_ok("[FE80::1]:6880", names, 3));
  ck_assert(host_ok("localhost", names, 3));
  ck_assert(!host_ok("mybox.lan.evil.com", names, 3));
  ck_assert(!host_ok("box.lan", names, 3));
  ck_assert(!host_ok("", names, 3));
  ck_assert(!host_ok(":1", names, 3));
  ck_assert(!host_ok("mybox.lan", names, 1 - 1)); /* n = 0: names not looked at */
}
END_TEST

static bool tok_ok(const char *v)
{
  return rpc_token_ok(v, strlen(v), TOKEN);
}

START_TEST(test_token_ok)
{
  ck_assert(tok_ok("Bearer " TOKEN));
  ck_assert(tok_ok("bearer " TOKEN)); /* the scheme is case-insensitive */
  ck_assert(tok_ok("BEARER " TOKEN));
  ck_assert(!tok_ok("Bearer " TOKEN_BAD));
  ck_assert(!tok_ok("Bearer " TOKEN_UP)); /* the token itself is not */
  ck_assert(!tok_ok("Bearer  " TOKEN));
  ck_assert(!tok_ok("Bearer" TOKEN));
  ck_assert(!tok_ok("Bearer:" TOKEN));
  ck_assert(!tok_ok("Basic " TOKEN));
  ck_assert(!tok_ok("Bearer " TOKEN "0"));
  ck_assert(!tok_ok("Bearer " TOKEN " "));
  ck_assert(!tok_ok("Bearer 0123456789abcdef"));
  ck_assert(!tok_ok("Bearer "));
  ck_assert(!tok_ok(""));
  ck_assert(!tok_ok(TOKEN));
  /* len shorter than the string: the token is cut, so refused */
  ck_assert(!rpc_token_ok("Bearer " TOKEN, 7 + 63, TOKEN));
  ck_assert(!rpc_token_ok("Bearer ", 7, ""));
  ck_assert(!rpc_token_ok(NULL, 0, TOKEN));
  ck_assert(!rpc_token_ok("Bearer x", 8, NULL));
}
END_TEST

/* ---- token file ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_token_file)
{
  char dir[] = "/tmp/shoal-rpc-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[256], err[SHOAL_ERRLEN], tok[RPC_TOKEN_HEX + 1], tok2[RPC_TOKEN_HEX + 1];
  snprintf(path, sizeof path, "%s/%s", dir, RPC_TOKEN_FILE);

  ck_assert_int_eq(rpc_token_read(dir, tok, err, sizeof err), UV_ENOENT);

  ck_assert_int_eq(rpc_token_load_or_create(dir, tok, err, sizeof err), 0);
  ck_assert_uint_eq(strlen(tok), RPC_TOKEN_HEX);
  for (size_t i = 0; i < RPC_TOKEN_HEX; i++)
    ck_assert_msg((tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f'), "bad digit %c", tok[i]);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(st.st_size, RPC_TOKEN_HEX + 1);
  char content[200] = "";
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(read(fd, content, sizeof content - 1), RPC_TOKEN_HEX + 1);
  close(fd);
  ck_assert_int_eq(content[RPC_TOKEN_HEX], '\n');
  ck_assert_int_eq(memcmp(content, tok, RPC_TOKEN_HEX), 0);

  /* Read back, and a second start keeps the same token. */
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), 0);
  ck_assert_str_eq(tok2, tok);
  memset(tok2, 0, sizeof tok2);
  ck_assert_int_eq(rpc_token_load_or_create(dir, tok2, err, sizeof err), 0);
  ck_assert_str_eq(tok2, tok);

  /* Readable by others: refused, with the file and the fix named. */
  ck_assert_int_eq(chmod(path, 0644), 0);
  err[0] = '\0';
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_ptr_nonnull(strstr(err, path));
  ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
  ck_assert_ptr_null(strchr(err, '\n'));
  ck_assert_int_eq(rpc_token_load_or_create(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(chmod(path, 0620), 0);
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(chmod(path, 0604), 0);
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(chmod(path, 0600), 0);
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), 0);

  /* Contents that are not a token. */
  static const char *const bad[] = {
    "", "hello\n", TOKEN_UP "\n", TOKEN "\n\n", TOKEN "0\n", "0123\n", TOKEN "\r\n", " " TOKEN,
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_file(path, bad[i], 0600);
    err[0] = '\0';
    ck_assert_msg(rpc_token_read(dir, tok2, err, sizeof err) == UV_EINVAL, "case %zu", i);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_msg(rpc_token_load_or_create(dir, tok2, err, sizeof err) == UV_EINVAL, "case %zu", i);
  }
  /* Without the final newline it is still a token. */
  write_file(path, TOKEN, 0600);
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), 0);
  ck_assert_str_eq(tok2, TOKEN);

  /* Not a regular file: a symlink to a good token, a directory. */
  char target[256];
  snprintf(target, sizeof target, "%s/real", dir);
  write_file(target, TOKEN "\n", 0600);
  ck_assert_int_eq(unlink(path), 0);
  ck_assert_int_eq(symlink(target, path), 0);
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(rpc_token_load_or_create(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(unlink(path), 0);
  ck_assert_int_eq(mkdir(path, 0700), 0);
  ck_assert_int_eq(rpc_token_read(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(rpc_token_load_or_create(dir, tok2, err, sizeof err), UV_EPERM);
  ck_assert_int_eq(rmdir(path), 0);
  ck_assert_int_eq(unlink(target), 0);

  /* A new token each time the file is created. */
  ck_assert_int_eq(rpc_token_load_or_create(dir, tok2, err, sizeof err), 0);
  ck_assert_str_ne(tok2, tok);
  ck_assert_int_eq(unlink(path), 0);

  /* No such directory. */
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nope", dir);
  ck_assert_int_eq(rpc_token_load_or_create(missing, tok2, err, sizeof err), UV_ENOENT);
  ck_assert_ptr_nonnull(strstr(err, missing));
  ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- loopback server ---- */

#define MAX_RESULTS 64

struct resp {
  int status;        /* of the final answer; -1 when none */
  bool saw_continue; /* an interim 100 Continue came first */
  bool headers_ok;   /* Content-Type, Connection: close, Content-Length matching the body */
  int calls_delta;   /* handler calls during the request */
  char body[4096];
};

struct fx {
  uv_loop_t loop;
  struct rpc_server *srv;
  uint16_t port;
  char unix_path[108];      /* set: the server is on this Unix socket */
  uv_async_t done;
  uv_timer_t guard;
  uv_timer_t later;
  uv_thread_t thr;
  void (*client)(struct fx *);
  atomic_int calls;
  atomic_bool done_sent;
  struct rpc_call *pending; /* answered from the timer */
  struct rpc_call *never;   /* answered only after the server closed */
  bool closed, timed_out, never_replied;
  int close_cbs;
  /* filled by the client thread, read after the join */
  int n;
  struct resp r[MAX_RESULTS];
  int rc[MAX_RESULTS];
  long http[MAX_RESULTS];
  char err[MAX_RESULTS][SHOAL_ERRLEN];
  json_t *res[MAX_RESULTS];
  bool flag[MAX_RESULTS];
};

static void on_later(uv_timer_t *t)
{
  struct fx *f = t->data;
  if (f->pending != NULL) {
    struct rpc_call *c = f->pending;
    f->pending = NULL;
    rpc_reply(c, 200, json_string("late"), NULL);
  }
}

static void handler(void *ctx, struct rpc_call *call, const char *method, json_t *params)
{
  struct fx *f = ctx;
  atomic_fetch_add(&f->calls, 1);
  if (strcmp(method, "echo") == 0) {
    rpc_reply(call, 200, json_incref(params), NULL);
  } else if (strcmp(method, "null") == 0) {
    rpc_reply(call, 200, NULL, NULL);
  } else if (strcmp(method, "fail") == 0) {
    const char *x = json_string_value(json_object_get(params, "x"));
    rpc_replyf(call, 400, "no such thing: %s", x != NULL ? x : "?");
  } else if (strcmp(method, "later") == 0 && f->pending == NULL) {
    f->pending = call;
    uv_timer_start(&f->later, on_later, 50, 0);
  } else if (strcmp(method, "never") == 0 && f->never == NULL) {
    f->never = call;
  } else {
    rpc_replyf(call, 400, "unknown method %s", method);
  }
}

static void on_server_closed(void *ctx)
{
  struct fx *f = ctx;
  f->closed = true;
  f->close_cbs++;
  /* Answers after the close are dropped, and the calls freed. */
  if (f->never != NULL) {
    struct rpc_call *c = f->never;
    f->never = NULL;
    rpc_reply(c, 200, json_string("dropped"), NULL);
    f->never_replied = true;
  }
  if (f->pending != NULL) {
    struct rpc_call *c = f->pending;
    f->pending = NULL;
    rpc_replyf(c, 500, "dropped %d", 1);
  }
}

static void on_done(uv_async_t *a)
{
  struct fx *f = a->data;
  rpc_server_close(f->srv, on_server_closed, f);
  uv_close((uv_handle_t *)&f->done, NULL);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_close((uv_handle_t *)&f->later, NULL);
}

static void on_guard(uv_timer_t *t)
{
  struct fx *f = t->data;
  f->timed_out = true;
  uv_stop(&f->loop);
}

/* From the client thread: lets the loop close the server (once). */
static void fx_done(struct fx *f)
{
  bool expected = false;
  if (atomic_compare_exchange_strong(&f->done_sent, &expected, true))
    uv_async_send(&f->done);
}

static void thread_main(void *arg)
{
  struct fx *f = arg;
  f->client(f);
  fx_done(f);
}

static int fx_start(struct fx *f, const char *bind)
{
  memset(f, 0, sizeof *f);
  ck_assert_int_eq(uv_loop_init(&f->loop), 0);
  static const char *const names[] = { "mybox.lan" };
  struct rpc_server_config cfg = { .bind = bind, .port = 0, .token = TOKEN, .host_names = names, .num_host_names = 1 };
  int r = rpc_server_start(&f->loop, &cfg, handler, f, &f->srv);
  if (r != 0) {
    ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&f->loop), 0);
    return r;
  }
  f->port = rpc_server_port(f->srv);
  ck_assert_uint_ne(f->port, 0);
  return 0;
}

static void fx_run(struct fx *f, void (*client)(struct fx *))
{
  f->client = client;
  ck_assert_int_eq(uv_async_init(&f->loop, &f->done, on_done), 0);
  f->done.data = f;
  uv_timer_init(&f->loop, &f->guard);
  f->guard.data = f;
  uv_timer_init(&f->loop, &f->later);
  f->later.data = f;
  uv_timer_start(&f->guard, on_guard, 20000, 0);
  ck_assert_int_eq(uv_thread_create(&f->thr, thread_main, f), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_thread_join(&f->thr); /* the client's waits are bounded by socket timeouts */
  ck_assert_msg(!f->timed_out, "the test did not finish in time");
  ck_assert(f->closed);
  ck_assert_int_eq(f->close_cbs, 1);
  ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

static void fx_free_results(struct fx *f)
{
  for (int i = 0; i < MAX_RESULTS; i++)
    json_decref(f->res[i]);
}

/* Every wait on a test socket is bounded. */
static void sock_timeouts(int fd)
{
  struct timeval tv = { .tv_sec = 5 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int sock_connect(uint16_t port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  sock_timeouts(fd);
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int unix_connect(const char *path)
{
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  sock_timeouts(fd);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool send_all(int fd, const char *p, size_t len)
{
  while (len > 0) {
    ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    len -= (size_t)w;
  }
  return true;
}

/* Reads until EOF (or timeout/error); returns the byte count. */
static size_t recv_all(int fd, char *out, size_t cap)
{
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  out[n] = '\0';
  return n;
}

static int parse_status(const char *p)
{
  if (strncmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5')
    return -1;
  return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

static void parse_resp(const char *raw, struct resp *r)
{
  r->status = parse_status(raw);
  if (r->status == 100) {
    r->saw_continue = true;
    const char *e = strstr(raw, "\r\n\r\n");
    raw = e != NULL ? e + 4 : "";
    r->status = parse_status(raw);
  }
  const char *end = strstr(raw, "\r\n\r\n");
  if (end == NULL)
    return;
  const char *body = end + 4;
  snprintf(r->body, sizeof r->body, "%s", body);
  size_t blen = strlen(body);
  char cl[64];
  snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", blen);
  const char *h = raw;
  r->headers_ok = strstr(h, "\r\nContent-Type: application/json\r\n") != NULL &&
                  strstr(h, "\r\nConnection: close\r\n") != NULL && strstr(h, cl) != NULL &&
                  strstr(h, cl) < end + 2 && blen > 0 && body[blen - 1] == '\n';
}

/* Sends raw bytes, reads the whole answer. */
static void raw_exchange(struct fx *f, const char *req, size_t len, struct resp *r)
{
  static char in[1 << 16];
  memset(r, 0, sizeof *r);
  r->status = -1;
  int before = atomic_load(&f->calls);
  int fd = f->unix_path[0] ? unix_connect(f->unix_path) : sock_connect(f->port);
  if (fd < 0)
    return;
  send_all(fd, req, len); /* a refused request may be cut short: read the answer anyway */
  recv_all(fd, in, sizeof in);
  close(fd);
  parse_resp(in, r);
  r->calls_delta = atomic_load(&f->calls) - before;
}

struct rcase {
  const char *name;
  const char *method, *path, *headers, *body; /* body NULL: no body and no Content-Length */
  int status;
  int calls;
  const char *body_has;
};

#define H_HOST "Host: localhost:6880\r\n"
#define H_AUTH "Authorization: Bearer " TOKEN "\r\n"
#define H_OK H_HOST H_AUTH
#define ECHO_REQ "{\"method\":\"echo\",\"params\":{\"x\":1}}"

static const struct rcase cases[] = {
  { "echo", "POST", "/rpc", H_OK "Content-Type: application/json\r\n", ECHO_REQ, 200, 1, "{\"result\":{\"x\":1}}\n" },
  { "no params", "POST", "/rpc", H_OK, "{\"method\":\"echo\"}", 200, 1, "{\"result\":{}}\n" },
  { "null result", "POST", "/rpc", H_OK, "{\"method\":\"null\"}", 200, 1, "{\"result\":null}\n" },
  { "handler error", "POST", "/rpc", H_OK, "{\"method\":\"fail\",\"params\":{\"x\":\"y\"}}", 400, 1,
    "{\"error\":\"no such thing: y\"}\n" },
  { "query ignored", "POST", "/rpc?a=b", H_OK, ECHO_REQ, 200, 1, "\"result\"" },
  { "lower-case names", "POST", "/rpc", "host: localhost\r\nauthorization: bearer " TOKEN "\r\n", ECHO_REQ, 200, 1,
    "\"result\"" },
  { "[::1] host", "POST", "/rpc", "Host: [::1]:6880\r\n" H_AUTH, ECHO_REQ, 200, 1, "\"result\"" },
  { "127.0.0.1 host", "POST", "/rpc", "Host: 127.0.0.1\r\n" H_AUTH, ECHO_REQ, 200, 1, "\"result\"" },
  { "extra host name", "POST", "/rpc", "Host: MyBox.LAN:6880\r\n" H_AUTH, ECHO_REQ, 200, 1, "\"result\"" },
  { "empty header first", "POST", "/rpc", "X-Empty:\r\n" H_OK, ECHO_REQ, 200, 1, "\"result\"" },
  { "chunked body", "POST", "/rpc", H_OK "Transfer-Encoding: chunked\r\n",
    NULL, 200, 1, "\"result\"" }, /* body filled in below */
  { "expect continue", "POST", "/rpc", H_OK "Expect: 100-continue\r\n", ECHO_REQ, 200, 1, "\"result\"" },
  /* refusals: the handler is never called */
  { "wrong token", "POST", "/rpc", H_HOST "Authorization: Bearer " TOKEN_BAD "\r\n", ECHO_REQ, 401, 0, "wrong token" },
  { "token case", "POST", "/rpc", H_HOST "Authorization: Bearer " TOKEN_UP "\r\n", ECHO_REQ, 401, 0, "\"error\"" },
  { "no token", "POST", "/rpc", H_HOST, ECHO_REQ, 401, 0, "missing token" },
  { "basic auth", "POST", "/rpc", H_HOST "Authorization: Basic " TOKEN "\r\n", ECHO_REQ, 401, 0, "\"error\"" },
  { "two tokens", "POST", "/rpc", H_OK H_AUTH, ECHO_REQ, 401, 0, "\"error\"" },
  { "bad host", "POST", "/rpc", "Host: evil.com\r\n" H_AUTH, ECHO_REQ, 403, 0, "Host" },
  { "rebinding host", "POST", "/rpc", "Host: localhost.evil.com:6880\r\n" H_AUTH, ECHO_REQ, 403, 0, "Host" },
  { "nip.io host", "POST", "/rpc", "Host: 127.0.0.1.nip.io\r\n" H_AUTH, ECHO_REQ, 403, 0, "Host" },
  { "no host", "POST", "/rpc", H_AUTH, ECHO_REQ, 403, 0, "missing Host" },
  { "empty host", "POST", "/rpc", "Host: \r\n" H_AUTH, ECHO_REQ, 403, 0, "Host" },
  { "two hosts", "POST", "/rpc", H_HOST H_OK, ECHO_REQ, 403, 0, "Host" },
  { "host before token", "POST", "/rpc", "Host: evil.com\r\nAuthorization: Bearer x\r\n", ECHO_REQ, 403, 0, "Host" },
  { "host before path", "GET", "/x", "Host: evil.com\r\n", NULL, 403, 0, "Host" },
  { "path", "POST", "/other", H_OK, ECHO_REQ, 404, 0, "POST /rpc" },
  { "path prefix", "POST", "/rpc/x", H_OK, ECHO_REQ, 404, 0, "\"error\"" },
  { "path case", "POST", "/RPC", H_OK, ECHO_REQ, 404, 0, "\"error\"" },
  { "path before method", "GET", "/x", H_HOST, NULL, 404, 0, "\"error\"" },
  { "GET", "GET", "/rpc", H_OK, NULL, 405, 0, "POST" },
  { "PUT", "PUT", "/rpc", H_OK, ECHO_REQ, 405, 0, "POST" },
  { "method before token", "GET", "/rpc", H_HOST, NULL, 405, 0, "\"error\"" },
  { "size by Content-Length", "POST", "/rpc", H_OK "Content-Length: 16777217\r\n", NULL, 413, 0, "too large" },
  { "token before size", "POST", "/rpc", H_HOST "Content-Length: 16777217\r\n", NULL, 401, 0, "\"error\"" },
  { "bad JSON", "POST", "/rpc", H_OK, "{\"method\":", 400, 0, "invalid JSON" },
  { "empty body", "POST", "/rpc", H_OK, "", 400, 0, "invalid JSON" },
  { "trailing garbage", "POST", "/rpc", H_OK, ECHO_REQ "x", 400, 0, "invalid JSON" },
  { "not an object", "POST", "/rpc", H_OK, "[1]", 400, 0, "object" },
  { "string", "POST", "/rpc", H_OK, "\"echo\"", 400, 0, "invalid JSON" },
  { "no method", "POST", "/rpc", H_OK, "{\"params\":{}}", 400, 0, "method" },
  { "method not string", "POST", "/rpc", H_OK, "{\"method\":1}", 400, 0, "method" },
  { "params not object", "POST", "/rpc", H_OK, "{\"method\":\"echo\",\"params\":[1]}", 400, 0, "params" },
  { "params null", "POST", "/rpc", H_OK, "{\"method\":\"echo\",\"params\":null}", 400, 0, "params" },
  { "duplicate keys", "POST", "/rpc", H_OK, "{\"method\":\"echo\",\"method\":\"null\"}", 400, 0, "invalid JSON" },
  { "NUL in string", "POST", "/rpc", H_OK, "{\"method\":\"ec\\u0000ho\"}", 400, 0, "invalid JSON" },
  { "bad UTF-8", "POST", "/rpc", H_OK, "{\"method\":\"\xff\"}", 400, 0, "invalid JSON" },
  { "unknown method", "POST", "/rpc", H_OK, "{\"method\":\"zz\"}", 400, 1, "unknown method zz" },
};
#define NCASES (sizeof cases / sizeof cases[0])
/* extra exchanges built by hand, after the table */
enum { X_HEAD_BIG = NCASES, X_CHUNKED_BIG, X_MALFORMED, X_HTTP10_NO_HOST, X_HEAD_JUST_FITS, X_TOTAL };

static void client_basic(struct fx *f)
{
  static char req[1 << 16];
  for (size_t i = 0; i < NCASES; i++) {
    const struct rcase *c = &cases[i];
    int n;
    if (strcmp(c->name, "chunked body") == 0)
      n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n%s\r\n5\r\n{\"met\r\n%zx\r\n%s\r\n0\r\n\r\n", c->method, c->path,
                   c->headers, strlen(ECHO_REQ) - 5, ECHO_REQ + 5);
    else if (c->body != NULL)
      n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n%sContent-Length: %zu\r\n\r\n%s", c->method, c->path,
                   c->headers, strlen(c->body), c->body);
    else
      n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n%s\r\n", c->method, c->path, c->headers);
    raw_exchange(f, req, (size_t)n, &f->r[i]);
  }

  /* Headers over 16 KiB. */
  char *big = malloc(RPC_MAX_HEADERS + 4096);
  int n = snprintf(big, 200, "POST /rpc HTTP/1.1\r\n" H_OK "X-Pad: ");
  memset(big + n, 'a', RPC_MAX_HEADERS);
  n += RPC_MAX_HEADERS;
  n += snprintf(big + n, 200, "\r\nContent-Length: %zu\r\n\r\n%s", strlen(ECHO_REQ), ECHO_REQ);
  raw_exchange(f, big, (size_t)n, &f->r[X_HEAD_BIG]);

  /* Headers of 16 KiB minus a little are fine. */
  n = snprintf(big, 200, "POST /rpc HTTP/1.1\r\n" H_OK "X-Pad: ");
  int pad = (int)RPC_MAX_HEADERS - n - 200;
  memset(big + n, 'a', (size_t)pad);
  n += pad;
  n += snprintf(big + n, 200, "\r\nContent-Length: %zu\r\n\r\n%s", strlen(ECHO_REQ), ECHO_REQ);
  raw_exchange(f, big, (size_t)n, &f->r[X_HEAD_JUST_FITS]);
  free(big);

  /* A chunked body that grows past 16 MiB. */
  size_t chunk = 1 << 16;
  size_t total_chunks = (RPC_MAX_BODY / chunk) + 2;
  size_t cap = 200 + total_chunks * (chunk + 16);
  char *cb = malloc(cap);
  n = snprintf(cb, 200, "POST /rpc HTTP/1.1\r\n" H_OK "Transfer-Encoding: chunked\r\n\r\n");
  size_t off = (size_t)n;
  for (size_t i = 0; i < total_chunks; i++) {
    off += (size_t)snprintf(cb + off, 16, "%zx\r\n", chunk);
    memset(cb + off, ' ', chunk);
    off += chunk;
    memcpy(cb + off, "\r\n", 2);
    off += 2;
  }
  memcpy(cb + off, "0\r\n\r\n", 5);
  off += 5;
  raw_exchange(f, cb, off, &f->r[X_CHUNKED_BIG]);
  free(cb);

  static const char malformed[] = "POST /rpc HTTP/1.1\r\nHost localhost\r\n\r\n";
  raw_exchange(f, malformed, sizeof malformed - 1, &f->r[X_MALFORMED]);
  static const char old[] = "POST /rpc HTTP/1.0\r\n" H_AUTH "Content-Length: 2\r\n\r\n{}";
  raw_exchange(f, old, sizeof old - 1, &f->r[X_HTTP10_NO_HOST]);
}

START_TEST(test_server_requests)
{
  struct fx *f = calloc(1, sizeof *f);
  ck_assert_int_eq(fx_start(f, "127.0.0.1"), 0);
  fx_run(f, client_basic);
  for (size_t i = 0; i < NCASES; i++) {
    const struct rcase *c = &cases[i];
    const struct resp *r = &f->r[i];
    ck_assert_msg(r->status == c->status, "%s: status %d, expected %d (%s)", c->name, r->status, c->status, r->body);
    ck_assert_msg(r->headers_ok, "%s: bad answer headers", c->name);
    ck_assert_msg(r->calls_delta == c->calls, "%s: handler called %d times", c->name, r->calls_delta);
    ck_assert_msg(strstr(r->body, c->body_has) != NULL, "%s: body %s lacks %s", c->name, r->body, c->body_has);
    ck_assert_msg(r->body[0] == '{', "%s: body not a JSON object", c->name);
    ck_assert_msg(r->saw_continue == (strcmp(c->name, "expect continue") == 0), "%s: 100 Continue", c->name);
  }
  ck_assert_int_eq(f->r[X_HEAD_BIG].status, 431);
  ck_assert(f->r[X_HEAD_BIG].headers_ok);
  ck_assert_int_eq(f->r[X_HEAD_BIG].calls_delta, 0);
  ck_assert_int_eq(f->r[X_HEAD_JUST_FITS].status, 200);
  ck_assert_int_eq(f->r[X_HEAD_JUST_FITS].calls_delta, 1);
  ck_assert_int_eq(f->r[X_CHUNKED_BIG].status, 413);
  ck_assert_int_eq(f->r[X_CHUNKED_BIG].calls_delta, 0);
  ck_assert_int_eq(f->r[X_MALFORMED].status, 400);
  ck_assert(f->r[X_MALFORMED].headers_ok);
  ck_assert_int_eq(f->r[X_HTTP10_NO_HOST].status, 403);
  fx_free_results(f);
  free(f);
}
END_TEST

/* An authenticated POST /rpc with a short body into req[512]; returns its
 * length.  (Runs on the client thread: no ck_assert here.) */
static size_t post_req(char req[512], const char *body)
{
  return (size_t)snprintf(req, 512, "POST /rpc HTTP/1.1\r\n" H_OK "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
}

/* A request sent, then the socket closed before the answer. */
static void send_and_leave(struct fx *f, const char *body)
{
  char req[512];
  size_t n = post_req(req, body);
  int fd = sock_connect(f->port);
  if (fd < 0)
    return;
  send_all(fd, req, n);
  close(fd);
}

static void echo_exchange(struct fx *f, struct resp *r)
{
  char req[512];
  raw_exchange(f, req, post_req(req, ECHO_REQ), r);
}

static void client_async(struct fx *f)
{
  char req[512];
  const char *later = "{\"method\":\"later\"}";
  raw_exchange(f, req, post_req(req, later), &f->r[0]); /* answered from a timer */

  /* Gone before the timer answers: the answer is dropped. */
  send_and_leave(f, later);
  usleep(300 * 1000);
  echo_exchange(f, &f->r[1]);

  /* Gone, and the call never answered before the server closes. */
  send_and_leave(f, "{\"method\":\"never\"}");
  usleep(100 * 1000);
  echo_exchange(f, &f->r[2]);
}

/* The same server on a Unix socket: the same checks apply. */
static void client_unix(struct fx *f)
{
  static const char *const reqs[] = {
    "POST /rpc HTTP/1.1\r\n" H_OK "Content-Length: 34\r\n\r\n" ECHO_REQ,
    "POST /rpc HTTP/1.1\r\n" H_HOST "Content-Length: 34\r\n\r\n" ECHO_REQ,
    "POST /rpc HTTP/1.1\r\nHost: evil.example\r\n" H_AUTH "Content-Length: 34\r\n\r\n" ECHO_REQ,
  };
  for (int i = 0; i < 3; i++)
    raw_exchange(f, reqs[i], strlen(reqs[i]), &f->r[i]);
  f->n = 3;
}

START_TEST(test_server_unix)
{
  ck_assert_int_eq((int)strlen(ECHO_REQ), 34);
  char dir[] = "/tmp/shoal-rpc.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  struct fx f;
  for (int round = 0; round < 2; round++) {   /* the second start replaces the first one's socket file */
    memset(&f, 0, sizeof f);
    ck_assert_int_eq(uv_loop_init(&f.loop), 0);
    snprintf(f.unix_path, sizeof f.unix_path, "%s/rpc.sock", dir);
    struct rpc_server_config cfg = { .token = TOKEN, .unix_path = f.unix_path };
    ck_assert_int_eq(rpc_server_start(&f.loop, &cfg, handler, &f, &f.srv), 0);
    ck_assert_uint_eq(rpc_server_port(f.srv), 0);
    struct stat st;
    ck_assert_int_eq(lstat(f.unix_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    fx_run(&f, client_unix);
    ck_assert_int_eq(f.r[0].status, 200);
    ck_assert(strstr(f.r[0].body, "\"x\":1") != NULL);
    ck_assert_int_eq(f.r[0].calls_delta, 1);
    ck_assert_int_eq(f.r[1].status, 401);
    ck_assert_int_eq(f.r[1].calls_delta, 0);
    ck_assert_int_eq(f.r[2].status, 403);
    ck_assert_int_eq(f.r[2].calls_delta, 0);
  }
  /* a file that is not a socket is never replaced */
  unlink(f.unix_path);
  int fd = open(f.unix_path, O_WRONLY | O_CREAT, 0600);
  ck_assert_int_ge(fd, 0);
  close(fd);
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  struct rpc_server *srv = NULL;
  struct rpc_server_config cfg = { .token = TOKEN, .unix_path = f.unix_path };
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, handler, NULL, &srv), UV_EADDRINUSE);
  ck_assert_ptr_null(srv);
  struct stat st;
  ck_assert_int_eq(lstat(f.unix_path, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  /* relative, or too long for a socket address */
  cfg.unix_path = "rpc.sock";
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, handler, NULL, &srv), UV_ENAMETOOLONG);
  char longp[200];
  memset(longp, 'a', sizeof longp - 1);
  longp[0] = '/';
  longp[sizeof longp - 1] = 0;
  cfg.unix_path = longp;
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, handler, NULL, &srv), UV_ENAMETOOLONG);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  unlink(f.unix_path);
  ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_server_async)
{
  struct fx *f = calloc(1, sizeof *f);
  ck_assert_int_eq(fx_start(f, NULL), 0);
  fx_run(f, client_async);
  ck_assert_int_eq(f->r[0].status, 200);
  ck_assert(f->r[0].headers_ok);
  ck_assert_str_eq(f->r[0].body, "{\"result\":\"late\"}\n");
  ck_assert_int_eq(f->r[1].status, 200);
  ck_assert_int_eq(f->r[2].status, 200);
  ck_assert_int_eq(atomic_load(&f->calls), 5);
  ck_assert(f->never_replied);
  ck_assert_ptr_null(f->pending);
  free(f);
}
END_TEST

/* The server closes while a client waits for an answer that never comes. */
static void client_closed_under(struct fx *f)
{
  char req[512];
  size_t n = post_req(req, "{\"method\":\"never\"}");
  int fd = sock_connect(f->port);
  if (fd < 0)
    return;
  send_all(fd, req, n);
  /* Wait until the handler has the call, then close the server. */
  for (int i = 0; i < 200 && atomic_load(&f->calls) == 0; i++)
    usleep(10 * 1000);
  fx_done(f);
  char in[256];
  errno = 0; /* recv_all leaves it alone at EOF */
  f->r[0].status = (int)recv_all(fd, in, sizeof in); /* EOF, no answer */
  f->flag[0] = errno != EAGAIN;
  close(fd);
}

START_TEST(test_server_close_with_call)
{
  struct fx *f = calloc(1, sizeof *f);
  ck_assert_int_eq(fx_start(f, NULL), 0);
  fx_run(f, client_closed_under);
  ck_assert_int_eq(atomic_load(&f->calls), 1);
  ck_assert_int_eq(f->r[0].status, 0); /* nothing was sent */
  ck_assert(f->flag[0]);                /* and the wait did not time out */
  ck_assert(f->never_replied);
  free(f);
}
END_TEST

static void client_conn_limit(struct fx *f)
{
  int fds[RPC_MAX_CONNS];
  int opened = 0;
  for (unsigned i = 0; i < RPC_MAX_CONNS; i++) {
    fds[i] = sock_connect(f->port);
    if (fds[i] >= 0)
      opened++;
  }
  f->rc[0] = opened;
  usleep(200 * 1000);
  /* One more is closed at once. */
  int extra = sock_connect(f->port);
  if (extra >= 0) {
    char c;
    ssize_t r = recv(extra, &c, 1, 0);
    f->flag[0] = r == 0 || (r < 0 && errno == ECONNRESET);
    close(extra);
  }
  /* The open ones still work. */
  char req[512];
  size_t n = post_req(req, ECHO_REQ);
  static char in[4096];
  if (fds[0] >= 0 && send_all(fds[0], req, n)) {
    recv_all(fds[0], in, sizeof in);
    parse_resp(in, &f->r[0]);
  }
  for (unsigned i = 0; i < RPC_MAX_CONNS; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  usleep(200 * 1000);
  echo_exchange(f, &f->r[1]);
}

START_TEST(test_server_conn_limit)
{
  struct fx *f = calloc(1, sizeof *f);
  ck_assert_int_eq(fx_start(f, NULL), 0);
  fx_run(f, client_conn_limit);
  ck_assert_int_eq(f->rc[0], (int)RPC_MAX_CONNS);
  ck_assert_msg(f->flag[0], "connection over the limit not closed");
  ck_assert_int_eq(f->r[0].status, 200);
  ck_assert_int_eq(f->r[1].status, 200);
  free(f);
}
END_TEST

/* ---- rpc_client_call against the server ---- */

static uint16_t closed_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET };
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    if (fd >= 0)
      close(fd);
    return 1;
  }
  close(fd); /* bound but never listening: connections are refused */
  return ntohs(sin.sin_port);
}

static const char *client_host = "127.0.0.1";

static void call(struct fx *f, int i, const char *token, const char *method, json_t *params)
{
  f->rc[i] = rpc_client_call(client_host, f->port, token, method, params, &f->res[i], &f->http[i], f->err[i],
                             sizeof f->err[i]);
}

static void client_calls(struct fx *f)
{
  json_t *p = json_pack("{s:s, s:[i,i]}", "a", "b", "n", 1, 2);
  call(f, 0, TOKEN, "echo", p);
  json_decref(p);
  call(f, 1, TOKEN, "echo", NULL);
  call(f, 2, TOKEN, "null", NULL);
  p = json_pack("{s:s}", "x", "y");
  call(f, 3, TOKEN, "fail", p);
  json_decref(p);
  call(f, 4, TOKEN_BAD, "echo", NULL);
  call(f, 5, TOKEN, "later", NULL);
  /* A closed port. */
  uint16_t cp = closed_port();
  f->rc[6] = rpc_client_call("127.0.0.1", cp, TOKEN, "echo", NULL, &f->res[6], &f->http[6], f->err[6],
                             sizeof f->err[6]);
  f->http[63] = cp;
  /* IPv6 in brackets in the message (nothing listens there for this port). */
  f->rc[7] = rpc_client_call("::1", cp, TOKEN, "echo", NULL, &f->res[7], &f->http[7], f->err[7], sizeof f->err[7]);
  /* A large request and answer. */
  char *big = malloc(300000);
  memset(big, 'z', 299999);
  big[299999] = '\0';
  p = json_pack("{s:s}", "big", big);
  free(big);
  call(f, 9, TOKEN, "echo", p);
  f->res[10] = p;
  /* Bad arguments. */
  f->rc[8] = rpc_client_call("127.0.0.1", f->port, TOKEN, "bad\xff", NULL, &f->res[8], &f->http[8], f->err[8],
                             sizeof f->err[8]);
}

START_TEST(test_client_call)
{
  struct fx *f = calloc(1, sizeof *f);
  ck_assert_int_eq(fx_start(f, NULL), 0);
  fx_run(f, client_calls);

  ck_assert_int_eq(f->rc[0], 0);
  ck_assert_int_eq(f->http[0], 200);
  json_t *want = json_pack("{s:s, s:[i,i]}", "a", "b", "n", 1, 2);
  ck_assert(json_equal(f->res[0], want));
  json_decref(want);
  ck_assert_int_eq(f->rc[1], 0);
  ck_assert(json_is_object(f->res[1]) && json_object_size(f->res[1]) == 0);
  ck_assert_int_eq(f->rc[2], 0);
  ck_assert(json_is_null(f->res[2]));
  ck_assert_int_eq(f->rc[3], SHOAL_EREMOTE);
  ck_assert_int_eq(f->http[3], 400);
  ck_assert_str_eq(f->err[3], "no such thing: y");
  ck_assert_ptr_null(f->res[3]);
  ck_assert_int_eq(f->rc[4], SHOAL_EREMOTE);
  ck_assert_int_eq(f->http[4], 401);
  ck_assert_str_eq(f->err[4], "wrong token");
  ck_assert_int_eq(f->rc[5], 0);
  ck_assert_str_eq(json_string_value(f->res[5]), "late");

  ck_assert_int_eq(f->rc[6], UV_ECONNREFUSED);
  ck_assert_ptr_null(f->res[6]);
  ck_assert_int_eq(f->http[6], 0);
  char want_err[80];
  snprintf(want_err, sizeof want_err, "cannot reach the daemon at 127.0.0.1:%ld: ", f->http[63]);
  ck_assert_msg(strncmp(f->err[6], want_err, strlen(want_err)) == 0, "err: %s", f->err[6]);
  ck_assert_int_eq(f->rc[7], UV_ECONNREFUSED);
  snprintf(want_err, sizeof want_err, "cannot reach the daemon at [::1]:%ld: ", f->http[63]);
  ck_assert_msg(strncmp(f->err[7], want_err, strlen(want_err)) == 0, "err: %s", f->err[7]);
  ck_assert_int_eq(f->rc[9], 0);
  ck_assert(json_equal(f->res[9], f->res[10]));
  ck_assert_int_eq(f->rc[8], UV_EINVAL); /* method not UTF-8: cannot be encoded */
  /* handler calls: echo, echo, null, fail, later, big echo (not the wrong token) */
  ck_assert_int_eq(atomic_load(&f->calls), 6);
  fx_free_results(f);
  free(f);
}
END_TEST

static void client_calls_v6(struct fx *f)
{
  call(f, 0, TOKEN, "echo", NULL);
}

START_TEST(test_client_call_ipv6)
{
  struct fx *f = calloc(1, sizeof *f);
  int r = fx_start(f, "::1");
  if (r == UV_EADDRNOTAVAIL || r == UV_EAFNOSUPPORT) {
    free(f); /* no IPv6 loopback here */
    return;
  }
  ck_assert_int_eq(r, 0);
  client_host = "::1";
  fx_run(f, client_calls_v6);
  client_host = "127.0.0.1";
  ck_assert_msg(f->rc[0] == 0, "rc %d: %s", f->rc[0], f->err[0]);
  ck_assert_int_eq(f->http[0], 200);
  fx_free_results(f);
  free(f);
}
END_TEST

/* ---- start errors, host names ---- */

static void never_handler(void *ctx, struct rpc_call *call, const char *method, json_t *params)
{
  rpc_reply(call, 500, NULL, "unexpected");
}

static void count_close(void *ctx)
{
  ++*(int *)ctx;
}

START_TEST(test_server_start_errors)
{
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  struct rpc_server *s = (struct rpc_server *)1, *s2 = NULL;
  struct rpc_server_config cfg = { .bind = "nope", .token = TOKEN };
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, never_handler, NULL, &s), UV_EINVAL);
  ck_assert_ptr_null(s);
  cfg.bind = "127.0.0.1";
  cfg.token = "abc";
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, never_handler, NULL, &s), UV_EINVAL);
  cfg.token = TOKEN_UP;
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, never_handler, NULL, &s), UV_EINVAL);
  cfg.token = TOKEN "0";
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, never_handler, NULL, &s), UV_EINVAL);
  cfg.token = TOKEN;
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, never_handler, NULL, &s), 0);
  uint16_t port = rpc_server_port(s);
  ck_assert_uint_ne(port, 0);
  cfg.port = port;
  ck_assert_int_eq(rpc_server_start(&loop, &cfg, never_handler, NULL, &s2), UV_EADDRINUSE);
  ck_assert_ptr_null(s2);

  static const char *const names[] = { "a.example", "B.example" };
  ck_assert_int_eq(rpc_server_set_host_names(s, names, 2), 0);
  ck_assert_int_eq(rpc_server_set_host_names(s, NULL, 0), 0);
  ck_assert_int_eq(rpc_server_set_host_names(s, names, 1), 0);

  int closes = 0;
  rpc_server_close(s, count_close, &closes);
  ck_assert_int_eq(closes, 0); /* asynchronous */
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(closes, 1);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *rpc_suite(void)
{
  Suite *s = suite_create("rpc");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, test_host_allowed);
  tcase_add_test(tc, test_token_ok);
  tcase_add_test(tc, test_token_file);
  suite_add_tcase(s, tc);
  tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_server_start_errors);
  tcase_add_test(tc, test_server_requests);
  tcase_add_test(tc, test_server_async);
  tcase_add_test(tc, test_server_unix);
  tcase_add_test(tc, test_server_close_with_call);
  tcase_add_test(tc, test_server_conn_limit);
  tcase_add_test(tc, test_client_call);
  tcase_add_test(tc, test_client_call_ipv6);
  suite_add_tcase(s, tc);
  return s;
}
