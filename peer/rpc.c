/* rpc.c -- the daemon's control API server: JSON over HTTP/1.1 (http-parser on libuv), Host and token checks, token file. */
#include "peer/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define RPC_RBUF 16384u               /* read buffer per connection */
#define RPC_DRAIN_MS 2000u            /* lingering after the answer, before closing */
#define RPC_MAX_EXTRA (64u << 10)     /* bytes tolerated after the request while it is answered */
#define RPC_URL_MAX 2048u             /* longer request targets cannot be /rpc anyway */
#define RPC_FIELD_MAX 32u             /* the header names looked at are shorter */
#define RPC_HVAL_MAX 256u             /* a kept header value (Host, Authorization, Expect) */
#define RPC_BACKLOG 128

/* ---- pure checks ---- */

static bool rpc_eq_nocase(const char *a, size_t alen, const char *b)
{
  size_t blen = strlen(b);
  return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* ":<1 to 5 digits>" with a value of at most 65535. */
static bool rpc_port_ok(const char *p, size_t len)
{
  if (len < 2 || len > 6 || p[0] != ':')
    return false;
  unsigned v = 0;
  for (size_t i = 1; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  return v <= 65535;
}

static bool rpc_name_allowed(const char *h, size_t len, const char *const *names, size_t n)
{
  if (len == 0)
    return false;
  if (rpc_eq_nocase(h, len, "localhost") || rpc_eq_nocase(h, len, "127.0.0.1") || rpc_eq_nocase(h, len, "::1"))
    return true;
  for (size_t i = 0; i < n; i++)
    if (names[i] != NULL && names[i][0] != '\0' && rpc_eq_nocase(h, len, names[i]))
      return true;
  return false;
}

bool rpc_host_allowed(const char *host, size_t len, const char *const *names, size_t n)
{
  if (host == NULL || len == 0)
    return false;
  if (memchr(host, '\0', len) != NULL)
    return false;
  if (host[0] == '[') {
    const char *close = memchr(host, ']', len);
    if (close == NULL)
      return false;
    size_t inner = (size_t)(close - host) - 1;
    size_t rest = len - inner - 2;
    if (rest != 0 && !rpc_port_ok(close + 1, rest))
      return false;
    if (memchr(host + 1, ':', inner) == NULL)
      return false; /* brackets hold IPv6 literals only */
    return rpc_name_allowed(host + 1, inner, names, n);
  }
  const char *colon = memchr(host, ':', len);
  if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - host) - 1) != NULL)
    return rpc_name_allowed(host, len, names, n); /* a bare IPv6 literal: no port */
  if (colon != NULL) {
    size_t hl = (size_t)(colon - host);
    if (!rpc_port_ok(colon, len - hl))
      return false;
    return rpc_name_allowed(host, hl, names, n);
  }
  return rpc_name_allowed(host, len, names, n);
}

bool rpc_token_ok(const char *v, size_t len, const char *token)
{
  static const char scheme[] = "Bearer ";
  const size_t sl = sizeof scheme - 1;
  if (v == NULL || token == NULL)
    return false;
  size_t tl = strlen(token);
  if (tl == 0 || len != sl + tl || strncasecmp(v, scheme, sl) != 0)
    return false;
  return sodium_memcmp(v + sl, token, tl) == 0;
}

