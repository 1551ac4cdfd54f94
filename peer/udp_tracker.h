/* udp_tracker.h -- UDP tracker client (BEP 15): packet encoding and reply parsing (pure), connection-id cache (pure), transport on the loop. */
#ifndef PEER_UDP_TRACKER_H_
#define PEER_UDP_TRACKER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define UDP_TRACKER_PROTOCOL_ID 0x41727101980ULL   /* connect requests carry it as connection id */
#define UDP_TRACKER_CONNECT_LEN 16                 /* connect request and reply */
#define UDP_TRACKER_ANNOUNCE_LEN 98                /* announce request (no BEP 41 options) */
#define UDP_TRACKER_ANNOUNCE_HDR 20                /* announce reply before its peers */
#define UDP_TRACKER_HDR 8                          /* action + transaction id: every reply */
#define UDP_TRACKER_SCRAPE_MAX 74                  /* infohashes in one scrape (BEP 15) */
#define UDP_TRACKER_SCRAPE_ENTRY 12                /* seeders, completed, leechers */
#define UDP_TRACKER_CONN_TTL_MS 60000              /* a connection id is used this long */
#define UDP_TRACKER_MAX_DATAGRAM 16384             /* longer replies are dropped */
#define UDP_TRACKER_MAX_HOST 255                   /* host part of a udp:// URL, without NUL */
#define UDP_TRACKER_CACHE_SIZE 64                  /* trackers whose connection id is kept */

enum udp_tracker_action {
  UDP_TRACKER_CONNECT = 0,
  UDP_TRACKER_ANNOUNCE = 1,
  UDP_TRACKER_SCRAPE = 2,
  UDP_TRACKER_ERROR = 3,
};

/* Event numbers on the wire (BEP 15: not the order of the HTTP names). */
enum udp_tracker_event {
  UDP_TRACKER_EVENT_NONE = 0,
  UDP_TRACKER_EVENT_COMPLETED = 1,
  UDP_TRACKER_EVENT_STARTED = 2,
  UDP_TRACKER_EVENT_STOPPED = 3,
};

/* ---- Pure part: URLs, packets, replies. ---- */

/* Splits "udp://HOST:PORT[/path][?query][#fragment]" (scheme
 * case-insensitive; HOST a name, an IPv4 address or "[IPv6]"; PORT 1..65535,
 * required).  Writes the host (brackets removed, NUL-terminated) into
 * host[hostcap] and the port.  0, or UV_EINVAL (not udp://, no or bad port,
 * empty or over-long host, characters that belong in no host name, user
 * info). */
int udp_tracker_parse_url(const char *url, char *host, size_t hostcap, uint16_t *port);

/* Writes a connect request (16 bytes). */
void udp_tracker_put_connect(uint8_t out[UDP_TRACKER_CONNECT_LEN], uint32_t tid);

struct udp_tracker_announce_args {
  uint8_t infohash[20];
  uint8_t peer_id[20];
  uint64_t downloaded, left, uploaded;
  enum udp_tracker_event event;
  uint32_t key;
  int32_t num_want;          /* -1: the tracker's default */
  uint16_t port;
};

/* Writes an announce request (98 bytes; the IP address field is 0). */
void udp_tracker_put_announce(uint8_t out[UDP_TRACKER_ANNOUNCE_LEN], uint64_t conn_id, uint32_t tid,
                              const struct udp_tracker_announce_args *a);

/* Writes a scrape request for n infohashes (1..UDP_TRACKER_SCRAPE_MAX) into
 * out[cap]: returns its length (16 + 20 n), or UV_EINVAL (n out of range)
 * or UV_ENOBUFS (cap too small); nothing is written on error. */
int udp_tracker_put_scrape(uint8_t *out, size_t cap, uint64_t conn_id, uint32_t tid,
                           const uint8_t (*hashes)[20], size_t n);

/* A parsed reply.  Pointers borrow from the packet. */
struct udp_tracker_reply {
  uint32_t action;               /* the expected action, or UDP_TRACKER_ERROR */
  uint32_t tid;
  uint64_t conn_id;              /* connect */
  uint32_t interval, leechers, seeders;   /* announce */
  const uint8_t *peers;          /* announce: npeers compact entries of entry_len bytes */
  size_t npeers;
  size_t entry_len;              /* 6 (IPv4 tracker address) or 18 (IPv6) */
  const uint8_t *scrape;         /* scrape: nscrape entries of 12 bytes */
  size_t nscrape;
  const uint8_t *message;        /* error: the raw message (not NUL-terminated) */
  size_t message_len;
};

/* udp_tracker_parse_reply's result for a packet of another transaction. */
#define UDP_TRACKER_OTHER_TID 1

