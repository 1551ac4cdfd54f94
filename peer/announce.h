/* announce.h -- tracker client for one torrent: HTTP(S) and UDP (BEP 15) trackers, tiers (BEP 12), schedule, replies (BEP 3, 7, 23). */
#ifndef PEER_ANNOUNCE_H_
#define PEER_ANNOUNCE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "common/manifest.h"
#include "peer/http_client.h"

/* Limits and defaults. */
#define ANNOUNCE_MAX_PEERS 500            /* peers taken from one reply (peers + peers6) */
#define ANNOUNCE_MAX_REPLY (1u << 20)     /* reply body cap (http layer and parser) */
#define ANNOUNCE_MAX_TOKENS 100000u       /* bencode tokens in a reply */
#define ANNOUNCE_MAX_DEPTH 8u             /* bencode nesting in a reply */
#define ANNOUNCE_MAX_TEXT 256             /* failure reason / warning kept, with NUL */
#define ANNOUNCE_MAX_TRACKERID 128        /* longer tracker ids are ignored */
#define ANNOUNCE_MAX_URLS 128             /* tracker URLs kept over all tiers */
#define ANNOUNCE_MAX_URL_LEN 2048         /* longer tracker URLs are dropped */
#define ANNOUNCE_DEFAULT_NUMWANT 50
#define ANNOUNCE_DEFAULT_INTERVAL_S 1800  /* when the reply has no interval */
#define ANNOUNCE_MAX_INTERVAL_S (6 * 3600) /* longer intervals are shortened to this */
#define ANNOUNCE_FLOOR_S 30               /* default min_interval_floor_s */
#define ANNOUNCE_BACKOFF_BASE_S 15        /* first retry after a failed round */
#define ANNOUNCE_BACKOFF_MAX_S 1800       /* back-off cap (jitter comes on top) */
#define ANNOUNCE_TIMEOUT_MS 30000         /* one announce request */
#define ANNOUNCE_STOP_TIMEOUT_MS 5000     /* the event=stopped request */
#define ANNOUNCE_UDP_BASE_S 15            /* UDP retransmission after 15 * 2^n s (BEP 15) ... */
#define ANNOUNCE_UDP_TIMEOUTS 3           /* ... n = 0, 1, 2: a silent UDP tracker costs 105 s */

enum announce_event {
  ANNOUNCE_EVENT_NONE = 0,
  ANNOUNCE_EVENT_STARTED,
  ANNOUNCE_EVENT_COMPLETED,
  ANNOUNCE_EVENT_STOPPED,
};

/* "started", "completed", "stopped", or "" for ANNOUNCE_EVENT_NONE. */
const char *announce_event_name(enum announce_event ev);

struct announce_params {
  uint8_t infohash[20];
  uint8_t peer_id[20];
  uint16_t port;
  uint32_t numwant;                 /* 0: ANNOUNCE_DEFAULT_NUMWANT; capped at ANNOUNCE_MAX_PEERS */
  unsigned min_interval_floor_s;    /* 0: ANNOUNCE_FLOOR_S; tests may lower it (>= 1); the
                                       UDP retransmission base is the smaller of it and
                                       ANNOUNCE_UDP_BASE_S */
};

/* ---- Pure part: request URL, reply parsing, schedule, tier order. ---- */

/* Appends to out the announce URL: base_url (any "#fragment" dropped), then
 * '?' -- or '&' when base_url already has a query not ending in '?' or '&'
 * -- then info_hash, peer_id (percent-encoded), port, uploaded, downloaded,
 * left, compact=1, no_peer_id=1, numwant (0 for ANNOUNCE_EVENT_STOPPED),
 * key (when non-NULL and non-empty), event (unless NONE) and trackerid
 * (when trackerid_len > 0; percent-encoded).  Returns 0, UV_EINVAL (empty
 * base URL), or the buf error (UV_E2BIG past out's max, UV_ENOMEM); on error
 * out is left as it was. */
int announce_build_url(struct buf *out, const char *base_url, const struct announce_params *p,
                       enum announce_event ev, uint64_t up, uint64_t down, uint64_t left,
                       const uint8_t *trackerid, size_t trackerid_len, const char *key);