static bool rpc_is_token(const char *s, size_t len)
{
  if (len != RPC_TOKEN_HEX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* ---- token file ---- */

static int rpc_token_path(const char *dir, char *path, size_t cap, char *err, size_t errlen)
{
  if (dir == NULL || dir[0] == '\0')
    return shoal_fail(err, errlen, UV_EINVAL, "no config directory given for %s", RPC_TOKEN_FILE);
  int n = snprintf(path, cap, "%s/%s", dir, RPC_TOKEN_FILE);
  if (n < 0 || (size_t)n >= cap)
    return shoal_fail(err, errlen, UV_ENAMETOOLONG, "config directory path too long: %s", dir);
  return 0;
}

static int rpc_token_read_path(const char *path, char out[RPC_TOKEN_HEX + 1], char *err, size_t errlen)
{
  /* O_NONBLOCK: opening a FIFO put there must not hang; it is refused below. */
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      return shoal_fail(err, errlen, UV_ENOENT, "%s does not exist", path);
    if (e == ELOOP)
      return shoal_fail(err, errlen, UV_EPERM, "%s is a symbolic link, not a regular file; remove it", path);
    return shoal_fail(err, errlen, uv_translate_sys_error(e), "cannot open %s: %s", path, strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return shoal_fail(err, errlen, uv_translate_sys_error(e), "cannot stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return shoal_fail(err, errlen, UV_EPERM, "%s is not a regular file; remove it", path);
  }
  if ((st.st_mode & 077) != 0) {
    close(fd);
    return shoal_fail(err, errlen, UV_EPERM, "%s is accessible by group or others (mode %03o); run: chmod 600 %s",
                      path, (unsigned)(st.st_mode & 0777), path);
  }
  char tmp[RPC_TOKEN_HEX + 3] = { 0 };
  size_t n = 0;
  while (n < sizeof tmp) {
    ssize_t r = read(fd, tmp + n, sizeof tmp - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      sodium_memzero(tmp, sizeof tmp);
      return shoal_fail(err, errlen, uv_translate_sys_error(e), "cannot read %s: %s", path, strerror(e));
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  /* 64 lower-case hex digits, then one optional newline. */
  bool ok = (n == RPC_TOKEN_HEX || (n == RPC_TOKEN_HEX + 1 && tmp[RPC_TOKEN_HEX] == '\n')) &&
            rpc_is_token(tmp, RPC_TOKEN_HEX);
  if (ok) {
    memcpy(out, tmp, RPC_TOKEN_HEX);
    out[RPC_TOKEN_HEX] = '\0';
  }
  sodium_memzero(tmp, sizeof tmp);
  if (!ok)
    return shoal_fail(err, errlen, UV_EINVAL, "%s does not hold a token (%u lower-case hex digits)", path,
                      RPC_TOKEN_HEX);
  return 0;
}

int rpc_token_read(const char *dir, char out[RPC_TOKEN_HEX + 1], char *err, size_t errlen)
{
  char path[4096];
  int r = rpc_token_path(dir, path, sizeof path, err, errlen);
  if (r)
    return r;
  return rpc_token_read_path(path, out, err, errlen);
}

/* Creates the file with a new token.  1 when it appeared meanwhile. */
static int rpc_token_create(const char *dir, const char *path, char out[RPC_TOKEN_HEX + 1], char *err,
                            size_t errlen)
{
  if (sodium_init() < 0)
    return shoal_fail(err, errlen, UV_EIO, "cannot initialise libsodium");
  unsigned char raw[RPC_TOKEN_HEX / 2];
  char line[RPC_TOKEN_HEX + 2];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(line, RPC_TOKEN_HEX + 1, raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
  line[RPC_TOKEN_HEX] = '\n';
  line[RPC_TOKEN_HEX + 1] = '\0';

  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    sodium_memzero(line, sizeof line);
    if (e == EEXIST)
      return 1;
    return shoal_fail(err, errlen, uv_translate_sys_error(e), "cannot create %s: %s", path, strerror(e));
  }
  size_t off = 0;
  int e = 0;
  while (off < RPC_TOKEN_HEX + 1) {
    ssize_t w = write(fd, line + off, RPC_TOKEN_HEX + 1 - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      e = w < 0 ? errno : EIO;
      break;
    }
    off += (size_t)w;
  }
  if (e == 0 && fsync(fd) != 0)
    e = errno;
  if (close(fd) != 0 && e == 0)
    e = errno;
  if (e != 0) {
    unlink(path); /* a half-written token file would be refused at every later start */
    sodium_memzero(line, sizeof line);
    return shoal_fail(err, errlen, uv_translate_sys_error(e), "cannot write %s: %s", path, strerror(e));
  }
  /* Make the new directory entry durable too (best effort). */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  memcpy(out, line, RPC_TOKEN_HEX);
  out[RPC_TOKEN_HEX] = '\0';
  sodium_memzero(line, sizeof line);
  return 0;
}

int rpc_token_load_or_create(const char *dir, char out[RPC_TOKEN_HEX + 1], char *err, size_t errlen)
{
  char path[4096];
  int r = rpc_token_path(dir, path, sizeof path, err, errlen);
  if (r)
    return r;
  r = rpc_token_read_path(path, out, err, errlen);
  if (r != UV_ENOENT)
    return r;
  r = rpc_token_create(dir, path, out, err, errlen);
  if (r == 1) /* another process created it first */
    r = rpc_token_read_path(path, out, err, errlen);
  return r;
}

/* ---- the server ---- */

/* The headers whose values are kept for the checks. */
enum rpc_hdr { RPC_HDR_HOST, RPC_HDR_AUTH, RPC_HDR_EXPECT, RPC_HDR_COUNT };
static const char *const rpc_hdr_names[RPC_HDR_COUNT] = {
  [RPC_HDR_HOST] = "host", [RPC_HDR_AUTH] = "authorization", [RPC_HDR_EXPECT] = "expect",
};

/* A kept header value: the last header of that name (count says how many
 * there were); too_long once any of them did not fit. */
struct rpc_hval {
  char v[RPC_HVAL_MAX];
  size_t len;
  unsigned count;
  bool too_long;
};

enum rpc_state {
  RPC_READING,   /* reading the request */
  RPC_WAITING,   /* the handler has the call; reading only to notice the client leaving */
  RPC_WRITING,   /* the answer is being written */
  RPC_DRAINING,  /* answer sent, write side shut: discarding input until EOF or RPC_DRAIN_MS */
};

/* Lifetime: a call is a heap object owned by whoever holds it between the
 * handler and rpc_reply.  It points at its connection; when the connection
 * closes (client gone, error, timeout, rpc_server_close) the call is detached
 * (call->conn = NULL, conn->call = NULL), so a later rpc_reply only drops the
 * answer and frees the call.  Connections are freed only in their handles'
 * close callbacks, never inside a callback that may still use them. */
struct rpc_call {
  struct rpc_conn *conn;
};

/* A TCP or a Unix-socket stream (same server code for both). */
union rpc_stream {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
};

struct rpc_conn {
  union rpc_stream h;
  uv_timer_t timer;
  uv_write_t write_req;
  uv_write_t cont_req;
  uv_shutdown_t shutdown_req;
  http_parser parser;
  struct rpc_server *srv;
  struct rpc_conn *prev, *next;
  struct rpc_call *call;      /* the outstanding call, or NULL */
  enum rpc_state state;
  bool closing;
  int open_handles;
  size_t head_bytes;          /* request line and headers, as fed to the parser */
  size_t extra;               /* bytes received after the request */
  bool headers_done, head_checked, have_request, body_too_big, body_nomem;
  /* the header being read */
  char field[RPC_FIELD_MAX];
  size_t field_len;
  bool field_long, in_value;
  struct rpc_hval *cur;       /* where the value being read goes; NULL: not kept */
  char url[RPC_URL_MAX];
  size_t url_len;
  bool url_long;
  struct rpc_hval hv[RPC_HDR_COUNT];
  struct buf body;
  char head_out[256];
  char *body_out;             /* json_dumps output being written */
  char rbuf[RPC_RBUF];
};

struct rpc_server {
  uv_loop_t *loop;
  union rpc_stream listener;
  bool unix_socket;           /* listening on a Unix socket, not TCP */
  rpc_handler handler;
  void *ctx;
  char token[RPC_TOKEN_HEX + 1];
  char **names;
  size_t num_names;
  uint16_t port;
  struct rpc_conn *conns;
  unsigned nconns;
  bool closing, listener_closed;
  void (*close_cb)(void *ctx);
  void *close_ctx;
};

static void rpc_free_names(char **names, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static int rpc_copy_names(const char *const *names, size_t n, char ***out)
{
  *out = NULL;
  if (n == 0 || names == NULL)
    return 0;
  char **v = calloc(n, sizeof *v);
  if (v == NULL)
    return UV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    v[i] = strdup(names[i] != NULL ? names[i] : "");
    if (v[i] == NULL) {
      rpc_free_names(v, i);
      return UV_ENOMEM;
    }
  }
  *out = v;
  return 0;
}

static void rpc_server_maybe_free(struct rpc_server *s)
{
  if (!s->closing || !s->listener_closed || s->nconns != 0)
    return;
  void (*cb)(void *) = s->close_cb;
  void *ctx = s->close_ctx;
  rpc_free_names(s->names, s->num_names);
  sodium_memzero(s->token, sizeof s->token);
  free(s);
  if (cb != NULL)
    cb(ctx);
}

static const char *rpc_reason(int status)
{
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return status >= 500 ? "Server Error" : "Error";
  }
}

static void rpc_on_handle_closed(uv_handle_t *h)
{
  struct rpc_conn *c = h->data;
  if (--c->open_handles > 0)
    return;
  struct rpc_server *s = c->srv;
  DLIST_REMOVE(s->conns, c);
  s->nconns--;
  buf_free(&c->body);
  free(c->body_out);
  sodium_memzero(&c->hv[RPC_HDR_AUTH], sizeof c->hv[RPC_HDR_AUTH]);
  free(c);
  rpc_server_maybe_free(s);
}

static void rpc_conn_close(struct rpc_conn *c)
{
  if (c->closing)
    return;
  c->closing = true;
  if (c->call != NULL) { /* detach: a later rpc_reply drops its answer */
    c->call->conn = NULL;
    c->call = NULL;
  }
  uv_close(&c->h.handle, rpc_on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, rpc_on_handle_closed);
}

static void rpc_on_timeout(uv_timer_t *t)
{
  struct rpc_conn *c = t->data;
  if (c->state != RPC_DRAINING)
    LOG_DEBUG("rpc: connection timed out");
  rpc_conn_close(c);
}

static void rpc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  struct rpc_conn *c = h->data;
  b->base = c->rbuf;
  b->len = sizeof c->rbuf;
}

static void rpc_on_drain_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct rpc_conn *c = st->data;
  if (nread < 0)
    rpc_conn_close(c);
}

static void rpc_on_shutdown(uv_shutdown_t *req, int status)
{
  struct rpc_conn *c = req->data;
  if (c->closing)
    return;
  /* Read and drop until the client closes, so that closing does not reset
   * the connection under an answer not yet read; bounded in time. */
  if (status < 0 || uv_read_start(&c->h.stream, rpc_alloc, rpc_on_drain_read) != 0) {
    rpc_conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, rpc_on_timeout, RPC_DRAIN_MS, 0);
}

static void rpc_on_written(uv_write_t *req, int status)
{
  struct rpc_conn *c = req->data;
  free(c->body_out);
  c->body_out = NULL;
  if (c->closing)
    return;
  if (status < 0) {
    rpc_conn_close(c);
    return;
  }
  c->state = RPC_DRAINING;
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, &c->h.stream, rpc_on_shutdown) != 0)
    rpc_conn_close(c);
}

