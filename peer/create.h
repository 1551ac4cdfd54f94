/* create.h -- build a torrent from a file or folder: walk it, hash every piece in parallel on the libuv threadpool. */
#ifndef PEER_CREATE_H_
#define PEER_CREATE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/manifest.h"

#define CREATE_CREATED_BY "shoal/0.1"   /* what the CLI passes as created_by */
#define CREATE_READ_BUF (4u << 20)      /* bytes read at a time by one hashing work item */
#define CREATE_MAX_TIERS 32u            /* what manifest_parse keeps: more would not survive */
#define CREATE_MAX_TIER_URLS 32u
#define CREATE_MAX_URL_LEN 1024u

struct create_opts {
  const char *path;        /* a regular file (single-file torrent named by its
                              basename) or a folder (multi-file torrent named by
                              the folder's basename; files found recursively,
                              symlinks and special files skipped with a warning,
                              sorted bytewise by their '/'-joined relative path) */
  uint32_t piece_length;   /* 0: manifest_choose_piece_length(total); else a
                              power of two in [MANIFEST_MIN_PIECE_LEN, MANIFEST_MAX_PIECE_LEN] */
  const struct manifest_tier *tiers;  /* trackers, copied; NULL/0 for none.  URLs:
                                         1..CREATE_MAX_URL_LEN printable ASCII, no spaces */
  uint32_t num_tiers;
  bool private_;
  const char *comment;     /* NULL: none; must be valid UTF-8 */
  const char *created_by;  /* NULL: none */
  int64_t creation_date;   /* 0: none (Unix time otherwise) */
  unsigned threads;        /* hashing work items in flight; 0: the smaller of the
                              threadpool size (UV_THREADPOOL_SIZE, default 4) and the
                              number of cores */
};

/* Progress on the loop thread: `done` of `total` pieces hashed (called as
 * chunks of contiguous pieces complete, the last call with done == total). */
typedef void (*create_progress_cb)(void *ctx, uint32_t done, uint32_t total);

/* Completion on the loop thread.  status 0: m is the new torrent, owned by
 * the callee (manifest_free it), with info, info_len and infohash filled in:
 * manifest_encode(m, &buf) gives the .torrent.  status < 0: m is NULL and err
 * is one line naming the problem (valid only during the call), e.g.
 * "cannot read DIR/x: Permission denied" or "DIR: folder holds no files".
 * Codes: UV_E* from the filesystem (UV_EIO when a file changed size while
 * being hashed), UV_EINVAL for bad options or a path that is neither a
 * regular file nor a folder, SHOAL_EPATH for names a torrent cannot carry
 * (the rules of manifest_parse, so what is created can be read back),
 * SHOAL_ETOOBIG past the MANIFEST_MAX_* limits, SHOAL_EMANIFEST when there
 * is nothing to share (no files, or all of them empty). */
typedef void (*create_done_cb)(void *ctx, int status, struct manifest *m, const char *err);

/* Starts building a torrent for opts->path.  Everything that touches the
 * disk (walking the folder, reading and hashing the data) runs on the libuv
 * threadpool; every file's data is read exactly once, in large sequential
 * reads, by at most `threads` work items at a time (memory: about
 * CREATE_READ_BUF per work item).  A file whose size changes while it is
 * being hashed is an error.  opts and its strings are copied: the caller
 * may free them on return.  Returns 0 (done will be called exactly once,
 * from the loop) or UV_EINVAL / UV_ENOMEM (done will never be called).
 * The loop must be run for the work to complete. */
int create_start(uv_loop_t *loop, const struct create_opts *opts, create_progress_cb progress,
                 create_done_cb done, void *ctx);

/* Blocking convenience: runs create_start on a private loop until it
 * completes.  On success *out is the new torrent (caller frees); on error
 * returns the code, writes the message into err, and *out is untouched. */
int create_run(const struct create_opts *opts, create_progress_cb progress, void *ctx,
               struct manifest **out, char *err, size_t errlen);

#endif
