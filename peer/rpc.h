/* rpc.h -- the daemon's control API server: JSON over HTTP/1.1 on libuv with http-parser; token and Host checks. */
#ifndef PEER_RPC_H_
#define PEER_RPC_H_

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RPC_TOKEN_FILE "rpc-token"
#define RPC_ENDPOINT_FILE "rpc-endpoint"
#define RPC_TOKEN_HEX 64u                 /* token: 32 random bytes as lower-case hex */
#define RPC_MAX_BODY (16u << 20)          /* larger -> 413 */
#define RPC_MAX_HEADERS (16u << 10)       /* all header bytes; more -> 431 */
#define RPC_MAX_CONNS 64u                 /* open control connections; more are closed at once */
#define RPC_IDLE_TIMEOUT_MS 30000u        /* a connection silent this long is closed */

/* One request being answered.  Valid from the handler call until rpc_reply
 * (exactly one rpc_reply per call, possibly later, from the loop thread). */
struct rpc_call;

/* Called on the loop thread for an authenticated POST /rpc whose body is a
 * JSON object with a string "method" ("params": an object, {} when absent;
 * borrowed: json_incref to keep it past the handler). */
typedef void (*rpc_handler)(void *ctx, struct rpc_call *call, const char *method, json_t *params);

/* Answers: status 200 with result (reference stolen; NULL = null) sent as
 * {"result": ...}, or an error status with {"error": msg}.  When the client
 * has gone meanwhile the answer is dropped.  Frees the call. */
void rpc_reply(struct rpc_call *call, int status, json_t *result, const char *msg);
/* printf-style error answer. */
void rpc_replyf(struct rpc_call *call, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct rpc_server_config {
  const char *bind;                       /* numeric IPv4/IPv6; NULL = "127.0.0.1" */
  uint16_t port;                          /* 0 = any free port (see rpc_server_port) */
  const char *token;                      /* RPC_TOKEN_HEX hex digits (copied) */
  const char *const *host_names;          /* extra names accepted in Host (copied) */
  size_t num_host_names;
  const char *unix_path;                  /* set: listen on this Unix socket (absolute path,
                                             created 0600; a stale socket there is replaced)
                                             instead of TCP; bind and port are ignored */
};

struct rpc_server;

/* Binds, listens and serves.  Errors: UV_EADDRINUSE etc. from libuv,
 * UV_EINVAL (bad bind address or token), UV_ENAMETOOLONG (a unix_path that
 * is relative or too long for a socket address), UV_ENOMEM.  The same
 * checks (Host, token, sizes) apply on a Unix socket.  On error nothing is left open. */
int rpc_server_start(uv_loop_t *loop, const struct rpc_server_config *cfg, rpc_handler handler,
                     void *ctx, struct rpc_server **out);
uint16_t rpc_server_port(const struct rpc_server *s);   /* 0 on a Unix socket */
/* Replaces the extra Host names (SIGHUP reload).  0 or UV_ENOMEM (old names kept). */
int rpc_server_set_host_names(struct rpc_server *s, const char *const *names, size_t n);
/* Stops listening, closes every connection (calls not yet answered get
 * their answers dropped), frees; cb(ctx) when done (may be NULL). */
void rpc_server_close(struct rpc_server *s, void (*cb)(void *ctx), void *ctx);

/* Pure checks (exposed for tests). */
/* Host header value host[0..len) names this machine (localhost, 127.0.0.1,
 * ::1 / [::1]) or one of names (case-insensitive), with an optional
 * ":<digits>" port. */
bool rpc_host_allowed(const char *host, size_t len, const char *const *names, size_t n);
/* Authorization header value v[0..len) is "Bearer <token>" with exactly
 * the token; compared in constant time. */
bool rpc_token_ok(const char *v, size_t len, const char *token);

/* Token file (BLOCKING: call before the loop runs, or in the CLI).
 * load_or_create: reads <dir>/rpc-token, or creates it (O_EXCL, mode 0600)
 * with a new random token; refuses (UV_EPERM, reason in err) a token file
 * readable or writable by group/others or not a regular file; UV_EINVAL for
 * a file that does not hold a token.  out gets RPC_TOKEN_HEX digits + NUL. */
int rpc_token_load_or_create(const char *dir, char out[RPC_TOKEN_HEX + 1], char *err, size_t errlen);
/* Reads an existing token (UV_ENOENT when absent). */
int rpc_token_read(const char *dir, char out[RPC_TOKEN_HEX + 1], char *err, size_t errlen);

#endif
