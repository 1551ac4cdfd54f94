/* http_client.c -- libcurl's multi interface driven by libuv: a uv_poll_t per curl socket, one uv_timer_t. */
#include "peer/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS 30000u
#define HTTP_CLIENT_MAX_REDIRS 3L
#define HTTP_CLIENT_MAX_CONNECTIONS 64L
#define HTTP_CLIENT_USER_AGENT "shoal/0.1"

/* One socket curl asked us to watch.  Freed in its close callback. */
struct http_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct http_client *c;
  struct http_sock *prev, *next;   /* in c->socks while not closing */
};

struct http_req {
  struct http_client *c;
  CURL *easy;
  struct buf body;
  size_t max_body;
  int write_err;                   /* why the write callback refused data */
  http_done_cb cb;
  void *ctx;
  struct http_req *prev, *next;    /* in c->reqs */
  char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct http_sock *socks;
  struct http_req *reqs;
  size_t nreqs;
  unsigned open_handles;           /* uv handles whose close callback has not run */
  bool closing;
  http_close_cb close_cb;
  void *close_ctx;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- handle bookkeeping ---- */

static void client_finish_close(struct http_client *c)
{
  http_close_cb cb = c->close_cb;
  void *ctx = c->close_ctx;
  free(c);
  if (cb)
    cb(ctx);
}

static void handle_closed(struct http_client *c)
{
  c->open_handles--;
  if (c->closing && c->open_handles == 0)
    client_finish_close(c);
}

static void on_sock_closed(uv_handle_t *h)
{
  struct http_sock *s = container_of((uv_poll_t *)h, struct http_sock, poll);
  struct http_client *c = s->c;
  free(s);
  handle_closed(c);
}

static void on_timer_closed(uv_handle_t *h)
{
  struct http_client *c = container_of((uv_timer_t *)h, struct http_client, timer);
  handle_closed(c);
}

/* Stops watching a socket at once (libuv drops the fd from its watchers in
 * uv_close, so curl may close the fd and the number may be reused), frees it
 * in the close callback. */
static void sock_close(struct http_client *c, struct http_sock *s)
{
  if (s->prev)
    s->prev->next = s->next;
  else
    c->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static struct http_sock *sock_find(struct http_client *c, curl_socket_t fd)
{
  for (struct http_sock *s = c->socks; s; s = s->next)
    if (s->fd == fd)
      return s;
  return NULL;
}

static void req_link(struct http_client *c, struct http_req *r)
{
  DLIST_PUSH(c->reqs, r);
  c->nreqs++;
}

static void req_unlink(struct http_client *c, struct http_req *r)
{
  DLIST_REMOVE(c->reqs, r);
  c->nreqs--;
}

static void req_free(struct http_req *r)
{
  if (r->easy)
    curl_easy_cleanup(r->easy);
  buf_free(&r->body);
  free(r);
}

/* ---- completion ---- */

static int map_curl_error(CURLcode rc, const struct http_req *r)
{
  switch (rc) {
  case CURLE_OK:
    return 0;
  case CURLE_OPERATION_TIMEDOUT:
    return UV_ETIMEDOUT;
  case CURLE_COULDNT_CONNECT:
    return UV_ECONNREFUSED;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return UV_EAI_NONAME;
  case CURLE_UNSUPPORTED_PROTOCOL:
    return UV_EPROTONOSUPPORT;
  case CURLE_TOO_MANY_REDIRECTS:
    return UV_ELOOP;
  case CURLE_URL_MALFORMAT:
    return UV_EINVAL;
  case CURLE_FILESIZE_EXCEEDED:
    return SHOAL_ETOOBIG;
  case CURLE_WRITE_ERROR:
    return r->write_err ? r->write_err : UV_EIO;
  case CURLE_OUT_OF_MEMORY:
    return UV_ENOMEM;
  case CURLE_GOT_NOTHING:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
    return UV_ECONNRESET;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return UV_EPROTO;
  default:
    return UV_EIO;
  }
}

/* Reports finished transfers.  A callback may close the client: stop then. */
static void check_done(struct http_client *c)
{
  CURLMsg *m;
  int left;

  while (!c->closing && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE)
      continue;
    CURL *easy = m->easy_handle;
    CURLcode rc = m->data.result;   /* m is gone after remove_handle */
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    struct http_req *r = (struct http_req *)priv;
    if (r == NULL) {
      curl_multi_remove_handle(c->multi, easy);
      continue;
    }
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    req_unlink(c, r);
    curl_multi_remove_handle(c->multi, easy);

    int status = map_curl_error(rc, r);
    const char *msg = "";
    if (status == SHOAL_ETOOBIG) {
      snprintf(r->errbuf, sizeof r->errbuf, "reply body larger than %zu bytes", r->max_body);
      msg = r->errbuf;
    } else if (status != 0) {
      msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
    }
    /* NUL after the body: room for it was kept under the buffer's max. */
    static const uint8_t empty[1] = { 0 };
    const uint8_t *body = empty;
    size_t len = 0;
    if (status == 0 && r->body.len > 0 && buf_append_u8(&r->body, 0) == 0) {
      body = r->body.p;
      len = r->body.len - 1;
    }
    r->cb(r->ctx, status, status == 0 ? code : 0, body, len, msg);
    req_free(r);
  }
}

/* ---- libuv -> curl ---- */

static void on_poll(uv_poll_t *p, int status, int events)
{
  struct http_sock *s = container_of(p, struct http_sock, poll);
  struct http_client *c = s->c;
  int flags = 0;
  int running = 0;

  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE)
      flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
      flags |= CURL_CSELECT_OUT;
  }
  curl_multi_socket_action(c->multi, s->fd, flags, &running);
  check_done(c);   /* s may be closing now: not touched again */
}

