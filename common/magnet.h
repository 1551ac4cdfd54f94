/* magnet.h -- magnet links (BEP 9, with BEP 53 `so`): strict parsing and building. */
#ifndef COMMON_MAGNET_H_
#define COMMON_MAGNET_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MAGNET_MAX_LEN (64u * 1024)       /* longest link accepted */
#define MAGNET_MAX_NAME 1024              /* dn bytes kept (cut on a character boundary) */
#define MAGNET_MAX_TRACKERS 32            /* tr kept; further ones ignored */
#define MAGNET_MAX_TRACKER_LEN 1024       /* a longer decoded tr is an error */
#define MAGNET_MAX_PEERS 32               /* x.pe kept; further ones ignored */
#define MAGNET_MAX_SO 256                 /* so ranges (a,b-c count one each) */
#define MAGNET_MAX_FILE_INDEX 100000      /* so indices are below this */

/* A file index range of `so`, both ends included. */
struct magnet_range {
  uint32_t first, last;
};

struct magnet {
  uint8_t infohash[20];                   /* v1 (btih) infohash */
  char *name;                             /* dn: NUL-terminated UTF-8 with no control
                                             characters, or NULL when absent */
  char *trackers[MAGNET_MAX_TRACKERS];    /* tr: decoded URLs, printable ASCII,
                                             duplicates removed, in link order */
  size_t ntrackers;
  struct sockaddr_storage peers[MAGNET_MAX_PEERS]; /* x.pe with a numeric address */
  size_t npeers;
  size_t peers_skipped;                   /* x.pe naming a host (not resolved here),
                                             or beyond MAGNET_MAX_PEERS */
  struct magnet_range so[MAGNET_MAX_SO];  /* so: selected files, in link order */
  size_t nso;                             /* 0: no `so`, every file wanted */
};

/* Parses "magnet:?xt=urn:btih:<40 hex | 32 base32>&dn=..&tr=..&x.pe=..&so=..".
 * Values are percent-decoded (dn also turns '+' into a space).  Rules:
 *  - the scheme "magnet:?" is case-insensitive; parameters are "&"-separated,
 *    unknown ones ignored; the whole link is at most MAGNET_MAX_LEN bytes;
 *  - xt: urn:btih: with 40 hex digits (any case) or 32 RFC 4648 base32
 *    characters (any case, no padding).  Several xt: the btih one is used
 *    (several btih must agree); xt of other kinds (urn:btmh:, ...) are
 *    ignored, and a link with btmh but no btih fails with "v2-only magnet
 *    links are not supported";
 *  - dn: the first one counts; must be valid UTF-8 without control
 *    characters; cut to MAGNET_MAX_NAME bytes;
 *  - tr: each must decode to 1..MAGNET_MAX_TRACKER_LEN printable ASCII
 *    bytes (no spaces); at most MAGNET_MAX_TRACKERS kept;
 *  - x.pe: "1.2.3.4:5" or "[v6]:5" are kept (up to MAGNET_MAX_PEERS); a
 *    syntactically valid "hostname:port" is counted in peers_skipped (the
 *    caller would have to resolve it); anything else is an error;
 *  - so: comma-separated "N" or "N-M" (N <= M), decimal without leading
 *    zeros, indices < MAGNET_MAX_FILE_INDEX, at most MAGNET_MAX_SO ranges
 *    over all so parameters.
 * Returns 0 (m owns its strings: magnet_free()), or on any fault UV_EINVAL
 * (malformed link; a one-line reason naming the fault in err, SHOAL_ERRLEN
 * bytes is enough, err may be NULL), SHOAL_ETOOBIG (longer than
 * MAGNET_MAX_LEN) or UV_ENOMEM; m then owns nothing. */
int magnet_parse(struct magnet *m, const char *uri, char *err, size_t errlen);

/* Releases the strings of a parsed link; m may be parsed into again. */
void magnet_free(struct magnet *m);

/* Whether file `index` is wanted: true when the link had no `so`, otherwise
 * when a range includes it. */
bool magnet_file_selected(const struct magnet *m, uint32_t index);

/* Builds "magnet:?xt=urn:btih:<40 lower-case hex>[&dn=NAME][&tr=URL]..." with
 * name and trackers percent-encoded (name may be NULL, trackers may be NULL
 * when n is 0).  Returns a malloc()ed NUL-terminated string the caller
 * free()s, or NULL when out of memory or longer than MAGNET_MAX_LEN. */
char *magnet_build(const uint8_t infohash[20], const char *name,
                   const char *const *trackers, size_t n);

#endif