/* Sends obj (reference stolen) as the whole answer, then closes. */
static void rpc_conn_send(struct rpc_conn *c, int status, json_t *obj)
{
  char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (text == NULL) {
    status = 500;
    text = strdup("{\"error\":\"internal error: cannot encode the answer\"}");
    if (text == NULL) {
      rpc_conn_close(c);
      return;
    }
  }
  size_t blen = strlen(text);
  if (blen > UINT32_MAX - 2) { /* uv_buf_t lengths are 32-bit on some platforms */
    free(text);
    rpc_conn_close(c);
    return;
  }
  int hl = snprintf(c->head_out, sizeof c->head_out,
                    "HTTP/1.1 %d %s\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: %zu\r\n"
                    "Cache-Control: no-store\r\n"
                    "Connection: close\r\n"
                    "\r\n",
                    status, rpc_reason(status), blen + 1);
  c->body_out = text;
  c->state = RPC_WRITING;
  uv_read_stop(&c->h.stream);
  static char nl[] = "\n";
  uv_buf_t bufs[3] = {
    uv_buf_init(c->head_out, (unsigned)hl),
    uv_buf_init(text, (unsigned)blen),
    uv_buf_init(nl, 1),
  };
  c->write_req.data = c;
  if (uv_write(&c->write_req, &c->h.stream, bufs, 3, rpc_on_written) != 0) {
    rpc_conn_close(c);
    return;
  }
  /* A client that does not read its answer is not kept forever. */
  uv_timer_start(&c->timer, rpc_on_timeout, RPC_IDLE_TIMEOUT_MS, 0);
}

