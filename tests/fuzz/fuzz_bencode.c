/* fuzz_bencode.c -- libFuzzer target: bencode_decode under several limits, token invariants, re-encoding round trip. */
#include <stdbool.h>
#include <string.h>

#include "common/bencode.h"
#include "common/err.h"
#include "tests/fuzz/fuzzutil.h"

#define OUT_MAX (1u << 22)   /* re-encoding never exceeds the input by much */
#define DICT_GET_MAX 64u     /* dicts checked key by key with bencode_dict_get */

static const struct bencode_limits tight = {
  .max_tokens = 64, .max_depth = 8, .allow_trailing = false, .require_sorted = false,
};
static const struct bencode_limits trailing = {
  .max_tokens = 1u << 20, .max_depth = 64, .allow_trailing = true, .require_sorted = false,
};
static const struct bencode_limits sorted = {
  .max_tokens = 1u << 20, .max_depth = 64, .allow_trailing = false, .require_sorted = true,
};

/* Compares two keys by their payload bytes. */
static int key_cmp(const struct bencode_doc *d, uint32_t a, uint32_t b)
{
  const struct bencode_tok *x = &d->tok[a], *y = &d->tok[b];
  size_t n = x->str_len < y->str_len ? x->str_len : y->str_len;
  int c = memcmp(d->in + x->str_off, d->in + y->str_off, n);
  if (c)
    return c;
  return x->str_len < y->str_len ? -1 : x->str_len > y->str_len ? 1 : 0;
}

/* Structural invariants of a decoded document, checked without recursion. */
static void check_doc(const struct bencode_doc *d, const uint8_t *in, size_t len,
                      const struct bencode_limits *lim)
{
  FUZZ_CHECK(d->in == in && d->in_len == len);
  FUZZ_CHECK(d->ntok >= 1 && d->ntok <= lim->max_tokens);
  FUZZ_CHECK(d->used >= 1 && d->used <= len);
  if (!lim->allow_trailing)
    FUZZ_CHECK(d->used == len);
  FUZZ_CHECK(d->tok[0].raw_off == 0 && d->tok[0].raw_len == d->used);
  FUZZ_CHECK(d->tok[0].next == d->ntok);

  /* Open containers: depth never exceeds the limit. */
  uint32_t stack[65];
  uint32_t depth = 0;
  for (uint32_t i = 0; i < d->ntok; i++) {
    const struct bencode_tok *t = &d->tok[i];
    while (depth > 0 && d->tok[stack[depth - 1]].next <= i)
      depth--;
    FUZZ_CHECK(t->next > i && t->next <= d->ntok);
    FUZZ_CHECK(t->raw_len >= 2 && t->raw_off < d->used && t->raw_len <= d->used - t->raw_off);
    if (depth > 0) {
      const struct bencode_tok *p = &d->tok[stack[depth - 1]];
      FUZZ_CHECK(t->next <= p->next);           /* the subtree nests in its parent's */
      FUZZ_CHECK(t->raw_off > p->raw_off && t->raw_off + t->raw_len < p->raw_off + p->raw_len);
    }
    switch (t->type) {
    case BENCODE_INT:
      FUZZ_CHECK(t->next == i + 1 && in[t->raw_off] == 'i' && in[t->raw_off + t->raw_len - 1] == 'e');
      break;
    case BENCODE_STR:
      FUZZ_CHECK(t->next == i + 1);
      FUZZ_CHECK(t->str_off > t->raw_off && t->str_off + t->str_len == t->raw_off + t->raw_len);
      FUZZ_CHECK(in[t->str_off - 1] == ':');
      break;
    case BENCODE_LIST:
    case BENCODE_DICT: {
      FUZZ_CHECK(in[t->raw_off] == (t->type == BENCODE_LIST ? 'l' : 'd'));
      FUZZ_CHECK(in[t->raw_off + t->raw_len - 1] == 'e');
      FUZZ_CHECK(depth < lim->max_depth && depth < 64);
      stack[depth++] = i;
      /* Children by navigation: contiguous spans, count, dict keys. */
      uint32_t children = 0;
      size_t at = t->raw_off + 1;
      int prev_key = -1;
      for (int c = bencode_first(d, (int)i); c >= 0; c = bencode_next(d, (int)i, c)) {
        const struct bencode_tok *ct = &d->tok[c];
        FUZZ_CHECK(ct->raw_off == at);
        at += ct->raw_len;
        if (t->type == BENCODE_DICT && children % 2 == 0) {
          FUZZ_CHECK(ct->type == BENCODE_STR);
          if (prev_key >= 0 && lim->require_sorted)
            FUZZ_CHECK(key_cmp(d, (uint32_t)prev_key, (uint32_t)c) < 0);
          if (t->count <= DICT_GET_MAX) {
            /* Keys are unique: the lookup finds this very pair. */
            char key[64];
            if (ct->str_len < sizeof key && memchr(in + ct->str_off, 0, ct->str_len) == NULL) {
              memcpy(key, in + ct->str_off, ct->str_len);
              key[ct->str_len] = '\0';
              FUZZ_CHECK(bencode_dict_get(d, (int)i, key) == c + 1);
            }
          }
          prev_key = c;
        }
        children++;
      }
      FUZZ_CHECK(at == t->raw_off + t->raw_len - 1);
      FUZZ_CHECK(children == (t->type == BENCODE_DICT ? 2 * (uint64_t)t->count : t->count));
      if (t->count == 0)
        FUZZ_CHECK(t->next == i + 1 && t->raw_len == 2);
      break;
    }
    default:
      FUZZ_CHECK(!"unknown token type");
    }
  }
}

