/* watch.h -- the daemon's watch folder: .torrent files dropped there are handed over once, then renamed. */
#ifndef PEER_WATCH_H_
#define PEER_WATCH_H_

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define WATCH_SCAN_MS 2000u               /* the folder is also rescanned this often */
#define WATCH_MAX_FILE (16u << 20)        /* a larger .torrent is refused as invalid */
#define WATCH_MAX_PER_SCAN 64u            /* files taken per scan (the rest wait for the next) */
#define WATCH_SETTLE_MS 1000u             /* a file must keep its size and mtime this long */

/* What the daemon decided about one file: the watch renames it to
 * "<name>.added" (WATCH_ADDED), "<name>.invalid" (WATCH_INVALID); on
 * WATCH_RETRY it leaves it and offers it again at a later scan. */
enum watch_verdict { WATCH_ADDED, WATCH_INVALID, WATCH_RETRY };

struct watch;

/* A file "<dir>/<name>" ending in ".torrent" (case-insensitive) that is a
 * regular file (not a link), at most WATCH_MAX_FILE bytes, and stable (same
 * size and mtime for WATCH_SETTLE_MS), read on the threadpool: data[0..len)
 * borrowed for the call; `parsed` is what the parser (watch_set_parser)
 * made of it, owned by the callback from now on (NULL without a parser).
 * The callback returns its verdict and, for WATCH_INVALID, may log its
 * reason itself.  A file too large, unreadable, or refused by the parser is
 * renamed .invalid by the watch itself, with a LOG_WARN line naming the file
 * and the reason. */
typedef enum watch_verdict (*watch_cb)(void *ctx, const char *path, const uint8_t *data, size_t len,
                                       void *parsed);

/* Parses a file's bytes ON THE THREADPOOL (so it must touch nothing but its
 * arguments): returns an object for the callback, or NULL with a one-line
 * reason in err (errlen >= SHOAL_ERRLEN bytes). */
typedef void *(*watch_parse_fn)(const uint8_t *data, size_t len, char *err, size_t errlen);

/* Starts watching dir (absolute; copied): uv_fs_event when the platform
 * gives it, plus a rescan every WATCH_SCAN_MS; directory listing, stat,
 * reads and renames run on the threadpool.  A missing folder is not an
 * error (it is looked for again at each scan, with one LOG_WARN).
 * 0, UV_EINVAL, UV_ENOMEM. */
int watch_start(uv_loop_t *loop, const char *dir, watch_cb cb, void *ctx, struct watch **out);
/* Sets the parser run on each file read, and how to free what it returns
 * when the callback will not get it (the watch is stopping).  Call right
 * after watch_start, before the loop runs again. */
void watch_set_parser(struct watch *w, watch_parse_fn parse, void (*free_parsed)(void *obj));

/* Stops; work already on the threadpool finishes first; cb(ctx) when freed
 * (may be NULL).  No callback to watch_cb after this returns. */
void watch_stop(struct watch *w, void (*cb)(void *ctx), void *ctx);

#endif
