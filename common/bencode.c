/* bencode.c -- strict, non-recursive bencode decoder and a small encoder. */
#include "common/bencode.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "common/err.h"

const struct bencode_limits bencode_default_limits = {
  .max_tokens = 1u << 20,
  .max_depth = 64,
  .allow_trailing = false,
  .require_sorted = false,
};

struct frame {
  uint32_t tok;        /* the open container */
  bool expect_value;   /* dict: a key was read, its value comes next */
  bool sorted;         /* dict: keys so far strictly ascending */
  size_t last_key_off; /* dict: previous key's payload */
  size_t last_key_len;
};

static int fail(char *err, size_t errlen, int code, size_t off, const char *what)
{
  if (err && errlen)
    snprintf(err, errlen, "%s at byte %zu", what, off);
  return code;
}

static int push_tok(struct bencode_doc *d, uint32_t *cap, uint32_t max, uint8_t type, size_t off)
{
  if (d->ntok >= max)
    return SHOAL_ETOOBIG;
  if (d->ntok == *cap) {
    uint32_t ncap = *cap ? *cap * 2 : 16;
    if (ncap > max)
      ncap = max;
    struct bencode_tok *t = realloc(d->tok, (size_t)ncap * sizeof *t);
    if (t == NULL)
      return UV_ENOMEM;
    d->tok = t;
    *cap = ncap;
  }
  struct bencode_tok *t = &d->tok[d->ntok++];
  memset(t, 0, sizeof *t);
  t->type = type;
  t->raw_off = off;
  t->next = d->ntok;
  return 0;
}

static int key_cmp(const uint8_t *in, size_t ao, size_t al, size_t bo, size_t bl)
{
  size_t n = al < bl ? al : bl;
  int c = memcmp(in + ao, in + bo, n);
  if (c)
    return c;
  return al < bl ? -1 : al > bl ? 1 : 0;
}

static int key_idx_cmp(const void *a, const void *b, void *arg)
{
  const struct bencode_doc *d = arg;
  const struct bencode_tok *x = &d->tok[*(const uint32_t *)a], *y = &d->tok[*(const uint32_t *)b];
  return key_cmp(d->in, x->str_off, x->str_len, y->str_off, y->str_len);
}

/* An unsorted dict: sort its key indices to find a repeated key in O(n log n). */
static int dict_has_duplicate(const struct bencode_doc *d, uint32_t dict, bool *dup)
{
  uint32_t n = d->tok[dict].count, k = dict + 1;
  uint32_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
  if (idx == NULL)
    return UV_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    idx[i] = k;
    k = d->tok[k + 1].next;
  }
  qsort_r(idx, n, sizeof *idx, key_idx_cmp, (void *)d);
  *dup = false;
  for (uint32_t i = 1; i < n && !*dup; i++)
    *dup = key_idx_cmp(&idx[i - 1], &idx[i], (void *)d) == 0;
  free(idx);
  return 0;
}

static int parse_int(const uint8_t *in, size_t len, size_t *pos, int64_t *out)
{
  size_t p = *pos;      /* just after 'i' */
  bool neg = false;
  if (p < len && in[p] == '-') {
    neg = true;
    p++;
  }
  size_t start = p;
  uint64_t v = 0;
  while (p < len && in[p] >= '0' && in[p] <= '9') {
    uint64_t dgt = (uint64_t)(in[p] - '0');
    if (v > (UINT64_MAX - dgt) / 10)
      return -1;
    v = v * 10 + dgt;
    p++;
  }
  if (p == start || p >= len || in[p] != 'e')
    return -1;
  if (in[start] == '0' && (p - start > 1 || neg))  /* leading zero, or -0 */
    return -1;
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
    return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  *pos = p + 1;
  return 0;
}