static json_t *rpc_error_obj(int status, const char *msg)
{
  json_t *m = msg != NULL ? json_string(msg) : NULL; /* NULL too when msg is not UTF-8 */
  if (m == NULL)
    m = json_string(rpc_reason(status));
  json_t *o = json_object();
  if (o != NULL && json_object_set_new(o, "error", m) != 0) {
    json_decref(o);
    o = NULL;
  } else if (o == NULL) {
    json_decref(m);
  }
  return o;
}

static void rpc_conn_error(struct rpc_conn *c, int status, const char *msg)
{
  LOG_DEBUG("rpc: %d %s", status, msg);
  rpc_conn_send(c, status, rpc_error_obj(status, msg));
}

void rpc_reply(struct rpc_call *call, int status, json_t *result, const char *msg)
{
  if (call == NULL) {
    json_decref(result);
    return;
  }
  struct rpc_conn *c = call->conn;
  free(call);
  if (c == NULL) { /* the client or the server went away meanwhile */
    json_decref(result);
    return;
  }
  c->call = NULL;
  if (status < 100 || status > 599)
    status = 500;
  if (status == 200) {
    json_t *o = json_object();
    if (o != NULL && json_object_set_new(o, "result", result != NULL ? result : json_null()) != 0) {
      json_decref(o);
      o = NULL;
    } else if (o == NULL) {
      json_decref(result);
    }
    rpc_conn_send(c, 200, o);
    return;
  }
  json_decref(result);
  rpc_conn_error(c, status, msg);
}