static void on_timer(uv_timer_t *t)
{
  struct http_client *c = container_of(t, struct http_client, timer);
  int running = 0;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(c);
}

/* ---- curl -> libuv ---- */

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  struct http_client *c = userp;
  struct http_sock *s = socketp;
  (void)easy;

  if (what == CURL_POLL_REMOVE) {
    if (s)
      sock_close(c, s);
    return 0;
  }
  if (c->closing)
    return 0;
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL)
      return -1;
    int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
    if (rc != 0) {
      LOG_WARN("http: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
      free(s);
      return -1;
    }
    s->fd = fd;
    s->c = c;
    s->next = c->socks;
    if (c->socks)
      c->socks->prev = s;
    c->socks = s;
    c->open_handles++;
    curl_multi_assign(c->multi, fd, s);
  }
  int ev = 0;
  if (what & CURL_POLL_IN)
    ev |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    ev |= UV_WRITABLE;
  int rc = uv_poll_start(&s->poll, ev, on_poll);
  if (rc != 0) {
    LOG_WARN("http: cannot poll socket %d: %s", (int)fd, uv_strerror(rc));
    return -1;
  }
  return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  struct http_client *c = userp;
  (void)multi;

  if (c->closing)
    return 0;
  if (timeout_ms < 0)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);   /* 0: next iteration */
  return 0;
}

/* curl closes a socket: make sure no poll handle still sits on that fd
 * number (curl normally said CURL_POLL_REMOVE before; this is the backstop
 * against a stale watcher catching a reused descriptor). */
static int on_curl_closesocket(void *clientp, curl_socket_t fd)
{
  struct http_client *c = clientp;
  struct http_sock *s = sock_find(c, fd);
  if (s)
    sock_close(c, s);
  return close(fd);
}

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *userp)
{
  struct http_req *r = userp;
  size_t n = size * nmemb;   /* size is 1 */

  if (n > r->max_body - r->body.len) {
    r->write_err = SHOAL_ETOOBIG;
    return 0;
  }
  int rc = buf_append(&r->body, p, n);
  if (rc != 0) {
    r->write_err = rc == UV_E2BIG ? SHOAL_ETOOBIG : rc;
    return 0;
  }
  return n;
}

/* ---- API ---- */