int bencode_decode(struct bencode_doc *doc, const uint8_t *in, size_t len,
                   const struct bencode_limits *lim, char *err, size_t errlen)
{
  if (lim == NULL)
    lim = &bencode_default_limits;
  struct bencode_doc d = { .in = in, .in_len = len };
  uint32_t cap = 0, depth = 0;
  struct frame *stack = malloc((size_t)(lim->max_depth ? lim->max_depth : 1) * sizeof *stack);
  if (stack == NULL)
    return UV_ENOMEM;
  size_t pos = 0;
  int r = 0;

  if (len == 0) {
    r = fail(err, errlen, SHOAL_EBENCODE, 0, "empty input");
    goto out;
  }
  for (;;) {
    if (pos >= len) {
      r = fail(err, errlen, SHOAL_EBENCODE, pos, "unexpected end of input");
      goto out;
    }
    struct frame *top = depth ? &stack[depth - 1] : NULL;
    uint8_t c = in[pos];
    uint32_t done_tok;                 /* the value just completed */

    if (c == 'e') {
      if (top == NULL) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "unexpected 'e'");
        goto out;
      }
      if (top->expect_value) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "dictionary key without a value");
        goto out;
      }
      struct bencode_tok *t = &d.tok[top->tok];
      t->next = d.ntok;
      t->raw_len = pos + 1 - t->raw_off;
      if (t->type == BENCODE_DICT && !top->sorted) {
        bool dup;
        if ((r = dict_has_duplicate(&d, top->tok, &dup)) != 0)
          goto out;
        if (dup) {
          r = fail(err, errlen, SHOAL_EBENCODE, t->raw_off, "duplicate dictionary key in dictionary");
          goto out;
        }
        if (lim->require_sorted) {
          r = fail(err, errlen, SHOAL_EBENCODE, t->raw_off, "dictionary keys not sorted in dictionary");
          goto out;
        }
      }
      done_tok = top->tok;
      depth--;
      pos++;
    } else if (top && top->expect_value == false && d.tok[top->tok].type == BENCODE_DICT &&
               !(c >= '0' && c <= '9')) {
      r = fail(err, errlen, SHOAL_EBENCODE, pos, "dictionary key is not a string");
      goto out;
    } else if (c == 'i') {
      if ((r = push_tok(&d, &cap, lim->max_tokens, BENCODE_INT, pos)) != 0)
        goto toomany;
      done_tok = d.ntok - 1;
      size_t p = pos + 1;
      int64_t v;
      if (parse_int(in, len, &p, &v) != 0) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "invalid integer");
        goto out;
      }
      d.tok[done_tok].i = v;
      d.tok[done_tok].raw_len = p - pos;
      pos = p;
    } else if (c >= '0' && c <= '9') {
      size_t p = pos;
      uint64_t n = 0;
      while (p < len && in[p] >= '0' && in[p] <= '9') {
        if (n > (UINT64_MAX - 9) / 10) {
          r = fail(err, errlen, SHOAL_EBENCODE, pos, "string length too large");
          goto out;
        }
        n = n * 10 + (uint64_t)(in[p] - '0');
        p++;
      }
      if (p >= len || in[p] != ':') {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "invalid string length");
        goto out;
      }
      if (in[pos] == '0' && p - pos > 1) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "string length with a leading zero");
        goto out;
      }
      p++;
      if (n > len - p) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "string longer than the input");
        goto out;
      }
      if ((r = push_tok(&d, &cap, lim->max_tokens, BENCODE_STR, pos)) != 0)
        goto toomany;
      done_tok = d.ntok - 1;
      struct bencode_tok *t = &d.tok[done_tok];
      t->str_off = p;
      t->str_len = (size_t)n;
      t->raw_len = p + n - pos;
      pos = p + (size_t)n;
    } else if (c == 'l' || c == 'd') {
      if (depth >= lim->max_depth) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "nesting too deep");
        goto out;
      }
      if ((r = push_tok(&d, &cap, lim->max_tokens, c == 'l' ? BENCODE_LIST : BENCODE_DICT, pos)) != 0)
        goto toomany;
      if (top && d.tok[top->tok].type == BENCODE_DICT)
        top->expect_value = false, d.tok[top->tok].count++;
      else if (top)
        d.tok[top->tok].count++;
      stack[depth++] = (struct frame){ .tok = d.ntok - 1, .sorted = true };
      pos++;
      continue;                        /* a container is counted when it opens */
    } else {
      r = fail(err, errlen, SHOAL_EBENCODE, pos, "unexpected byte");
      goto out;
    }

    /* A value is complete: account for it in its parent. */
    top = depth ? &stack[depth - 1] : NULL;
    if (top == NULL) {
      if (!lim->allow_trailing && pos != len) {
        r = fail(err, errlen, SHOAL_EBENCODE, pos, "trailing data after the value");
        goto out;
      }
      break;
    }
    if (c == 'e')
      continue;                        /* closed containers were counted on opening */
    struct bencode_tok *parent = &d.tok[top->tok];
    if (parent->type == BENCODE_LIST) {
      parent->count++;
    } else if (!top->expect_value) {   /* a key */
      struct bencode_tok *k = &d.tok[done_tok];
      if (parent->count > 0 && top->sorted &&
          key_cmp(in, top->last_key_off, top->last_key_len, k->str_off, k->str_len) >= 0)
        top->sorted = false;
      top->last_key_off = k->str_off;
      top->last_key_len = k->str_len;
      top->expect_value = true;
    } else {
      top->expect_value = false;
      parent->count++;
    }
  }
  d.used = pos;
  free(stack);
  *doc = d;
  return 0;