void rpc_replyf(struct rpc_call *call, int status, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rpc_reply(call, status, NULL, msg);
}

/* ---- parsing ---- */

static void rpc_append(char *dst, size_t cap, size_t *len, bool *too_long, const char *at, size_t n)
{
  if (*too_long || n > cap - *len) {
    *too_long = true;
    return;
  }
  memcpy(dst + *len, at, n);
  *len += n;
}

static int rpc_on_url(http_parser *p, const char *at, size_t len)
{
  struct rpc_conn *c = p->data;
  rpc_append(c->url, sizeof c->url, &c->url_len, &c->url_long, at, len);
  return 0;
}

static int rpc_on_header_field(http_parser *p, const char *at, size_t len)
{
  struct rpc_conn *c = p->data;
  if (c->in_value) { /* a new header begins */
    c->in_value = false;
    c->field_len = 0;
    c->field_long = false;
  }
  rpc_append(c->field, sizeof c->field, &c->field_len, &c->field_long, at, len);
  return 0;
}

static int rpc_on_header_value(http_parser *p, const char *at, size_t len)
{
  struct rpc_conn *c = p->data;
  if (!c->in_value) { /* first piece of this value: which header is it? */
    c->in_value = true;
    c->cur = NULL;
    for (size_t k = 0; k < RPC_HDR_COUNT && !c->field_long; k++) {
      if (rpc_eq_nocase(c->field, c->field_len, rpc_hdr_names[k])) {
        c->cur = &c->hv[k];
        c->cur->count++;
        c->cur->len = 0;
        break;
      }
    }
  }
  if (c->cur != NULL)
    rpc_append(c->cur->v, sizeof c->cur->v, &c->cur->len, &c->cur->too_long, at, len);
  return 0;
}

static int rpc_on_headers_complete(http_parser *p)
{
  struct rpc_conn *c = p->data;
  c->headers_done = true;
  http_parser_pause(p, 1); /* checked once the head's size is known */
  return 0;
}

static int rpc_on_body(http_parser *p, const char *at, size_t len)
{
  struct rpc_conn *c = p->data;
  int r = buf_append(&c->body, at, len);
  if (r == UV_E2BIG)
    c->body_too_big = true;
  else if (r != 0)
    c->body_nomem = true;
  return r != 0;
}