/* A parsed tracker reply. */
struct announce_reply {
  bool failed;                       /* "failure reason" present */
  char failure[ANNOUNCE_MAX_TEXT];   /* its text (control bytes and bad UTF-8 as '?') */
  char warning[ANNOUNCE_MAX_TEXT];   /* "warning message", "" when absent */
  int64_t interval;                  /* seconds, -1 when absent; never negative otherwise */
  int64_t min_interval;              /* seconds, -1 when absent */
  uint8_t tracker_id[ANNOUNCE_MAX_TRACKERID];
  size_t tracker_id_len;             /* 0 when absent, empty or too long */
  int64_t complete;                  /* seeders, -1 when absent or negative */
  int64_t incomplete;                /* leechers, -1 when absent or negative */
  struct sockaddr_storage *peers;    /* owned (announce_reply_free); NULL when npeers == 0 */
  size_t npeers;                     /* IPv4 then IPv6; at most ANNOUNCE_MAX_PEERS */
};

/* Parses a reply body.  Accepts a dict with "failure reason" (then failed is
 * set and peers are not read), or any of: "warning message", "interval",
 * "min interval", "tracker id", "complete", "incomplete", "peers" (compact
 * string of 6-byte entries, BEP 23, or a list of dicts with a numeric "ip"
 * and a "port" in 1..65535 -- bad entries are skipped), "peers6" (compact
 * string of 18-byte entries, BEP 7).  Compact entries with port 0 are
 * skipped.  Errors (nothing to free; a one-line reason in err):
 * SHOAL_ETOOBIG (len > ANNOUNCE_MAX_REPLY or too many tokens),
 * SHOAL_EBENCODE (not bencode), SHOAL_EPROTO (not a dict; a compact length
 * not a multiple of the entry size; a known key of the wrong type; a
 * negative interval), UV_ENOMEM.  On success the caller frees out with
 * announce_reply_free(). */
int announce_parse_reply(const uint8_t *body, size_t len, struct announce_reply *out,
                         char *err, size_t errlen);
void announce_reply_free(struct announce_reply *r);

/* Scheduling state, and the delay it implies. */
struct announce_sched {
  uint32_t interval_s;       /* last successful reply's interval; 0: none given */
  uint32_t min_interval_s;   /* last successful reply's min interval; 0: none */
  uint32_t floor_s;          /* lowest regular delay; 0: ANNOUNCE_FLOOR_S */
  uint32_t failures;         /* failed rounds in a row; 0 after a success */
};

/* Milliseconds until the next announce.  After a success (failures == 0):
 * interval (ANNOUNCE_DEFAULT_INTERVAL_S when 0, at most
 * ANNOUNCE_MAX_INTERVAL_S), raised to min_interval and to the floor.  After
 * n failed rounds: base * 2^(n-1) seconds, capped at ANNOUNCE_BACKOFF_MAX_S,
 * plus a jitter of jitter_rand modulo (a fifth of that + 1 ms); base is
 * ANNOUNCE_BACKOFF_BASE_S, or the floor when the floor is lower. */
uint64_t announce_next_delay_ms(const struct announce_sched *s, uint32_t jitter_rand);

/* Shortest gap between two announces asked for by announce_now(): the
 * larger of min_interval and the floor, in milliseconds. */
uint64_t announce_min_gap_ms(const struct announce_sched *s);

/* The torrent's trackers: tiers of URLs, each tier in the order to try. */
struct announce_tier {
  char **urls;
  uint32_t count;
};
struct announce_tiers {
  struct announce_tier *tier;
  uint32_t ntiers;
};
struct announce_pos {
  uint32_t tier;
  uint32_t url;
};

/* True for an http://, https:// or udp:// URL (scheme case-insensitive):
 * the ones this module announces to.  Others (wss://, ...) are kept but
 * skipped. */
bool announce_url_supported(const char *url);

/* Copies src (empty tiers, empty URLs and URLs longer than
 * ANNOUNCE_MAX_URL_LEN dropped, at most ANNOUNCE_MAX_URLS in all) and
 * shuffles each tier with rnd(rnd_ctx) (BEP 12).  0 or UV_ENOMEM (t then
 * owns nothing).  Free with announce_tiers_free(). */
int announce_tiers_init(struct announce_tiers *t, const struct manifest_tier *src, uint32_t nsrc,
                        uint32_t (*rnd)(void *), void *rnd_ctx);
