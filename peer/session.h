/* session.h -- a shoal node: the loop, the listening socket, the torrents, the peer id. */
#ifndef PEER_SESSION_H_
#define PEER_SESSION_H_

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/bitfield.h"
#include "common/manifest.h"

#define SESSION_DEFAULT_PORT 6881          /* first port tried when none is given */
#define SESSION_PORT_TRIES 10              /* 6881..6890, then any free port */

struct session;
struct torrent;

struct session_config {
  const char *bind_addr;        /* numeric address to listen on; NULL: 0.0.0.0 */
  uint16_t port;                /* 0: SESSION_DEFAULT_PORT or the next free one */
  unsigned max_peers;           /* per torrent (default 50) */
  unsigned upload_slots;        /* per torrent, optimistic included (default 4) */
  unsigned announce_floor_s;    /* shortest announce interval honoured (default 30) */
  unsigned max_peers_global;    /* connections over all torrents, pending included (0: no cap) */
};

/* Heap-allocated; the loop is borrowed. 0 or a negative error. */
int session_new(uv_loop_t *loop, const struct session_config *cfg, struct session **out);
/* Binds and listens (SESSION_DEFAULT_PORT and up when cfg.port is 0). */
int session_listen(struct session *s);
uint16_t session_port(const struct session *s);
const uint8_t *session_peer_id(const struct session *s);
/* Stops every torrent (tracker `stopped` announces get a few seconds),
 * closes every handle; cb runs when the session is freed.  No other
 * session or torrent call is allowed after this. */
void session_close(struct session *s, void (*cb)(void *ctx), void *ctx);

/* Stops one torrent as session_close would (peers closed, tracker
 * `stopped` sent, writes finished, files closed), takes it out of the
 * session and frees it; then cb(ctx, m) (cb may be NULL), where m is the
 * torrent's manifest handed back to the caller (manifest_free it, or add
 * the torrent again with it), or NULL for a magnet whose metadata never
 * came.  No event of t fires after this returns and t must not be used
 * again.  If the session is closed meanwhile, its close waits for this. */
typedef void (*session_removed_cb)(void *ctx, struct manifest *m);
void session_remove(struct session *s, struct torrent *t, session_removed_cb cb, void *ctx);

/* Payload rate limits over every torrent, bytes/s (0 = unlimited): token
 * buckets on the loop (common/ratelimit), smooth within a second.  The
 * download limit paces the requests we send; the upload limit paces the
 * blocks we serve.  Per-torrent limits apply under these. */
void session_set_rate_limits(struct session *s, uint64_t down, uint64_t up);
void session_set_max_peers_global(struct session *s, unsigned n);

struct session_stats {
  unsigned torrents, peers, pending;
  uint64_t downloaded, uploaded;    /* payload bytes over all torrents, removed ones included */
  uint64_t down_rate, up_rate;      /* sum of the torrents' smoothed rates */
};
void session_get_stats(const struct session *s, struct session_stats *st);

/* What a torrent reports to the program that runs it. */
struct torrent_events {
  void (*metadata)(struct torrent *t, void *ctx);           /* magnet: the info dict arrived and matched */
  void (*checked)(struct torrent *t, void *ctx);            /* data checked, transfer starts */
  void (*complete)(struct torrent *t, void *ctx);           /* every wanted piece verified and written */
  void (*error)(struct torrent *t, int err, const char *msg, void *ctx); /* torrent stopped on an error */
  void (*tracker)(struct torrent *t, const char *url, const char *msg, void *ctx); /* tracker said something */
  void (*file_done)(struct torrent *t, uint32_t file, void *ctx);  /* every piece of a wanted file is verified */
};

struct torrent_opts {
  const char *download_dir;     /* data lives in <dir>/<name> */
  bool skip_check;              /* data just hashed by `create`: trust it */
  /* Resume: pieces a saved record vouches for are taken as held without
   * reading them; of the others only those in `recheck` are hashed from
   * disk (NULL: none), the rest are missing.  Both nbits == num_pieces.
   * Ignored for magnets until the metadata comes (then everything is
   * checked) and when skip_check is set. */
  const struct bitfield *resume_have;
  const struct bitfield *recheck;
  bool sequential;              /* see torrent_set_sequential */
};

