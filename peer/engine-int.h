/* engine-int.h -- internals shared by session.c, torrent.c and peer.c. */
#ifndef PEER_ENGINE_INT_H_
#define PEER_ENGINE_INT_H_

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/bitfield.h"
#include "common/buf.h"
#include "common/manifest.h"
#include "common/rate.h"
#include "common/ratelimit.h"
#include "common/util.h"
#include "peer/addrbook.h"
#include "peer/ext.h"
#include "peer/picker.h"
#include "peer/session.h"
#include "peer/wire.h"

/* Limits a remote peer cannot push past. */
#define PEER_MAX_INCOMING_REQUESTS 256u   /* their queued requests; more closes the connection */
#define PEER_MAX_READS_IN_FLIGHT 8u       /* disk reads for one peer at once ... */
#define PEER_SPAN_MAX (256u * 1024)       /* ... each covering contiguous requests up to this */
#define PEER_MAX_WRITE_QUEUE (1u << 20)   /* bytes queued to one socket before we stop reading disk */
#define PEER_MIN_PIPELINE 8u              /* requests kept outstanding to one peer ... */
#define PEER_MAX_PIPELINE 128u            /* ... growing with its rate up to this */
#define PEER_MAX_UNREQUESTED 8u           /* unrequested blocks before we drop the peer */
#define PEER_CANCEL_MEMORY 256u           /* recent CANCELs remembered: their blocks may still come */
#define PEER_MAX_STRIKES 3u               /* pieces that failed their hash with its data */
#define PEER_CONNECT_TIMEOUT_MS 10000u
#define PEER_HANDSHAKE_TIMEOUT_MS 20000u
#define PEER_IDLE_TIMEOUT_MS 120000u      /* nothing received at all */
#define PEER_KEEPALIVE_MS 60000u
#define PEER_SNUB_MS 20000u               /* requests outstanding, no block this long: re-request elsewhere */
#define PEER_RBUF_INITIAL (64u * 1024)
#define TORRENT_MAX_HALF_OPEN 8u
#define TORRENT_NO_FDS_FAIL_MS 30000u     /* no descriptor to dial with, no peer: give up */
#define TORRENT_TICK_MS 1000u
#define TORRENT_ACTIVE_BYTES (16u << 20)  /* memory for partly downloaded pieces */
#define SESSION_MAX_PENDING 64u           /* incoming connections before their handshake */
#define PEER_MAX_ALLOWED_FAST 32u         /* pieces a peer lets us fetch while it chokes us */
#define PEER_MAX_MD_INFLIGHT 2u           /* metadata pieces asked of one peer at once */
#define PEX_INTERVAL_MS 60000u            /* BEP 11: at most one PEX message a minute */
#define PEX_MIN_GAP_IN_MS 30000u          /* PEX from a peer faster than this is ignored */
#define PEX_MAX_ADD 50u                   /* addresses taken from one PEX message */
#define TORRENT_MAX_SUSPECTS 8u           /* failed pieces whose block senders are remembered */
#define TORRENT_MAX_BANNED 256u           /* banned peer ids per torrent */
#define SESSION_RATE_RETRY_MS 20u         /* a peer held back by a rate limit is retried this often */

/* A piece that failed its hash with blocks from several peers: each block's
 * hash and sender, until a good copy shows which blocks were bad. */
struct suspect {
  uint32_t piece;
  uint32_t nblocks;                 /* 0: slot free */
  uint32_t gen;                     /* matches the job hashing the bad copy */
  bool bad_ready;                   /* hash[] is filled in */
  uint8_t (*hash)[20];              /* the bad copy's block hashes */
  uint8_t (*good)[20];              /* a good copy's, when it was hashed first */
  uint8_t (*sender)[20];            /* peer ids; all zero when the sender had left */
};

enum peer_state { PEER_CONNECTING, PEER_HANDSHAKE, PEER_ACTIVE, PEER_CLOSING };

struct peer_req {
  uint32_t piece, begin, length;
  uint64_t sent_ms;
};