void announce_tiers_free(struct announce_tiers *t);
/* First supported URL in tier order: 0 and *pos, or -1 when there is none. */
int announce_tiers_first(const struct announce_tiers *t, struct announce_pos *pos);
/* The supported URL after *pos (rest of its tier, then later tiers): 0 and
 * *pos updated, or -1 (pos unchanged) when the round has run out. */
int announce_tiers_next(const struct announce_tiers *t, struct announce_pos *pos);
/* Moves the URL at *pos to the front of its tier, shifting the ones before
 * it back by one (BEP 12), and points *pos at it (url 0). */
void announce_tiers_promote(struct announce_tiers *t, struct announce_pos *pos);
/* URL at pos (NULL when out of range). */
const char *announce_tiers_url(const struct announce_tiers *t, struct announce_pos pos);

/* ---- The tracker client on the loop. ---- */

struct announce_cbs {
  /* Transfer totals in bytes, asked for when each request is built.  Must
   * not call announce_* functions. */
  void (*stats)(void *ctx, uint64_t *up, uint64_t *down, uint64_t *left);
  /* Peers from a successful reply; the array is valid during the call. */
  void (*peers)(void *ctx, const struct sockaddr_storage *peers, size_t n);
  /* After every request: the tracker URL and a line for people ("ok",
   * "warning: ...", "failure: ..." or the transport error). */
  void (*status)(void *ctx, const char *url, const char *message);
};

struct announce;

/* Creates the client for one torrent.  tiers/ntiers are copied (BEP 12
 * shuffled); http must outlive it (free every announce before closing the
 * http client).  udp:// trackers are reached through one UDP client per
 * loop (one socket per address family), shared by every announce of that
 * loop: made at the first UDP request, closed when the last announce that
 * used it is freed.  A UDP tracker that does not answer is given up after
 * ANNOUNCE_UDP_TIMEOUTS retransmission time-outs, and the round moves on to
 * the next URL as for an HTTP failure; a UDP error packet counts as a
 * "failure: ..." reply.  Callbacks may be NULL.  peers and status may call
 * announce_now, announce_completed, announce_stop or announce_free.
 * Nothing is sent before announce_start().  0, or UV_EINVAL / UV_ENOMEM. */
int announce_new(uv_loop_t *loop, struct http_client *http,
                 const struct manifest_tier *tiers, uint32_t ntiers,
                 const struct announce_params *params, const struct announce_cbs *cbs,
                 void *ctx, struct announce **out);

/* Announces event=started now, then keeps announcing on schedule.  Once. */
void announce_start(struct announce *a);

/* The download has completed: sends event=completed now (after started, if
 * that is still pending).  No effect after announce_stop(). */
void announce_completed(struct announce *a);

/* Asks for an announce soon (e.g. more peers are wanted): now, or as soon as
 * the min interval since the last successful announce has passed.  Does not
 * shorten a failure back-off. */
void announce_now(struct announce *a);

/* Stops announcing: cancels what is pending (a `completed` not yet answered
 * is dropped) and sends event=stopped (numwant 0, ANNOUNCE_STOP_TIMEOUT_MS;
 * over UDP two tries within it) to the last tracker that answered, then calls
 * done(ctx) from the loop, whatever the result -- at the next loop iteration
 * when no tracker ever answered.  done may call announce_free().  Once; done
 * may be NULL. */
void announce_stop(struct announce *a, void (*done)(void *ctx), void *ctx);

/* Frees the client: cancels any request (no callback runs after this,
 * including a pending stop's done).  The memory goes back at a later loop
 * iteration (a uv handle is closed).  Allowed inside the client's callbacks. */
void announce_free(struct announce *a);

/* What the UI shows.  Strings stay valid until the next loop iteration. */
struct announce_info {
  const char *status;        /* last status line, "" before any reply */
  const char *status_url;    /* URL it is about, "" when none */
  const char *working_url;   /* last tracker that answered, NULL when none */
  int64_t seeders;           /* from the last successful reply, -1 unknown */
  int64_t leechers;
  uint32_t failures;         /* failed rounds in a row */
  uint64_t next_in_ms;       /* time to the next scheduled announce, 0 when none */
};
void announce_get_info(const struct announce *a, struct announce_info *out);

#endif
