/* resume.h -- per-torrent resume records: bencoded with a format version and a SHA-1 seal; strict parse; atomic file write. */
#ifndef PEER_RESUME_H_
#define PEER_RESUME_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/bitfield.h"
#include "common/buf.h"
#include "common/manifest.h"
#include "common/ratelimit.h"

/* The file:
 *   d 7:content d <fields, keys ascending> e 4:sha1 20:<SHA-1 of the content value's bytes> e
 * Content keys (all required, no others): added (int, unix s), dir (str),
 * downloaded (int), error (str), files (str: 21 bytes per file: size int64
 * BE, mtime seconds int64 BE, mtime nanoseconds uint32 BE, priority u8),
 * format (int, RESUME_FORMAT), have (str: the bitfield, BEP 3 bit order),
 * info_hash (20-byte str), max_peers (int, 0..RESUME_MAX_PEERS), name (str),
 * peers (str: 19 bytes per peer, at most RESUME_MAX_PEERS_SAVED: family u8
 * 4 or 6, address 16 bytes (IPv4 in the first 4, the other 12 zero), port
 * uint16 BE 1..65535), pieces (int), position (int, 0..UINT32_MAX), rate_down (int,
 * 0..RATELIMIT_MAX), rate_up (int, 0..RATELIMIT_MAX), seed_idle_limit (int),
 * seed_ratio_limit (int, thousandths), sequential (0/1), state ("active" /
 * "paused"), uploaded (int). */
#define RESUME_FORMAT 1
#define RESUME_MAX_FILE_SIZE (8u << 20)    /* a resume file larger than this is refused */
#define RESUME_MAX_FILES MANIFEST_MAX_FILES  /* 100000 */
#define RESUME_MAX_PIECES (MANIFEST_MAX_FILE_SIZE / 20u) /* as many as a .torrent can list */
#define RESUME_MAX_STR 4096u               /* bytes of name and of download dir */
#define RESUME_MAX_ERROR 1024u             /* bytes of the error text */
#define RESUME_FILE_RECORD 21u             /* bytes per file in "files" */
#define RESUME_MAX_PEERS 10000u            /* largest max_peers */
#define RESUME_MAX_PEERS_SAVED 16u         /* most peer addresses in "peers" */
#define RESUME_PEER_RECORD 19u             /* bytes per peer in "peers" */

enum resume_state { RESUME_PAUSED = 0, RESUME_ACTIVE = 1 };

/* What a file looked like on disk when the record was saved. */
struct resume_file {
  int64_t size;          /* bytes; -1 = the file did not exist */
  int64_t mtime_s;       /* modification time (st_mtim) */
  int32_t mtime_ns;      /* 0..999999999 */
  uint8_t priority;      /* 0 skip, 1 normal, 2 high */
};

/* A peer address given by hand (shoal remote add-peer). */
struct resume_peer {
  uint8_t family;        /* 4 or 6 */
  uint8_t addr[16];      /* IPv4 in the first 4 bytes, the rest 0 */
  uint16_t port;         /* host order, 1..65535 */
};

/* One torrent's record.  Owns its strings, bitfield, files and peers arrays
 * (resume_free).  Rules (checked by encode and parse alike): download_dir
 * absolute, name and download_dir at most RESUME_MAX_STR bytes, error at
 * most RESUME_MAX_ERROR, no NUL in any (they are C strings); counters and
 * added >= 0 and <= INT64_MAX; seed limits >= -1; rate_down and rate_up
 * <= RATELIMIT_MAX; max_peers <= RESUME_MAX_PEERS; files and pieces within
 * their maximums; every file's mtime_ns < 10^9, size >= -1, priority <= 2;
 * num_peers <= RESUME_MAX_PEERS_SAVED, every peer's family 4 or 6, port
 * not 0, an IPv4 peer's addr[4..15] zero. */
struct resume {
  uint8_t infohash[20];
  char *name;                /* display name; "" when not known yet (magnet) */
  char *download_dir;        /* where the torrent's data lives */
  int64_t added;             /* unix seconds */
  uint8_t state;             /* enum resume_state */
  struct bitfield have;      /* verified pieces; nbits = piece count (0 before metadata) */
  struct resume_file *files; /* num_files entries (0 before metadata) */
  uint32_t num_files;
  uint64_t uploaded;         /* bytes, all sessions */
  uint64_t downloaded;
  int64_t seed_ratio_milli;  /* -1 = the global setting, 0 = none, else ratio x 1000 */
  int64_t seed_idle_s;       /* -1 = the global setting, 0 = none, else seconds */
  bool sequential;           /* download pieces in order */
  uint32_t position;         /* queue order, lower runs first */
  uint64_t rate_down;        /* this torrent's payload limit, bytes/s, 0 = none */
  uint64_t rate_up;          /* likewise, for upload */
  uint32_t max_peers;        /* connections for this torrent, 0 = the global setting */
  struct resume_peer *peers; /* num_peers entries given by hand; NULL when none */
  uint32_t num_peers;        /* 0..RESUME_MAX_PEERS_SAVED */
  char *error;               /* "" = none; the torrent is stopped on error */
};