static int rpc_on_message_complete(http_parser *p)
{
  struct rpc_conn *c = p->data;
  c->have_request = true;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings rpc_settings = {
  .on_url = rpc_on_url,
  .on_header_field = rpc_on_header_field,
  .on_header_value = rpc_on_header_value,
  .on_headers_complete = rpc_on_headers_complete,
  .on_body = rpc_on_body,
  .on_message_complete = rpc_on_message_complete,
};

/* The head's checks, in order; 0 when the body may be read. */
static int rpc_conn_check_head(struct rpc_conn *c, const char **msg)
{
  struct rpc_server *s = c->srv;
  const struct rpc_hval *host = &c->hv[RPC_HDR_HOST], *auth = &c->hv[RPC_HDR_AUTH];
  if (host->count != 1 || host->too_long ||
      !rpc_host_allowed(host->v, host->len, (const char *const *)s->names, s->num_names)) {
    *msg = host->count == 0 ? "missing Host header" : "Host header not allowed";
    return 403;
  }
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (c->url_long || c->url_len == 0 || http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 ||
      !(u.field_set & (1u << UF_PATH)) ||
      !(u.field_data[UF_PATH].len == 4 && memcmp(c->url + u.field_data[UF_PATH].off, "/rpc", 4) == 0)) {
    *msg = "not found: the control API is POST /rpc";
    return 404;
  }
  if (c->parser.method != HTTP_POST) {
    *msg = "method not allowed: the control API is POST /rpc";
    return 405;
  }
  if (auth->count != 1 || auth->too_long || !rpc_token_ok(auth->v, auth->len, s->token)) {
    *msg = auth->count == 0 ? "missing token: send Authorization: Bearer <the rpc-token file's contents>"
                            : "wrong token";
    return 401;
  }
  if ((c->parser.flags & F_CONTENTLENGTH) && c->parser.content_length > RPC_MAX_BODY) {
    *msg = "request body too large (at most 16 MiB)";
    return 413;
  }
  return 0;
}

static void rpc_on_cont_written(uv_write_t *req, int status)
{
  (void)req;
  (void)status; /* a failed write shows up on the next read or write */
}

/* Parses the body and hands the request to the handler. */
static void rpc_conn_request(struct rpc_conn *c)
{
  struct rpc_server *s = c->srv;
  c->state = RPC_WAITING;
  uv_timer_stop(&c->timer); /* the server is working now, not the client */
  json_error_t je;
  json_t *req = json_loadb(c->body.p != NULL ? (const char *)c->body.p : "", c->body.len,
                           JSON_REJECT_DUPLICATES, &je);
  buf_free(&c->body);
  if (req == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "invalid JSON at byte %d: %s", je.position, je.text);
    rpc_conn_error(c, 400, msg);
    return;
  }
  json_t *method = json_object_get(req, "method");
  json_t *params = json_object_get(req, "params");
  json_t *own = NULL;
  const char *bad = NULL;
  if (!json_is_object(req))
    bad = "the request must be a JSON object";
  else if (!json_is_string(method))
    bad = "the request has no string \"method\"";
  else if (params != NULL && !json_is_object(params))
    bad = "\"params\" must be an object";
  else if (params == NULL && (params = own = json_object()) == NULL) {
    json_decref(req);
    rpc_conn_error(c, 500, "out of memory");
    return;
  }
  if (bad != NULL) {
    json_decref(req);
    rpc_conn_error(c, 400, bad);
    return;
  }
  struct rpc_call *call = calloc(1, sizeof *call);
  if (call == NULL) {
    json_decref(own);
    json_decref(req);
    rpc_conn_error(c, 500, "out of memory");
    return;
  }
  call->conn = c;
  c->call = call;
  LOG_DEBUG("rpc: %s", json_string_value(method));
  /* The handler may answer at once, later, or close the server: c stays
   * allocated until its close callbacks, which run after this returns. */
  s->handler(s->ctx, call, json_string_value(method), params);
  json_decref(own);
  json_decref(req);
}

