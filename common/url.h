/* url.h -- percent-encoding and query-string parsing for tracker URLs. */
#ifndef COMMON_URL_H_
#define COMMON_URL_H_

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Appends p[0..n) percent-encoded: RFC 3986 unreserved characters
 * (A-Z a-z 0-9 - . _ ~) stay, every other byte becomes %XX (upper case). */
int url_encode(struct buf *out, const uint8_t *p, size_t n);

/* Decodes s[0..n) as a query value: %XX becomes a byte, '+' a space (form
 * encoding, as trackers read it; a client meaning '+' sends %2B), anything
 * else is copied.  Writes at most cap bytes; returns the decoded length, or -1 on a
 * bad escape or when the result would not fit. */
long url_decode(const char *s, size_t n, uint8_t *out, size_t cap);

/* Iterates the key=value pairs of a query string ("a=1&b=2", no leading
 * '?').  Each call returns 1 and points key/val into the input (still
 * encoded; val_len 0 for "a" or "a="), or 0 at the end.  Empty pairs ("&&")
 * are skipped. */
struct url_query_iter { const char *p; size_t len; };
int url_query_next(struct url_query_iter *it, const char **key, size_t *key_len,
                   const char **val, size_t *val_len);

#endif
