/* remote-int.h -- pure helpers of `shoal remote` (peer/remote.c), exposed for its tests. */
#ifndef PEER_REMOTE_INT_H_
#define PEER_REMOTE_INT_H_

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/manifest.h"

#define REMOTE_MAX_TORRENT_FILE (16u << 20) /* a .torrent larger than this is not sent */
#define REMOTE_ENDPOINT_MAX 128u            /* bytes of a sane rpc-endpoint file */
#define REMOTE_HOST_MAX 46u                 /* a numeric address + NUL (INET6_ADDRSTRLEN) */
#define REMOTE_MAX_RANGES 1024u             /* items of one index list ("0,3-5" has 2) */
#define REMOTE_MAX_INDEX (MANIFEST_MAX_FILES - 1u)

/* Parses the text of <config_dir>/rpc-endpoint, text[0..len): exactly
 * "HOST PORT\n" where HOST is a numeric IPv4 or IPv6 address (no brackets)
 * and PORT is 1..65535 in at most 5 decimal digits.  An unspecified
 * address (0.0.0.0, ::) becomes the loopback address of its family, since
 * that is where a daemon listening on all addresses is reached.  Fills
 * host (NUL-terminated) and *port and returns 0, or UV_EINVAL (outputs then
 * unspecified). */
int remote__parse_endpoint(const char *text, size_t len, char host[REMOTE_HOST_MAX], uint16_t *port);

/* One item of an index list: the file indexes lo..hi (lo <= hi). */
struct remote__range {
  uint32_t lo, hi;
};

/* Parses a file index list such as "0,3-5" (decimal, comma-separated items
 * "N" or "N-M" with N <= M, every index <= REMOTE_MAX_INDEX, no blanks) into
 * out[0..*n), at most max items.  0, or UV_EINVAL (empty, malformed, an
 * index out of range, more than max items). */
int remote__parse_index_list(const char *s, struct remote__range *out, size_t max, size_t *n);

/* Applies one `--priority LIST=LEVEL` argument (LEVEL: skip, normal or
 * high) to the JSON object prios: sets "<index>": "<level>" for every index
 * of LIST (a later setting of an index replaces an earlier one).  0,
 * UV_EINVAL (malformed; a one-line reason in err), UV_ENOMEM (prios may then
 * hold part of the list). */
int remote__add_priorities(json_t *prios, const char *arg, char *err, size_t errlen);

/* Whether code point cp must not reach a terminal as is: C0 controls, DEL,
 * C1 controls, and the bidirectional controls that reorder what follows. */
bool remote__unsafe_cp(uint32_t cp);

/* Copies the NUL-terminated in to out[outlen] (always NUL-terminated when
 * outlen > 0) with every unsafe code point (remote__unsafe_cp) and every
 * byte that is not part of well-formed UTF-8 replaced by '?'.  Stops before
 * a character that does not fit whole.  Returns the bytes written (without
 * the NUL). */
size_t remote__sanitize(const char *in, char *out, size_t outlen);

/* Writes s (NULL = "") to f, sanitized as remote__sanitize does, whatever its length. */
void remote__fput_clean(FILE *f, const char *s);

/* "4s", "3m 4s", "2h 3m 4s", "1d 2h 3m 4s" (leading zero units left out) into out[len]. */
void remote__format_duration(uint64_t seconds, char *out, size_t len);

/* The human output of each method's result (the "result" member of a reply),
 * written to f.  Missing or mistyped members read as empty / 0; names and
 * every other string from the reply are sanitized.
 *   list:  a table  IDX ID STATE PROGRESS SIZE DOWN UP PEERS RATIO NAME
 *   info:  "key: value" lines, then the files table and the trackers
 *   peers: a table  ADDRESS CLIENT FLAGS PROGRESS DOWN UP
 *   stats: "key: value" lines */
void remote__print_list(FILE *f, const json_t *result);
void remote__print_info(FILE *f, const json_t *result);
void remote__print_peers(FILE *f, const json_t *result);
void remote__print_stats(FILE *f, const json_t *result);

/* The JSON value v as text for --json: indented by 2, '\n'-terminated, with
 * non-ASCII escaped (\uXXXX) when the text would otherwise carry a code
 * point remote__unsafe_cp refuses.  The caller free()s it; NULL when out of
 * memory. */
char *remote__json_text(const json_t *v);

#endif