struct peer {
  struct peer *next, *prev;
  struct session *session;
  struct torrent *torrent;          /* NULL until an incoming handshake names one */
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  struct sockaddr_storage addr;
  struct addr_entry *entry;         /* outgoing: the address entry dialled */
  enum peer_state state;
  bool outgoing;
  bool tcp_open;                    /* tcp handle initialised (must be closed) */
  bool got_bitfield_slot;           /* first message after the handshake not yet seen */
  bool registered;                  /* counted in the picker, holds a picker id */
  bool id_assigned;                 /* the handshake went through at some point */
  uint8_t peer_id[20];
  char name[64];                    /* "1.2.3.4:5678" for logs */
  picker_peer_t id;

  struct buf rbuf;

  struct bitfield have;
  uint32_t wanted;                  /* pieces it has that we lack */
  bool seed;
  bool am_choking, am_interested, peer_choking, peer_interested;
  bool optimistic, snubbed;

  struct peer_req *reqs;            /* our requests to it, in order sent */
  unsigned nreqs, target_reqs;
  struct peer_req *cancelled;       /* ring of requests we cancelled lately */
  unsigned ncancelled_next;
  struct peer_req *inq;             /* its requests to us, FIFO ring */
  unsigned inq_head, inq_len;
  unsigned reads_in_flight;
  size_t write_queued;

  struct rate down, up;             /* payload bytes */
  uint64_t started_ms, last_recv_ms, last_send_ms, last_block_ms;
  unsigned unrequested, strikes;

  bool fast, extended;              /* both sides advertised BEP 6 / BEP 10 */
  struct ext_handshake ext;         /* the peer's BEP 10 handshake (defaults until it comes) */
  uint32_t allowed_in[PEER_MAX_ALLOWED_FAST]; /* it lets us fetch these while choking us */
  unsigned nallowed_in;
  uint32_t allowed_out[EXT_ALLOWED_FAST_K];    /* we serve these while choking it */
  unsigned nallowed_out;
  struct bitfield fast_pick;        /* scratch: its pieces we may fetch while choked */
  struct buf md_bits;               /* metadata phase: its bitfield, as far as known */
  bool md_have_all;
  unsigned md_inflight;             /* metadata pieces asked of it */
  uint64_t pex_in_ms;               /* last PEX message taken from it */
  bool pex_sent;                    /* it has had our first PEX message */
};

struct torrent {
  struct torrent *next;
  struct session *session;
  struct manifest *m;
  char *dir;
  struct storage *storage;
  struct picker *picker;
  struct announce *announce;
  struct bitfield have;
  enum torrent_state state;
  struct torrent_events ev;
  void *ev_ctx;
  bool skip_check;
  bool has_metadata;                /* false while a magnet's info dict is fetched */
  struct ext_md_asm md;             /* that info dict, piece by piece */
  uint8_t *file_prio;               /* per file, when set (0 skip, 1 normal, 2 high) */
  struct sockaddr_storage *pex_prev; /* addresses in the last PEX round */
  unsigned npex_prev;

  struct peer *peers;               /* handshaken and connecting outgoing */
  unsigned npeers, half_open;
  uint8_t *id_used;                 /* 65536-bit map of picker peer ids */
  uint16_t next_id;

  struct addrbook book;             /* known addresses */
  unsigned addr_cursor;
  bool rechoke;                     /* an unchoked peer left: rerun the choker */
  bool fds_used;                    /* a peer became active since storage_release_fds */
  uint64_t no_fds_since;            /* dialling fails for lack of descriptors since then */
  struct suspect suspects[TORRENT_MAX_SUSPECTS];
  unsigned suspect_next;
  uint32_t suspect_gen;
  uint8_t (*banned)[20];
  unsigned nbanned;
  unsigned jobs_in_flight;          /* block-hashing jobs on the threadpool */

  uint8_t **pbuf;                   /* partly received pieces, by index */
  unsigned writes_in_flight;
  unsigned checks_done;

  uv_timer_t tick;
  unsigned ticks;
  struct rate down, up;             /* payload bytes, this session */
  uint64_t wasted;

  bool announced_complete;
  unsigned max_peers;
  bool sequential;
  struct ratelimit rl_down, rl_up;  /* payload limits of this torrent */
  bool rl_wait;                     /* a peer was held back by a limit: retry soon */
  uint32_t *file_missing;           /* per file: wanted pieces touching it not yet verified */
  struct bitfield resume_have, recheck; /* torrent_opts copies, used by the first check */
  bool use_resume;
  void (*stopped_cb)(void *ctx);
  void *stopped_ctx;
  session_removed_cb removed_cb;     /* session_remove's caller */
  void *removed_ctx;
  unsigned stop_pending;            /* things still to finish before stopped_cb */
};