/* Re-encodes the token tree with the encoder, iteratively. */
static int reencode(const struct bencode_doc *d, struct buf *out)
{
  uint32_t stack[65];
  uint32_t depth = 0;
  int r = 0;
  for (uint32_t i = 0; i < d->ntok && r == 0; i++) {
    while (r == 0 && depth > 0 && d->tok[stack[depth - 1]].next <= i) {
      r = bencode_put_end(out);
      depth--;
    }
    const struct bencode_tok *t = &d->tok[i];
    switch (t->type) {
    case BENCODE_INT: r = r ? r : bencode_put_int(out, t->i); break;
    case BENCODE_STR: r = r ? r : bencode_put_str(out, d->in + t->str_off, t->str_len); break;
    case BENCODE_LIST:
    case BENCODE_DICT:
      if (r == 0)
        r = t->type == BENCODE_LIST ? bencode_put_list(out) : bencode_put_dict(out);
      FUZZ_CHECK(depth < 65);
      stack[depth++] = i;
      break;
    }
  }
  while (r == 0 && depth-- > 0)
    r = bencode_put_end(out);
  return r;
}

static void check_error(int r, const char *err)
{
  FUZZ_CHECK(r == SHOAL_EBENCODE || r == SHOAL_ETOOBIG);
  FUZZ_CHECK(memchr(err, '\0', SHOAL_ERRLEN) != NULL && err[0] != '\0');
}

/* Decodes with lim; on success checks the tree and the round trip.  Returns
 * the result and the token count. */
static int one(const uint8_t *data, size_t size, const struct bencode_limits *lim, uint32_t *ntok)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  memset(err, 'x', sizeof err);
  int r = bencode_decode(&d, data, size, lim, err, sizeof err);
  if (r) {
    check_error(r, err);
    return r;
  }
  check_doc(&d, data, size, lim);
  *ntok = d.ntok;

  struct buf out;
  buf_init(&out, OUT_MAX);
  FUZZ_CHECK(reencode(&d, &out) == 0);
  /* The decoder is strict, so the encoding is canonical: the same bytes. */
  FUZZ_CHECK(out.len == d.used && memcmp(out.p, data, d.used) == 0);

  /* Decoding the re-encoding gives the same tokens (from a separate buffer,
   * so every span is re-derived). */
  struct bencode_doc e;
  struct bencode_limits strict = *lim;
  strict.allow_trailing = false;
  r = bencode_decode(&e, out.p, out.len, &strict, err, sizeof err);
  FUZZ_CHECK(r == 0);
  FUZZ_CHECK(e.ntok == d.ntok && e.used == out.len);
  for (uint32_t i = 0; i < d.ntok; i++) {
    const struct bencode_tok *a = &d.tok[i], *b = &e.tok[i];
    FUZZ_CHECK(a->type == b->type && a->next == b->next && a->count == b->count);
    FUZZ_CHECK(a->raw_off == b->raw_off && a->raw_len == b->raw_len);
    if (a->type == BENCODE_INT)
      FUZZ_CHECK(a->i == b->i);
    if (a->type == BENCODE_STR)
      FUZZ_CHECK(a->str_off == b->str_off && a->str_len == b->str_len &&
                 memcmp(data + a->str_off, out.p + b->str_off, a->str_len) == 0);
  }
  bencode_free(&e);
  bencode_free(&d);
  FUZZ_CHECK(d.tok == NULL && d.ntok == 0);
  buf_free(&out);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint32_t n_def = 0, n_tight = 0, n_trail = 0, n_sorted = 0;
  int r_def = one(data, size, &bencode_default_limits, &n_def);
  int r_tight = one(data, size, &tight, &n_tight);
  int r_trail = one(data, size, &trailing, &n_trail);
  int r_sorted = one(data, size, &sorted, &n_sorted);

  /* Tighter limits accept a subset of what the defaults accept. */
  if (r_tight == 0)
    FUZZ_CHECK(r_def == 0 && n_def == n_tight);
  if (r_def == 0 && n_def <= tight.max_tokens) {
    /* Too deep is the only other reason for the tight decoder to refuse. */
    FUZZ_CHECK(r_tight == 0 || r_tight == SHOAL_EBENCODE);
  }
  if (r_sorted == 0)
    FUZZ_CHECK(r_def == 0 && n_def == n_sorted);
  /* Allowing trailing data accepts everything the defaults accept. */
  if (r_def == 0)
    FUZZ_CHECK(r_trail == 0 && n_trail == n_def);
  if (r_trail == 0 && r_def != 0) {
    /* Then the prefix the value used decodes on its own. */
    struct bencode_doc d;
    char err[SHOAL_ERRLEN];
    FUZZ_CHECK(bencode_decode(&d, data, size, &trailing, err, sizeof err) == 0);
    size_t used = d.used;
    bencode_free(&d);
    FUZZ_CHECK(used < size);
    uint8_t *copy = malloc(used);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, used);
    FUZZ_CHECK(bencode_decode(&d, copy, used, NULL, err, sizeof err) == 0);
    FUZZ_CHECK(d.ntok == n_trail);
    bencode_free(&d);
    free(copy);
  }
  return 0;
}