/* Adds a torrent; the session takes ownership of m (also on failure). */
int session_add(struct session *s, struct manifest *m, const struct torrent_opts *opts,
                const struct torrent_events *ev, void *ctx, struct torrent **out);

/* Adds a torrent known only by its infohash (a magnet link): its info dict
 * is fetched from peers (BEP 9) and checked against the infohash, then the
 * torrent goes on as if added with session_add.  name may be NULL; trackers
 * (each its own tier) are copied. */
int session_add_magnet(struct session *s, const uint8_t infohash[20], const char *name,
                       const char *const *trackers, size_t ntrackers, const struct torrent_opts *opts,
                       const struct torrent_events *ev, void *ctx, struct torrent **out);

/* Priorities of files (by index in the manifest): 0 skip, 1 normal, 2 high.
 * A piece is fetched when any file it touches is wanted.  Callable once the
 * metadata is known (from the `metadata` event on for magnets). */
int torrent_set_file_priorities(struct torrent *t, const uint8_t *prio, uint32_t n);

enum torrent_state {
  TORRENT_METADATA,             /* magnet: fetching the info dict from peers */
  TORRENT_CHECKING,
  TORRENT_DOWNLOADING,
  TORRENT_SEEDING,
  TORRENT_STOPPING,
  TORRENT_ERROR,
};

struct torrent_stats {
  enum torrent_state state;
  uint64_t total_bytes;         /* wanted bytes */
  uint64_t have_bytes;          /* verified bytes held */
  uint32_t have_pieces, num_pieces, checked_pieces;
  uint64_t downloaded, uploaded, wasted;  /* payload bytes this session */
  uint64_t down_rate, up_rate;  /* bytes/s, smoothed */
  unsigned peers, seeds;        /* connected */
  unsigned known_addrs;
  uint32_t metadata_have, metadata_pieces;  /* magnet: info dict pieces fetched */
};
void torrent_get_stats(const struct torrent *t, struct torrent_stats *st);
const struct manifest *torrent_manifest(const struct torrent *t);
/* Verified pieces (picker view: pieces spanning a skipped file count once
 * verified) copied into out, which is initialised here (bitfield_free it).
 * UV_EAGAIN before the metadata, UV_ENOMEM. */
int torrent_copy_have(const struct torrent *t, struct bitfield *out);
/* Per-file priorities as set (NULL: all normal); num_files entries. */
const uint8_t *torrent_file_priorities(const struct torrent *t);
/* Payload limits of this torrent, bytes/s (0 = unlimited), under the session's. */
void torrent_set_rate_limits(struct torrent *t, uint64_t down, uint64_t up);
/* Connections for this torrent (default session_config.max_peers). */
void torrent_set_max_peers(struct torrent *t, unsigned n);
/* Sequential download (new pieces in index order, for previewing media). */
void torrent_set_sequential(struct torrent *t, bool on);
/* The data folder given at add. */
const char *torrent_download_dir(const struct torrent *t);

/* One connected peer, for a listing. */
struct torrent_peer_info {
  char address[64];             /* "1.2.3.4:5678" / "[::1]:5678" */
  char client[64];              /* BEP 10 "v", printable ASCII only; "" unknown */
  bool outgoing, seed, am_choking, am_interested, peer_choking, peer_interested;
  uint32_t have_pieces;
  uint64_t downloaded, uploaded, down_rate, up_rate;
};
/* Fills up to max entries (handshaken peers); returns how many there are in all. */
unsigned torrent_get_peers(const struct torrent *t, struct torrent_peer_info *out, unsigned max);

/* Adds a peer address to connect to (from --peer, a tracker, ...). */
void torrent_add_peer(struct torrent *t, const struct sockaddr *sa, bool manual);
/* Starts checking the data, then transferring. */
int torrent_start(struct torrent *t);

#endif