struct session {
  uv_loop_t *loop;
  struct session_config cfg;
  uv_tcp_t listener[2];             /* IPv4 and IPv6 (or the one --bind address) */
  unsigned nlisteners;
  uint16_t port;
  uint8_t peer_id[20];
  struct http_client *http;
  struct torrent *torrents;
  struct peer *pending;             /* incoming, before the handshake */
  unsigned npending;
  uv_timer_t pending_tick;          /* times out pending handshakes */
  struct ratelimit rl_down, rl_up;  /* payload limits over every torrent */
  uv_timer_t rl_timer;              /* retries peers held back by a limit */
  unsigned npeers;                  /* peers linked to torrents, all torrents */
  unsigned removing;                /* torrents being stopped by session_remove */
  uint64_t removed_down, removed_up;  /* payload totals of removed torrents */
  bool closing;
  unsigned close_pending, stopping_torrents;
  void (*closed_cb)(void *ctx);
  void *closed_ctx;
};

/* peer.c */
struct peer *peer__new(struct session *s, struct torrent *t, const struct sockaddr *sa, bool outgoing);
int peer__connect(struct peer *p);              /* outgoing: dial; the handshake follows */
int peer__accept(struct peer *p, uv_stream_t *server);
void peer__close(struct peer *p, const char *why); /* idempotent; frees when the last user is gone */
void peer__send(struct peer *p, const void *data, size_t len);
/* A write whose buffer the caller fills: new gives the request and its data
 * area (len bytes); send queues it (and frees it when written or failed). */
void *peer__wreq_new(size_t len, uint8_t **data);
void peer__wreq_send(struct peer *p, void *wreq);
/* Writes bufs[0..n) in one request; `owned` (which the buffers point into)
 * is freed when the write is done or fails. */
void peer__send_bufs(struct peer *p, void *owned, const uv_buf_t *bufs, unsigned n);
void peer__maybe_free(struct peer *p);           /* after a disk read on a closing peer returned */
void peer__send_handshake(struct peer *p);
void peer__tick(struct peer *p, uint64_t now);
uint64_t engine__now(const struct session *s);

/* torrent.c: called by peer.c */
int torrent__attach_incoming(struct session *s, struct peer *p, const struct wire_handshake *h);
int torrent__handshake_done(struct torrent *t, struct peer *p, const struct wire_handshake *h);
int torrent__on_message(struct torrent *t, struct peer *p, const struct wire_msg *m);
void torrent__peer_gone(struct torrent *t, struct peer *p);
void torrent__serve(struct torrent *t, struct peer *p);
int torrent__new(struct session *s, struct manifest *m, const struct torrent_opts *opts,
                 const struct torrent_events *ev, void *ctx, struct torrent **out);
void torrent__stop(struct torrent *t, void (*cb)(void *ctx), void *ctx);  /* then torrent__free */
void torrent__free(struct torrent *t);
/* A stopped torrent's manifest, handed over before torrent__free (NULL
 * when the metadata never came: the stub is freed with the torrent). */
struct manifest *torrent__take_manifest(struct torrent *t);

/* torrent.c: called by exchange.c */
/* Every piece of a magnet's info dict is in t->md: it is hashed against the
 * infohash and parsed on the threadpool, then the torrent goes on (or the
 * fetch starts over on a mismatch, or the torrent fails on an invalid dict). */
void torrent__verify_metadata(struct torrent *t);
uint32_t torrent__num_pieces(const struct torrent *t);  /* WIRE_PIECES_UNKNOWN before metadata */

/* exchange.c: BEP 10 extension messages -- handshake, ut_metadata (BEP 9), ut_pex (BEP 11) */
void exchange__send_handshake(struct torrent *t, struct peer *p);
int exchange__on_extended(struct torrent *t, struct peer *p, const struct wire_msg *m);
void exchange__tick(struct torrent *t, uint64_t now);

/* session.c */
void session__peer_unpend(struct session *s, struct peer *p);
void session__rate_wait(struct session *s);     /* a torrent set rl_wait: arm the retry timer */
bool session__full(const struct session *s);    /* the global connection cap is reached */

/* torrent.c: called by session.c */
void torrent__rate_retry(struct torrent *t);    /* the retry timer: run held-back peers again */

#endif