/* Feeds received bytes to the parser until the request is complete or refused. */
static void rpc_conn_feed(struct rpc_conn *c, const char *p, size_t len)
{
  while (len > 0 && c->state == RPC_READING && !c->closing) {
    bool in_head = !c->headers_done;
    size_t n = len;
    if (in_head && n > RPC_MAX_HEADERS + 1 - c->head_bytes)
      n = RPC_MAX_HEADERS + 1 - c->head_bytes; /* one byte too many is enough to tell */
    size_t used = http_parser_execute(&c->parser, &rpc_settings, p, n);
    p += used;
    len -= used;
    if (in_head)
      c->head_bytes += used;
    if (c->head_bytes > RPC_MAX_HEADERS) {
      rpc_conn_error(c, 431, "request headers too large (at most 16 KiB)");
      return;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      if (c->headers_done && !c->head_checked) {
        c->head_checked = true;
        const char *msg = NULL;
        int status = rpc_conn_check_head(c, &msg);
        if (status != 0) {
          rpc_conn_error(c, status, msg);
          return;
        }
        const struct rpc_hval *expect = &c->hv[RPC_HDR_EXPECT];
        if (!expect->too_long && rpc_eq_nocase(expect->v, expect->len, "100-continue") &&
            c->parser.http_major == 1 && c->parser.http_minor >= 1) {
          static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
          uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
          c->cont_req.data = c;
          if (uv_write(&c->cont_req, &c->h.stream, &b, 1, rpc_on_cont_written) != 0) {
            rpc_conn_close(c);
            return;
          }
        }
      }
      if (c->have_request) {
        c->extra += len; /* anything after the request is ignored */
        rpc_conn_request(c);
        return;
      }
      continue;
    }
    if (e != HPE_OK) {
      if (c->body_too_big)
        rpc_conn_error(c, 413, "request body too large (at most 16 MiB)");
      else if (c->body_nomem)
        rpc_conn_error(c, 500, "out of memory");
      else {
        char msg[128];
        snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
        rpc_conn_error(c, 400, msg);
      }
      return;
    }
  }
}

static void rpc_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
  struct rpc_conn *c = st->data;
  if (nread < 0) { /* EOF or error: the client is gone (a waiting call is detached) */
    rpc_conn_close(c);
    return;
  }
  if (nread == 0)
    return;
  if (c->state == RPC_READING) {
    uv_timer_again(&c->timer);
    rpc_conn_feed(c, b->base, (size_t)nread);
  } else if (c->state == RPC_WAITING) {
    c->extra += (size_t)nread;
    if (c->extra > RPC_MAX_EXTRA)
      rpc_conn_close(c);
  }
}

static void rpc_on_refused_closed(uv_handle_t *h)
{
  free(h);
}

static int rpc_stream_init(struct rpc_server *s, union rpc_stream *h)
{
  return s->unix_socket ? uv_pipe_init(s->loop, &h->pipe, 0) : uv_tcp_init(s->loop, &h->tcp);
}

static void rpc_on_connection(uv_stream_t *listener, int status)
{
  struct rpc_server *s = listener->data;
  if (status < 0) {
    LOG_WARN("rpc: accept: %s", uv_strerror(status));
    return;
  }
  if (s->closing)
    return;
  if (s->nconns >= RPC_MAX_CONNS) {
    union rpc_stream *t = malloc(sizeof *t);
    if (t == NULL)
      return;
    if (rpc_stream_init(s, t) != 0) {
      free(t);
      return;
    }
    if (uv_accept(listener, &t->stream) == 0)
      LOG_INFO("rpc: connection refused: %u connections open", s->nconns);
    uv_close(&t->handle, rpc_on_refused_closed);
    return;
  }
  struct rpc_conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->srv = s;
  if (rpc_stream_init(s, &c->h) != 0) {
    free(c);
    return;
  }
  uv_timer_init(s->loop, &c->timer);
  c->h.handle.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  c->state = RPC_READING;
  buf_init(&c->body, RPC_MAX_BODY);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  DLIST_PUSH(s->conns, c);
  s->nconns++;
  if (uv_accept(listener, &c->h.stream) != 0 ||
      uv_read_start(&c->h.stream, rpc_alloc, rpc_on_read) != 0) {
    rpc_conn_close(c);
    return;
  }
  if (!s->unix_socket)
    uv_tcp_nodelay(&c->h.tcp, 1);
  uv_timer_start(&c->timer, rpc_on_timeout, RPC_IDLE_TIMEOUT_MS, RPC_IDLE_TIMEOUT_MS);
}

static void rpc_on_listener_closed(uv_handle_t *h)
{
  struct rpc_server *s = h->data;
  s->listener_closed = true;
  rpc_server_maybe_free(s);
}

