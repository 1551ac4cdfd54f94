/* queue.h -- which torrents run under the active-download and active-seed limits; seeding limits; queue moves (pure). */
#ifndef PEER_QUEUE_H_
#define PEER_QUEUE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One torrent as the queue sees it.  The daemon builds these from its
 * torrents each time it re-decides (on add, remove, pause, resume, complete,
 * error, a seed limit reached, a queue move, a settings change). */
struct queue_entry {
  uint32_t id;            /* the caller's handle; also breaks ties in position */
  uint32_t position;      /* queue order: lower runs first (need not be dense) */
  bool wants_download;    /* not complete: has wanted pieces missing */
  bool wants_seed;        /* complete, and seeding is allowed (limits not reached) */
  bool paused;            /* stopped by the user */
  bool error;             /* stopped by an error (disk full, missing files, ...) */
};

enum queue_state {
  QUEUE_STOPPED = 0,      /* paused, errored, or nothing left to do */
  QUEUE_DOWNLOAD,         /* runs: downloading */
  QUEUE_SEED,             /* runs: seeding */
  QUEUE_WAIT_DOWNLOAD,    /* would download; every download slot is taken */
  QUEUE_WAIT_SEED,        /* would seed; every seed slot is taken */
};

/* Decides which torrents run.  Entries are taken in queue order (position,
 * then id, then array index); paused and errored entries never run; the
 * first max_downloads entries that want to download download, the first
 * max_seeds that want to seed seed, the rest wait.  An entry that wants
 * both is taken as a download.  The decision depends only on the input, not
 * on what ran before: a torrent moved up the queue (or resumed) ahead of a
 * running one takes its slot, and a download that completes frees its slot
 * for the next one waiting.  out[i] (an enum queue_state) is written for
 * each e[i].  Returns 0 or UV_ENOMEM (out untouched). */
int queue_select(const struct queue_entry *e, size_t n, uint32_t max_downloads,
                 uint32_t max_seeds, uint8_t *out);

/* Seeding limits: 0 = none for either. */
struct queue_seed_limits {
  double ratio;           /* stop when uploaded / base >= ratio */
  uint64_t idle_s;        /* stop after this long without uploading */
};

/* True when seeding should stop: a limit is set and reached.  A NaN or
 * negative ratio counts as 0. */
bool queue_seed_done(double ratio, uint64_t idle_s, const struct queue_seed_limits *lim);

/* The limits for one torrent from its own settings (as kept in its resume
 * record: ratio in thousandths, idle in seconds; -1 = use the global value,
 * 0 = none, > 0 = this value; anything below -1 counts as -1). */
struct queue_seed_limits queue_seed_limits_pick(int64_t ratio_milli, int64_t idle_s,
                                                const struct queue_seed_limits *global);

/* Share ratio: uploaded / downloaded, or uploaded / size when nothing was
 * downloaded (data that was already there); 0 when both are 0. */
double queue_ratio(uint64_t uploaded, uint64_t downloaded, uint64_t size);

enum queue_move_dir { QUEUE_MOVE_TOP, QUEUE_MOVE_UP, QUEUE_MOVE_DOWN, QUEUE_MOVE_BOTTOM };

/* Moves the entry whose id is `id` to the top, one place up, one place
 * down, or to the bottom of the queue order (as queue_select sees it), then
 * renumbers every position to 0..n-1 in the new order.  Moving the first
 * up or the last down changes nothing but the renumbering.  Returns 0,
 * SHOAL_ENOTFOUND (no such id; e untouched) or UV_ENOMEM (e untouched). */
int queue_move(struct queue_entry *e, size_t n, uint32_t id, enum queue_move_dir dir);

/* Renumbers positions to 0..n-1 keeping the queue order.  0 or UV_ENOMEM. */
int queue_normalize(struct queue_entry *e, size_t n);

#endif