int http_client_new(uv_loop_t *loop, struct http_client **out)
{
  if (loop == NULL || out == NULL)
    return UV_EINVAL;
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return UV_EIO;

  struct http_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return UV_ENOMEM;
  c->loop = loop;
  c->multi = curl_multi_init();
  if (c->multi == NULL) {
    free(c);
    return UV_ENOMEM;
  }
  if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
      curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, HTTP_CLIENT_MAX_CONNECTIONS) != CURLM_OK) {
    curl_multi_cleanup(c->multi);
    free(c);
    return UV_EIO;
  }
  int rc = uv_timer_init(loop, &c->timer);
  if (rc != 0) {
    curl_multi_cleanup(c->multi);
    free(c);
    return rc;
  }
  c->open_handles = 1;
  *out = c;
  return 0;
}

void http_client_close(struct http_client *c, http_close_cb cb, void *ctx)
{
  if (c == NULL || c->closing)
    return;
  c->closing = true;
  c->close_cb = cb;
  c->close_ctx = ctx;
  while (c->reqs) {
    struct http_req *r = c->reqs;
    req_unlink(c, r);
    curl_multi_remove_handle(c->multi, r->easy);
    req_free(r);
  }
  curl_multi_cleanup(c->multi);   /* may report sockets removed or closed */
  c->multi = NULL;
  while (c->socks)
    sock_close(c, c->socks);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

int http_get(struct http_client *c, const char *url, unsigned timeout_ms,
             size_t max_body_bytes, http_done_cb done_cb, void *ctx,
             struct http_req **req_out)
{
  if (c == NULL || url == NULL || done_cb == NULL || max_body_bytes > HTTP_CLIENT_MAX_BODY)
    return UV_EINVAL;
  if (c->closing)
    return UV_ECANCELED;
  if (strnlen(url, HTTP_CLIENT_MAX_URL + 1) > HTTP_CLIENT_MAX_URL || url[0] == '\0')
    return UV_EINVAL;
  if (timeout_ms == 0)
    timeout_ms = HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
  if (max_body_bytes == 0)
    max_body_bytes = HTTP_CLIENT_DEFAULT_BODY;

  struct http_req *r = calloc(1, sizeof *r);
  if (r == NULL)
    return UV_ENOMEM;
  r->c = c;
  r->cb = done_cb;
  r->ctx = ctx;
  r->max_body = max_body_bytes;
  buf_init(&r->body, max_body_bytes + 1);   /* + the NUL added at the end */
  r->easy = curl_easy_init();
  if (r->easy == NULL) {
    req_free(r);
    return UV_ENOMEM;
  }
  CURL *e = r->easy;
  bool ok = true;
  ok = ok && curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_USERAGENT, HTTP_CLIENT_USER_AGENT) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_MAXREDIRS, HTTP_CLIENT_MAX_REDIRS) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body_bytes) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_closesocket) == CURLE_OK;
  ok = ok && curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c) == CURLE_OK;
  if (!ok) {
    req_free(r);
    return UV_ENOMEM;
  }
#if LIBCURL_VERSION_NUM >= 0x075700
  /* Cancelling (or timing out) a transfer whose name lookup is still running
   * on curl's resolver thread would otherwise join that thread: block the
   * loop until getaddrinfo returns.  With this the thread is detached. */
  (void)curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
  req_link(c, r);
  CURLMcode mrc = curl_multi_add_handle(c->multi, e);   /* arms the timer: starts next iteration */
  if (mrc != CURLM_OK) {
    req_unlink(c, r);
    req_free(r);
    return mrc == CURLM_OUT_OF_MEMORY ? UV_ENOMEM : UV_EIO;
  }
  if (req_out)
    *req_out = r;
  return 0;
}

void http_cancel(struct http_req *r)
{
  if (r == NULL)
    return;
  struct http_client *c = r->c;
  req_unlink(c, r);
  if (c->multi)
    curl_multi_remove_handle(c->multi, r->easy);
  req_free(r);
}

size_t http_client_pending(const struct http_client *c)
{
  return c ? c->nreqs : 0;
}