toomany:
  if (r == SHOAL_ETOOBIG)
    fail(err, errlen, r, pos, "too many values");
out:
  free(stack);
  free(d.tok);
  return r;
}

void bencode_free(struct bencode_doc *doc)
{
  free(doc->tok);
  doc->tok = NULL;
  doc->ntok = 0;
}

int bencode_first(const struct bencode_doc *d, int c)
{
  if (c < 0 || (uint32_t)c >= d->ntok)
    return -1;
  const struct bencode_tok *t = &d->tok[c];
  if ((t->type != BENCODE_LIST && t->type != BENCODE_DICT) || t->count == 0)
    return -1;
  return c + 1;
}

int bencode_next(const struct bencode_doc *d, int container, int child)
{
  if (container < 0 || child < 0 || (uint32_t)child >= d->ntok)
    return -1;
  uint32_t n = d->tok[child].next;
  return n < d->tok[container].next ? (int)n : -1;
}

int bencode_dict_get(const struct bencode_doc *d, int dict, const char *key)
{
  if (dict < 0 || (uint32_t)dict >= d->ntok || d->tok[dict].type != BENCODE_DICT)
    return -1;
  size_t klen = strlen(key);
  for (int k = bencode_first(d, dict); k >= 0; k = bencode_next(d, dict, k + 1)) {
    const struct bencode_tok *t = &d->tok[k];
    if (t->str_len == klen && memcmp(d->in + t->str_off, key, klen) == 0)
      return k + 1;
  }
  return -1;
}

int bencode_dict_get_type(const struct bencode_doc *d, int dict, const char *key, enum bencode_type type)
{
  int v = bencode_dict_get(d, dict, key);
  return v >= 0 && d->tok[v].type == type ? v : -1;
}

int bencode_get_int(const struct bencode_doc *d, int idx, int64_t *v)
{
  if (idx < 0 || (uint32_t)idx >= d->ntok || d->tok[idx].type != BENCODE_INT)
    return -1;
  *v = d->tok[idx].i;
  return 0;
}

int bencode_get_str(const struct bencode_doc *d, int idx, const uint8_t **p, size_t *len)
{
  if (idx < 0 || (uint32_t)idx >= d->ntok || d->tok[idx].type != BENCODE_STR)
    return -1;
  *p = d->in + d->tok[idx].str_off;
  *len = d->tok[idx].str_len;
  return 0;
}

bool bencode_str_eq(const struct bencode_doc *d, int idx, const char *s)
{
  const uint8_t *p;
  size_t n;
  return bencode_get_str(d, idx, &p, &n) == 0 && n == strlen(s) && memcmp(p, s, n) == 0;
}

int bencode_put_int(struct buf *b, int64_t v) { return buf_printf(b, "i%" PRId64 "e", v); }

int bencode_put_str(struct buf *b, const void *p, size_t n)
{
  int r = buf_printf(b, "%zu:", n);
  return r ? r : buf_append(b, p, n);
}

int bencode_put_cstr(struct buf *b, const char *s) { return bencode_put_str(b, s, strlen(s)); }
int bencode_put_list(struct buf *b) { return buf_append_u8(b, 'l'); }
int bencode_put_dict(struct buf *b) { return buf_append_u8(b, 'd'); }
int bencode_put_end(struct buf *b) { return buf_append_u8(b, 'e'); }

int bencode_put_kv_int(struct buf *b, const char *key, int64_t v)
{
  int r = bencode_put_cstr(b, key);
  return r ? r : bencode_put_int(b, v);
}

int bencode_put_kv_str(struct buf *b, const char *key, const void *p, size_t n)
{
  int r = bencode_put_cstr(b, key);
  return r ? r : bencode_put_str(b, p, n);
}

int bencode_put_kv_cstr(struct buf *b, const char *key, const char *s)
{
  return bencode_put_kv_str(b, key, s, strlen(s));
}
