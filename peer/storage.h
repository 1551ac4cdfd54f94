/* storage.h -- a torrent's files on disk: piece <-> file span mapping; async
 * verified writes, block reads and whole-torrent checks on the libuv threadpool. */
#ifndef PEER_STORAGE_H_
#define PEER_STORAGE_H_

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/bitfield.h"
#include "common/manifest.h"

/* Open file descriptors kept between operations (LRU, shared by the
 * threadpool threads).  Descriptors in use by a running operation are never
 * evicted; when all slots are busy an operation uses a private descriptor. */
#define STORAGE_FD_CACHE 32u
/* storage_check keeps at most 2 x threadpool size pieces in flight, never
 * more than STORAGE_CHECK_MAX_INFLIGHT, and never more piece buffers than fit
 * in STORAGE_CHECK_MAX_BYTES (at least one). */
#define STORAGE_CHECK_MAX_INFLIGHT 64u
#define STORAGE_CHECK_MAX_BYTES (256u << 20)

/* Where the data lives.  With download folder DIR:
 *   single-file torrent: DIR/<name>
 *   multi-file torrent:  DIR/<name>/<path of each file>
 * Every component below DIR (including <name>) is opened with O_NOFOLLOW:
 * a symbolic link there is never followed and the operation fails with
 * SHOAL_EPATH; so does anything at a file's place that is not a regular file
 * (a FIFO, a device, a folder) and anything at a folder's place that is not
 * a folder.  DIR itself is trusted and may be a link; it
 * is created (one level, 0755) by the first write when missing.  Folders are
 * created as needed (0755), files with 0644 (0755 for MANIFEST_ATTR_EXEC),
 * never truncated.  Pad files (MANIFEST_ATTR_PAD) are never created, read or
 * written: their bytes are zeros.  Files on disk longer than in the manifest
 * are left as they are (the tail is ignored).
 *
 * Threads: every function here is called on the loop thread; every callback
 * runs on the loop thread; no file system call is made on the loop thread.
 *
 * Requests: when a function taking a callback returns an error, the callback
 * is never called; when it returns 0, the callback is called exactly once. */
struct storage;

typedef void (*storage_cb)(void *ctx, int status);
typedef void (*storage_progress_cb)(void *ctx, uint32_t pieces_done);

struct storage_stats {
  uint64_t bytes_read;      /* from disk (reads and checks; pad bytes not counted) */
  uint64_t bytes_written;   /* to disk (pad bytes not counted) */
  uint64_t files_opened;    /* successful file opens (fd cache misses) */
  uint32_t check_peak_inflight;  /* most check work items in flight at once */
};

/* Creates the storage of manifest m under download folder dir (copied).  m is
 * borrowed: it must outlive the storage.  Checks m's consistency (files
 * contiguous from offset 0 and summing to total_length, piece count and
 * length, single-file torrents have one file) and its names (no empty, ".",
 * ".." components, no absolute path): UV_EINVAL for an inconsistent
 * manifest or dir, SHOAL_EPATH for an unsafe name, UV_ENOMEM.  Touches no
 * disk.  On success *out owns the storage until storage_close. */
int storage_open(struct storage **out, uv_loop_t *loop, const struct manifest *m, const char *dir);

/* Starts closing: call once; no new requests are accepted (they return
 * UV_ECANCELED).  Requests not yet run are cancelled; running ones are waited
 * for.  Every request accepted before and not yet completed gets its callback
 * with UV_ECANCELED (even if its work did run: a cancelled write may or may
 * not be on disk), and a running check gets no more progress calls.  Then
 * the cached descriptors are closed (on the threadpool), the storage is
 * freed, and cb(ctx) is called (cb may be NULL).  May be called from inside a
 * storage callback. */
void storage_close(struct storage *s, void (*cb)(void *ctx), void *ctx);

/* After a storage_check completed: the index of the first file whose place
 * on disk is taken by something that is not a regular file (a folder, a
 * link, a FIFO), or whose folder path is blocked the same way; -1 when none.
 * Such a file can never be written. */
int storage_blocked_file(const struct storage *s);

/* Leaves file `file` out (skip) or takes it back: the bytes of a left-out
 * file are never written (a piece that spans it is still verified whole),
 * reading them fails with UV_ENOENT, and storage_finish does not create it.
 * Applies to requests queued from now on.  0 or UV_EINVAL. */
