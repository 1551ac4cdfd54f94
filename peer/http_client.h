/* http_client.h -- asynchronous HTTP(S) GET on the libuv loop (libcurl multi interface). */
#ifndef PEER_HTTP_CLIENT_H_
#define PEER_HTTP_CLIENT_H_

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_client;
struct http_req;

/* Largest body http_get accepts as max_body_bytes, and the cap used when 0
 * is given. */
#define HTTP_CLIENT_MAX_BODY (16u << 20)
#define HTTP_CLIENT_DEFAULT_BODY (1u << 20)
/* Longest URL accepted. */
#define HTTP_CLIENT_MAX_URL 8192

/* Result of one request.  status is 0 when an HTTP reply arrived (whatever
 * its code: http_code says which, e.g. 200 or 404), else a negative code
 * (http_code then 0): UV_ETIMEDOUT, UV_ECONNREFUSED, UV_EAI_NONAME (name not
 * resolved), UV_ECONNRESET (connection lost, empty reply), UV_EPROTO (TLS or
 * HTTP framing), UV_EPROTONOSUPPORT (scheme other than http/https, also
 * after a redirect), UV_ELOOP (more than 3 redirects), UV_EINVAL (malformed
 * URL), SHOAL_ETOOBIG (body longer than max_body_bytes; nothing of it is
 * passed on), UV_ENOMEM, UV_EIO (other).
 * body[0..len) is the (decoded) body, NUL-terminated at body[len] for
 * convenience; it and errmsg (one line for people, "" on success) are only
 * valid during the call.  The request is freed when the callback returns:
 * do not http_cancel() it. */
typedef void (*http_done_cb)(void *ctx, int status, long http_code,
                             const uint8_t *body, size_t len, const char *errmsg);

typedef void (*http_close_cb)(void *ctx);

/* Creates a client driving a libcurl multi handle from `loop` (uv_poll_t per
 * socket, one uv_timer_t).  The first call initialises libcurl globally.
 * Returns 0 and *out, or UV_ENOMEM / UV_EIO. */
int http_client_new(uv_loop_t *loop, struct http_client **out);

/* Cancels every pending request (their callbacks are never called), closes
 * the client's libuv handles and frees it; then calls cb(ctx) (cb may be
 * NULL) from a later loop iteration.  The loop must run for that to happen.
 * Allowed from inside a request callback.  The client must not be used after
 * this call. */
void http_client_close(struct http_client *c, http_close_cb cb, void *ctx);

/* Starts GET url (http:// or https:// only; redirects followed up to 3 times,
 * staying on http/https).  timeout_ms bounds the whole transfer (0: 30 s);
 * max_body_bytes caps the body (0: HTTP_CLIENT_DEFAULT_BODY; at most
 * HTTP_CLIENT_MAX_BODY).  On success returns 0, sets *req_out (may be NULL)
 * to a handle that stays valid until done_cb is called or the request is
 * cancelled, and done_cb will be called exactly once from the loop (never
 * from inside http_get).  On error (UV_EINVAL: bad arguments or URL too
 * long, UV_ENOMEM, UV_ECANCELED: client closing) done_cb is never called. */
int http_get(struct http_client *c, const char *url, unsigned timeout_ms,
             size_t max_body_bytes, http_done_cb done_cb, void *ctx,
             struct http_req **req_out);

/* Aborts a pending request and frees it; its callback is never called.
 * req must be one that http_get returned and whose callback has not run. */
void http_cancel(struct http_req *req);

/* Number of requests started and neither finished nor cancelled. */
size_t http_client_pending(const struct http_client *c);

#endif
