/* rpc_client.h -- a blocking call to the daemon's control API (libcurl easy; for `shoal remote`). */
#ifndef PEER_RPC_CLIENT_H_
#define PEER_RPC_CLIENT_H_

#include <jansson.h>
#include <stdint.h>

#define RPC_CLIENT_TIMEOUT_S 60
#define RPC_CLIENT_MAX_REPLY (64u << 20)

/* POSTs {"method": method, "params": params} to http://host:port/rpc with
 * "Authorization: Bearer token" and "Host: localhost:port" (or host when it
 * is not a loopback literal).  params is borrowed (NULL = {}).
 * Returns 0 with *result (new reference; JSON null when the result was
 * null) on a 200 reply; otherwise a negative error with a one-line reason
 * in err: SHOAL_EREMOTE for an error reply
 * (err = the daemon's "error" text, *http_status set), UV_ECONNREFUSED
 * ("cannot reach the daemon at HOST:PORT: ..."), UV_ETIMEDOUT,
 * SHOAL_ETOOBIG (reply over RPC_CLIENT_MAX_REPLY), UV_EPROTO (reply not
 * JSON / not the expected shape), UV_ENOMEM.  host: a numeric address
 * (IPv6 without brackets). */
int rpc_client_call(const char *host, uint16_t port, const char *token, const char *method,
                    json_t *params, json_t **result, long *http_status, char *err, size_t errlen);

#endif