/* The parts of a server both kinds share; the listener is not set up. */
static struct rpc_server *rpc_server_new(uv_loop_t *loop, const struct rpc_server_config *cfg, rpc_handler handler,
                                         void *ctx)
{
  struct rpc_server *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  if (rpc_copy_names(cfg->host_names, cfg->num_host_names, &s->names) != 0) {
    free(s);
    return NULL;
  }
  s->num_names = s->names != NULL ? cfg->num_host_names : 0;
  s->loop = loop;
  s->handler = handler;
  s->ctx = ctx;
  memcpy(s->token, cfg->token, RPC_TOKEN_HEX + 1);
  return s;
}

int rpc_server_start(uv_loop_t *loop, const struct rpc_server_config *cfg, rpc_handler handler, void *ctx,
                     struct rpc_server **out)
{
  *out = NULL;
  if (cfg == NULL || handler == NULL || cfg->token == NULL || !rpc_is_token(cfg->token, strlen(cfg->token)))
    return UV_EINVAL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = 0;
  if (cfg->unix_path == NULL) {
    const char *bind = cfg->bind != NULL ? cfg->bind : "127.0.0.1";
    if (uv_ip4_addr(bind, cfg->port, (struct sockaddr_in *)&ss) != 0) {
      if (strchr(bind, ':') == NULL || uv_ip6_addr(bind, cfg->port, (struct sockaddr_in6 *)&ss) != 0)
        return UV_EINVAL;
      flags = UV_TCP_IPV6ONLY;
    }
  } else if (cfg->unix_path[0] != '/' || strlen(cfg->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    return UV_ENAMETOOLONG;    /* relative, or longer than a socket address holds */
  }
  struct rpc_server *s = rpc_server_new(loop, cfg, handler, ctx);
  if (s == NULL)
    return UV_ENOMEM;
  s->unix_socket = cfg->unix_path != NULL;
  int r = rpc_stream_init(s, &s->listener);
  if (r) {
    rpc_free_names(s->names, s->num_names);
    free(s);
    return r;
  }
  s->listener.handle.data = s;
  if (s->unix_socket) {
    /* a socket left by a daemon that died is replaced; anything else is not */
    struct stat st;
    if (lstat(cfg->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
      unlink(cfg->unix_path);
    r = uv_pipe_bind(&s->listener.pipe, cfg->unix_path);
    /* 0600: the socket guards itself too, not only the folder it is in
     * (umask is left alone: the threadpool may be creating files) */
    if (!r && chmod(cfg->unix_path, 0600) != 0)
      r = -errno;
  } else {
    r = uv_tcp_bind(&s->listener.tcp, (const struct sockaddr *)&ss, flags);
  }
  if (!r)
    r = uv_listen(&s->listener.stream, RPC_BACKLOG, rpc_on_connection);
  if (!r && !s->unix_socket) {
    struct sockaddr_storage name;
    int nl = sizeof name;
    r = uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&name, &nl);
    if (!r)
      s->port = name.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&name)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&name)->sin_port);
  }
  if (r) {
    /* The handle must still be closed; the server frees itself then (no callback). */
    s->closing = true;
    uv_close(&s->listener.handle, rpc_on_listener_closed);
    return r;
  }
  *out = s;
  return 0;
}

uint16_t rpc_server_port(const struct rpc_server *s)
{
  return s->port;
}

int rpc_server_set_host_names(struct rpc_server *s, const char *const *names, size_t n)
{
  char **v;
  if (rpc_copy_names(names, n, &v) != 0)
    return UV_ENOMEM;
  rpc_free_names(s->names, s->num_names);
  s->names = v;
  s->num_names = v != NULL ? n : 0;
  return 0;
}

void rpc_server_close(struct rpc_server *s, void (*cb)(void *ctx), void *ctx)
{
  if (s == NULL || s->closing)
    return;
  s->closing = true;
  s->close_cb = cb;
  s->close_ctx = ctx;
  uv_close(&s->listener.handle, rpc_on_listener_closed);
  /* Closing a connection detaches its outstanding call, if any. */
  for (struct rpc_conn *c = s->conns; c != NULL; c = c->next)
    rpc_conn_close(c);
}