/* Frees what r owns and zeroes it; safe on a zeroed struct and twice. */
void resume_free(struct resume *r);

/* Encodes r.  out is initialised here (any previous contents are not
 * freed) with a maximum of RESUME_MAX_FILE_SIZE.  Returns 0 (out holds the
 * bytes: buf_free them), UV_EINVAL (r breaks a rule; the reason in err),
 * UV_E2BIG or UV_ENOMEM; on error out holds nothing. */
int resume_encode(const struct resume *r, struct buf *out, char *err, size_t errlen);

/* Parses p[0..len) strictly into *out (which owns nothing before).  On
 * success out owns its parts.  Errors, each with a one-line reason in err
 * (SHOAL_ERRLEN bytes suffice) and *out owning nothing:
 *   SHOAL_ETOOBIG    len > RESUME_MAX_FILE_SIZE
 *   SHOAL_EBENCODE   not bencode or not the file's outer shape (a torn or
 *                    truncated file lands here)
 *   SHOAL_EHASH      the seal does not match the content (corruption)
 *   SHOAL_EMANIFEST  sealed but invalid: unsupported format version,
 *                    missing/unknown/mistyped key, a value out of bounds,
 *                    have length != ceil(pieces / 8) or spare bits set
 *   UV_ENOMEM */
int resume_parse(const uint8_t *p, size_t len, struct resume *out, char *err, size_t errlen);

/* Fills *out from an AF_INET or AF_INET6 address (an IPv6 scope id is
 * not kept).  Returns 0, or UV_EINVAL (sa NULL, another family, or port 0;
 * *out untouched). */
int resume_peer_from_sockaddr(const struct sockaddr *sa, struct resume_peer *out);

/* Zeroes *out, then writes p as a sockaddr_in (family 4) or sockaddr_in6
 * (family 6).  Any other family leaves *out zeroed (AF_UNSPEC). */
void resume_peer_to_sockaddr(const struct resume_peer *p, struct sockaddr_storage *out);

/* "<dir>/<40 lower-case hex digits of infohash>.resume", a new string
 * (free()), or NULL when out of memory. */
char *resume_path(const char *dir, const uint8_t infohash[20]);

/* True when a file's current stamp equals the saved one (size and both
 * parts of the mtime; priority is not compared). */
bool resume_file_unchanged(const struct resume_file *saved, const struct resume_file *now);

/* Drops from r->have what a restart cannot trust, given the manifest and
 * each file's current stamp (now[i] for m->files[i], e.g. from stat(); -1
 * size when missing): every piece touching a file whose stamp changed since
 * the save, and every piece touching bytes past a file's current end.  Pad
 * files (BEP 47) are skipped.  *cleared (may be NULL) gets the number of
 * bits cleared.  Returns 0, or SHOAL_EMANIFEST (r is not for this manifest:
 * piece or file count differ; r unchanged). */
int resume_trust(struct resume *r, const struct manifest *m, const struct resume_file *now,
                 uint32_t *cleared);

/* Writes data to path atomically: writes `path.tmp.<pid>`, fsyncs it,
 * renames it over path, then fsyncs the folder (a folder fsync refused
 * with EINVAL/ENOTSUP by the file system is ignored).  BLOCKING POSIX
 * calls: the daemon runs it inside uv_queue_work, never on the loop.  Two
 * threads must not write the same path at once (the temporary name is per
 * process).  Returns 0 or a negative errno (== UV_E*); on error the
 * temporary file is removed and path is as it was (unless only the folder
 * fsync failed: then path holds the new data, not yet durable). */
int resume_write_atomic(const char *path, const void *data, size_t len);

/* Reads the whole regular file at path into out, which is initialised here
 * with maximum max (any previous contents are not freed).  BLOCKING (for
 * the threadpool, or before the loop runs).  Returns 0 (out holds the
 * bytes: buf_free them), SHOAL_ETOOBIG (larger than max), UV_EINVAL (not a
 * regular file), a negative errno, or UV_ENOMEM; on error out holds
 * nothing. */
int resume_read_file(const char *path, size_t max, struct buf *out);

#endif