int storage_set_skip(struct storage *s, uint32_t file, bool skip);

/* Piece size in bytes (the last one may be shorter); 0 when piece is out of range. */
uint32_t storage_piece_size(const struct storage *s, uint32_t piece);

/* Verifies and writes a whole piece: on the threadpool the piece_size bytes
 * at data are SHA-1'd and compared with the manifest; on a match they are
 * written across the files the piece spans (folders and files created as
 * needed) and cb(ctx, 0) is called; on a mismatch nothing is written and
 * cb(ctx, SHOAL_EHASH); on an I/O error cb(ctx, UV_E*) (e.g. UV_ENOSPC,
 * SHOAL_EPATH for a symlink or a non-regular file in the way; part of the
 * piece may be written).  data is borrowed until cb.  Returns UV_EINVAL
 * (piece out of range, NULL data/cb), UV_ECANCELED (closing), UV_ENOMEM. */
int storage_write_piece(struct storage *s, uint32_t piece, const uint8_t *data, storage_cb cb, void *ctx);

/* Reads len bytes at offset begin of piece into dst (borrowed until cb).
 * Requires piece < num_pieces, len > 0, begin + len <= piece size, else
 * UV_EINVAL (and UV_ECANCELED, UV_ENOMEM as above).  Nothing is created:
 * a missing file gives cb(ctx, UV_ENOENT); a file too short for the range
 * gives UV_EIO (never zeros); pad bytes read as zeros. */
int storage_read(struct storage *s, uint32_t piece, uint32_t begin, uint32_t len, uint8_t *dst, storage_cb cb, void *ctx);

/* Finds which pieces are on disk: `have` (borrowed until done, nbits ==
 * num_pieces, else UV_EINVAL) is cleared, then bit i is set for each piece
 * whose data on disk matches its hash.  Files are looked at once first (on
 * the threadpool); a piece whose files are missing, not regular, or too short
 * to hold its part is not read.  The rest are read and hashed in parallel
 * with bounded memory (see STORAGE_CHECK_MAX_*).  progress(ctx, n), if not
 * NULL, reports n pieces examined so far (non-decreasing, ending at
 * num_pieces).  done(ctx, 0) when finished (unreadable pieces simply stay
 * clear), UV_ENOMEM, or UV_ECANCELED when closed meanwhile.  One check at a
 * time: UV_EBUSY while another runs.  Writes may run at the same time. */
int storage_check(struct storage *s, struct bitfield *have, storage_progress_cb progress, storage_cb done, void *ctx);

/* storage_check limited to the pieces set in `only` (nbits == num_pieces,
 * else UV_EINVAL): only those are cleared in `have` and read; every other
 * bit of `have` is left as the caller set it (pieces a resume record
 * vouches for).  Files are still looked at (sizes; storage_blocked_file). */
int storage_check_some(struct storage *s, struct bitfield *have, const struct bitfield *only,
                       storage_progress_cb progress, storage_cb done, void *ctx);

/* Closes the cached descriptors that no operation is using (on the
 * threadpool); later operations open files again as needed.  For a torrent
 * going idle, so that many idle torrents do not hold a descriptor each.
 * 0, UV_ECANCELED (closing), UV_ENOMEM. */
int storage_release_fds(struct storage *s);

/* Called when the download is complete: creates the zero-length files of the
 * manifest (and their folders) that do not exist yet.  cb(ctx, 0) or the
 * first error (the other files are still attempted). */
int storage_finish(struct storage *s, storage_cb cb, void *ctx);

/* DIR/<name>: the data file of a single-file torrent, the data folder of a
 * multi-file one.  Owned by s. */
const char *storage_root_path(const struct storage *s);

/* Writes the full path of file i (DIR/<name>[/<path>]) into out: 0, UV_EINVAL
 * (i out of range), UV_ENOBUFS (does not fit, out then holds ""). */
int storage_file_path(const struct storage *s, uint32_t i, char *out, size_t outlen);

/* A snapshot of the counters (they are updated by the threadpool threads). */
void storage_get_stats(const struct storage *s, struct storage_stats *out);

#endif
