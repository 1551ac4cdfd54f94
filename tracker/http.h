/* http.h -- the tracker's HTTP side: announce/scrape request handling (pure) and the libuv server around it. */
#ifndef TRACKER_HTTP_H_
#define TRACKER_HTTP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "tracker/swarms.h"

/* Fixed limits. */
#define TRACKERHTTP_HEAD_MAX 8192            /* request line + headers; more: 431, close */
#define TRACKERHTTP_BODY_MAX (256u << 10)    /* an answer body never exceeds this */
#define TRACKERHTTP_NUMWANT_DEFAULT 50
#define TRACKERHTTP_NUMWANT_MAX 200          /* larger numwant values are clamped to this */
#define TRACKERHTTP_SCRAPE_MAX 128           /* info_hash parameters in one scrape */
#define TRACKERHTTP_SCRAPE_ALL_MAX 1000      /* swarms in a scrape without info_hash */
#define TRACKERHTTP_WHY_LEN 64               /* room for a failure reason */

struct trackerhttp_config {
  uint32_t interval;         /* seconds between announces asked of clients; default 1800 */
  uint32_t min_interval;     /* default interval / 2 (at least 1) */
  uint32_t max_conns;        /* concurrent connections; more are closed at once; default 1024 */
  uint32_t idle_timeout_ms;  /* a connection must send a whole request this soon after
                                connecting or after its last answer; default 15000 */
  uint32_t max_requests;     /* per keep-alive connection; default 100 */
};

/* Fills in the defaults above. */
void trackerhttp_config_default(struct trackerhttp_config *cfg);

/* ---- pure request handling (no I/O) ---- */

/* A validated announce (BEP 3). */
struct trackerhttp_announce_req {
  uint8_t info_hash[SWARMS_ID_LEN];
  uint8_t peer_id[SWARMS_ID_LEN];
  uint16_t port;             /* 1..65535 */
  uint64_t uploaded, downloaded, left;   /* each at most INT64_MAX */
  enum swarms_event event;   /* absent, "" or "empty": SWARMS_EVENT_NONE */
  bool compact;              /* compact=0|1, default 1 */
  bool no_peer_id;           /* no_peer_id=0|1, default 0 */
  uint32_t numwant;          /* default TRACKERHTTP_NUMWANT_DEFAULT, clamped to _MAX */
};

/* Parses the query string of an announce (without the '?').  Required:
 * info_hash and peer_id (percent-decoding to exactly 20 bytes), port,
 * uploaded, downloaded, left (decimal digits only, no sign, no overflow).
 * Optional: event, compact, numwant, no_peer_id; ip, key, trackerid and unknown
 * keys are ignored.  A known key given twice is an error.  Returns 0, or
 * SHOAL_EPROTO with a reason for the client in why (e.g. "invalid info_hash",
 * "missing port", "duplicate peer_id"). */
int trackerhttp_parse_announce(const char *query, size_t len, struct trackerhttp_announce_req *req,
                               char why[TRACKERHTTP_WHY_LEN]);

/* Handles an announce: parses the query, records the peer (IP from `remote`,
 * the connection's address; port from the query) at time `now` (seconds, the
 * clock of swarms_sweep), and appends the bencoded answer to `out`: either
 * {complete, incomplete, interval, min interval, peers[, peers6][, warning
 * message]} -- peers as a compact string (BEP 23) with IPv6 peers in peers6
 * (BEP 7), or with compact=0 a list of {ip, peer id, port} dicts -- or
 * {failure reason} for a malformed request.  Peers are a uniform random
 * sample of at most numwant; the requester is never in its own answer, and a
 * seed (left=0) is given only leechers.  When a cap of the swarms is reached
 * the peer is not recorded but still answered, with a `warning message`.  Returns 0 (also for a failure answer), or the buf error when
 * `out` is full (its contents are then unspecified), or UV_ENOMEM. */
int trackerhttp_announce(struct swarms *s, const struct trackerhttp_config *cfg,
                         const char *query, size_t len, const struct sockaddr *remote,
                         uint64_t now, struct buf *out);

/* Handles a scrape (BEP 48): appends {files: {infohash: {complete, downloaded,
 * incomplete}}} for every info_hash parameter (unknown ones with zeros), or,
 * with none, for up to TRACKERHTTP_SCRAPE_ALL_MAX swarms; or {failure reason}
 * for a malformed info_hash or more than TRACKERHTTP_SCRAPE_MAX of them.
 * Returns 0 or the buf error. */
int trackerhttp_scrape(const struct swarms *s, const char *query, size_t len, struct buf *out);

/* Routes one GET request target ("/announce?...", "/scrape?...", or the
 * absolute form): appends the answer body to `body` and returns the HTTP
 * status: 200 (announce and scrape, including their failure answers), 404 for
 * any other path, 400 for an unparsable target, 500 when the answer does not
 * fit in `body` or memory runs out. */
int trackerhttp_route(struct swarms *s, const struct trackerhttp_config *cfg,
                      const char *target, size_t len, const struct sockaddr *remote,
                      uint64_t now, struct buf *body);

/* Appends a whole HTTP/1.1 response: status line, Content-Type: text/plain,
 * Content-Length, Connection: keep-alive or close, then the body. */
int trackerhttp_response(struct buf *out, int status, const void *body, size_t body_len,
                         bool keep_alive);

/* ---- the server ---- */

struct trackerhttp_server;

/* Listens on `bind` (IPv4 or IPv6; port 0 picks a free one) on `loop` and
 * serves announces and scrapes from `swarms` (borrowed: it must outlive the
 * server).  The time given to the swarms is uv_now(loop) / 1000.  On success
 * *out is the server.  On error (e.g. UV_EADDRINUSE) *out is untouched and the
 * half-made server frees itself on the next run of the loop (run the loop
 * before uv_loop_close). */
int trackerhttp_server_new(uv_loop_t *loop, struct swarms *swarms,
                           const struct trackerhttp_config *cfg, const struct sockaddr *bind,
                           struct trackerhttp_server **out);

/* The address actually bound (for port 0).  0 or a libuv error. */
int trackerhttp_server_addr(const struct trackerhttp_server *srv, struct sockaddr_storage *out);

/* Number of open connections. */
uint32_t trackerhttp_server_conns(const struct trackerhttp_server *srv);

/* Stops listening and closes every connection; the server frees itself once
 * all its handles are closed (let the loop run).  srv is invalid afterwards. */
void trackerhttp_server_close(struct trackerhttp_server *srv);

#endif