/* Parses a reply to a request of action `expect` (connect, announce or
 * scrape) sent with transaction id `tid` to a tracker at an address of
 * `family` (AF_INET: 6-byte peers, AF_INET6: 18-byte peers).  Returns
 * 0 with *out filled (out->action is `expect`, or UDP_TRACKER_ERROR with the
 * message), UDP_TRACKER_OTHER_TID when the transaction id differs (the
 * packet is not for this request: ignore it), or SHOAL_EPROTO with a
 * one-line reason in err: shorter than 8 bytes, shorter than its action
 * needs (connect 16, announce 20), an action that is neither `expect` nor
 * error, a peer part that is not a whole number of entries, a scrape part
 * that is not a whole number of 12-byte entries.  UV_EINVAL for a bad
 * family or expect.  The peer count is bounded only by the packet length:
 * the caller caps what it keeps. */
int udp_tracker_parse_reply(const uint8_t *p, size_t len, uint32_t expect, uint32_t tid, int family,
                            struct udp_tracker_reply *out, char *err, size_t errlen);

/* The i-th entry (i < r->nscrape) of a parsed scrape reply. */
void udp_tracker_scrape_entry(const struct udp_tracker_reply *r, size_t i, uint32_t *seeders,
                              uint32_t *completed, uint32_t *leechers);

/* Connection ids by tracker address (IP and port), used for
 * UDP_TRACKER_CONN_TTL_MS after they arrived; when full the oldest entry
 * makes room.  Times are milliseconds on any monotonic clock. */
struct udp_tracker_cache {
  struct {
    struct sockaddr_storage addr;
    uint64_t conn_id;
    uint64_t got_ms;
    bool used;
  } e[UDP_TRACKER_CACHE_SIZE];
};
void udp_tracker_cache_init(struct udp_tracker_cache *c);
/* 0 and *conn_id when a fresh id for addr is known (an expired one is
 * dropped), else -1. */
int udp_tracker_cache_get(struct udp_tracker_cache *c, const struct sockaddr *addr, uint64_t now_ms,
                          uint64_t *conn_id);
void udp_tracker_cache_put(struct udp_tracker_cache *c, const struct sockaddr *addr, uint64_t conn_id,
                           uint64_t now_ms);
void udp_tracker_cache_drop(struct udp_tracker_cache *c, const struct sockaddr *addr);

/* True when a and b have the same family, IP and port. */
bool udp_tracker_same_addr(const struct sockaddr *a, const struct sockaddr *b);

/* ---- The transport on the loop. ---- */

/* One client serves any number of requests: one uv_udp_t per address family
 * (bound to the wildcard address, opened at the first request of that
 * family), one timer, the connection-id cache.  Replies are matched to
 * requests by transaction id and must come from the address the request
 * went to. */
struct udp_tracker_client;
struct udp_tracker_req;

/* Outcome of one request.  status 0: a reply arrived, r is valid during the
 * call (r->action UDP_TRACKER_ANNOUNCE, or UDP_TRACKER_ERROR with the
 * tracker's message).  Otherwise r is NULL and status is UV_EINVAL (bad
 * URL), a getaddrinfo error (UV_EAI_NONAME ...), UV_ETIMEDOUT (no answer
 * after every retransmission), SHOAL_EPROTO (malformed reply: errmsg says
 * why), UV_EAFNOSUPPORT, or a socket error.  errmsg is one line for people
 * ("" on success), valid during the call.  The request is freed when the
 * callback returns: do not cancel it. */
typedef void (*udp_tracker_done_cb)(void *ctx, int status, const struct udp_tracker_reply *r,
                                    const char *errmsg);

/* Creates a client on loop (calls sodium_init for transaction ids).  0 and
 * *out, or UV_ENOMEM / UV_EIO. */
int udp_tracker_client_new(uv_loop_t *loop, struct udp_tracker_client **out);

/* Cancels every request (no callback runs), closes the handles; the memory
 * goes back at a later loop iteration.  c is invalid afterwards. */
void udp_tracker_client_close(struct udp_tracker_client *c);

/* Announces to url (udp://host:port/...): resolves the host
 * (uv_getaddrinfo, IPv4 and IPv6; the first address returned is used, the
 * others in turn after each time-out), obtains a connection id (or reuses
 * a fresh one), sends the announce.  Without an answer it retransmits after
 * base_ms, 2 base_ms, 4 base_ms ... (BEP 15's 15 * 2^n s when base_ms is
 * 15000) and gives up with UV_ETIMEDOUT after max_timeouts time-outs
 * (1..8); a time-out of an announce also forgets the connection id, so the
 * retry starts with a connect.  On success returns 0 and *req_out (may be
 * NULL), and cb will run exactly once from the loop (never inside this
 * call) unless the request is cancelled first.  Errors (cb never called):
 * UV_EINVAL (bad URL or arguments), UV_ENOMEM, UV_ECANCELED (client
 * closing). */
int udp_tracker_announce(struct udp_tracker_client *c, const char *url,
                         const struct udp_tracker_announce_args *args, unsigned base_ms,
                         unsigned max_timeouts, udp_tracker_done_cb cb, void *ctx,
                         struct udp_tracker_req **req_out);

/* Cancels a pending request: its callback is never called. */
void udp_tracker_cancel(struct udp_tracker_req *req);

/* Requests started and neither finished nor cancelled. */
size_t udp_tracker_pending(const struct udp_tracker_client *c);

#endif
