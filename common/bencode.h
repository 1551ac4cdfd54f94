/* bencode.h -- strict, non-recursive bencode decoder (tokens with spans into the input) and encoder. */
#ifndef COMMON_BENCODE_H_
#define COMMON_BENCODE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum bencode_type { BENCODE_INT = 1, BENCODE_STR, BENCODE_LIST, BENCODE_DICT };

/* One decoded value.  Tokens are stored in document order (pre-order), so a
 * container's first child is the next token, and `next` is the index of the
 * token that follows the whole subtree (its next sibling, if any).  In a dict
 * the children alternate key (always a string), value. */
struct bencode_tok {
  uint8_t type;        /* enum bencode_type */
  uint32_t next;       /* index of the token after this value's subtree */
  uint32_t count;      /* list: elements; dict: key/value pairs */
  size_t raw_off;      /* the whole encoded value: input[raw_off, raw_off+raw_len) */
  size_t raw_len;
  size_t str_off;      /* string payload: input[str_off, str_off+str_len) */
  size_t str_len;
  int64_t i;           /* integer value */
};

/* Limits.  The defaults suit .torrent files; callers with smaller inputs
 * (wire messages, tracker replies) pass their own. */
struct bencode_limits {
  uint32_t max_tokens;   /* more tokens than this: SHOAL_ETOOBIG */
  uint32_t max_depth;    /* deeper nesting than this: SHOAL_EBENCODE */
  bool allow_trailing;   /* data after the first value is allowed (BEP 9 pieces) */
  bool require_sorted;   /* dict keys must be strictly ascending (else only unique) */
};
extern const struct bencode_limits bencode_default_limits; /* 1<<20 tokens, depth 64 */

struct bencode_doc {
  const uint8_t *in;     /* borrowed: valid as long as the caller's input */
  size_t in_len;
  size_t used;           /* bytes taken by the value (== in_len unless allow_trailing) */
  struct bencode_tok *tok;
  uint32_t ntok;
};

/* Decodes in[0..len).  Rules: integers have no leading zeros, no "-0", fit in
 * int64; string lengths have no leading zeros and fit in the input; dict keys
 * are strings and never repeat.  On error returns SHOAL_EBENCODE or
 * SHOAL_ETOOBIG (or UV_ENOMEM), writes a one-line reason with the byte offset
 * into err (SHOAL_ERRLEN bytes), and doc owns nothing.  On success doc owns
 * its token array: bencode_free() it. */
int bencode_decode(struct bencode_doc *doc, const uint8_t *in, size_t len,
                   const struct bencode_limits *lim, char *err, size_t errlen);
void bencode_free(struct bencode_doc *doc);

/* Navigation by token index (0 is the root).  All return -1 when not found
 * or when the token has another type. */
int bencode_dict_get(const struct bencode_doc *d, int dict, const char *key);
int bencode_dict_get_type(const struct bencode_doc *d, int dict, const char *key, enum bencode_type t);
int bencode_first(const struct bencode_doc *d, int container);  /* first child or -1 */
int bencode_next(const struct bencode_doc *d, int container, int child); /* next sibling within container or -1 */
/* Typed readers: 0 on success, -1 when the token is missing (idx < 0) or of another type. */
int bencode_get_int(const struct bencode_doc *d, int idx, int64_t *v);
int bencode_get_str(const struct bencode_doc *d, int idx, const uint8_t **p, size_t *len);
bool bencode_str_eq(const struct bencode_doc *d, int idx, const char *s);
/* Iterate a dict: for (k = bencode_first(d, dict); k >= 0; k = bencode_next(d, dict, v)) { v = k + 1; ... }
 * -- bencode_next on a value skips to the next key. */

/* Encoding into a struct buf (whose max bounds the output).  Callers write
 * dict keys in ascending order.  Each returns 0 or the buf error. */
int bencode_put_int(struct buf *b, int64_t v);
int bencode_put_str(struct buf *b, const void *p, size_t n);
int bencode_put_cstr(struct buf *b, const char *s);
int bencode_put_list(struct buf *b);   /* 'l' */
int bencode_put_dict(struct buf *b);   /* 'd' */
int bencode_put_end(struct buf *b);    /* 'e' */
/* Key + value helpers for dicts. */
int bencode_put_kv_int(struct buf *b, const char *key, int64_t v);
int bencode_put_kv_str(struct buf *b, const char *key, const void *p, size_t n);
int bencode_put_kv_cstr(struct buf *b, const char *key, const char *s);

#endif
