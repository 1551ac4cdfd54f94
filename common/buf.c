/* buf.c -- growable byte buffers born with a maximum. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

void buf_init(struct buf *b, size_t max)
{
  b->p = NULL;
  b->len = b->cap = 0;
  b->max = max;
}

void buf_free(struct buf *b)
{
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
  if (extra > b->max || b->len > b->max - extra)
    return UV_E2BIG;
  size_t need = b->len + extra;
  if (need <= b->cap)
    return 0;
  if (need == SIZE_MAX)                /* no room for the spare byte below */
    return UV_ENOMEM;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->max)
    cap = b->max;
  if (cap == SIZE_MAX)
    cap = need;
  uint8_t *p = realloc(b->p, cap + 1); /* +1: room for buf_steal_cstr's NUL */
  if (p == NULL)
    return UV_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
  int r = buf_reserve(b, n);
  if (r)
    return r;
  if (n)
    memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

int buf_append_str(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }
int buf_append_u8(struct buf *b, uint8_t v) { return buf_append(b, &v, 1); }
int buf_append_u16be(struct buf *b, uint16_t v) { uint8_t t[2]; put_u16be(t, v); return buf_append(b, t, 2); }
int buf_append_u32be(struct buf *b, uint32_t v) { uint8_t t[4]; put_u32be(t, v); return buf_append(b, t, 4); }
int buf_append_u64be(struct buf *b, uint64_t v) { uint8_t t[8]; put_u64be(t, v); return buf_append(b, t, 8); }

int buf_printf(struct buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return UV_EINVAL;
  if (n == 0)                          /* nothing to add; b->p may still be NULL */
    return 0;
  int r = buf_reserve(b, (size_t)n);   /* the NUL goes in the spare byte every allocation has */
  if (r)
    return r;
  va_start(ap, fmt);
  vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void buf_consume(struct buf *b, size_t n)
{
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
}

char *buf_steal_cstr(struct buf *b, size_t *len_out)
{
  if (b->p == NULL) {
    b->p = malloc(1);
    if (b->p == NULL)
      return NULL;
    b->cap = 0;
  }
  b->p[b->len] = '\0';
  char *s = (char *)b->p;
  if (len_out)
    *len_out = b->len;
  b->p = NULL;
  b->len = b->cap = 0;
  return s;
}
