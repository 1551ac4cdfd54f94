/* buf.h -- growable byte buffers born with a maximum, and a bounds-checked read cursor. */
#ifndef COMMON_BUF_H_
#define COMMON_BUF_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A growable buffer.  Growing past `max` fails with UV_E2BIG and leaves the
 * buffer as it was; a failed allocation gives UV_ENOMEM.  The bytes p[0..len)
 * are the contents; p is NULL until the first append. */
struct buf {
  uint8_t *p;
  size_t len;
  size_t cap;
  size_t max;
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);                 /* releases memory; b is re-initable */
int buf_reserve(struct buf *b, size_t extra);  /* room for `extra` more bytes */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_append_u8(struct buf *b, uint8_t v);
int buf_append_u16be(struct buf *b, uint16_t v);
int buf_append_u32be(struct buf *b, uint32_t v);
int buf_append_u64be(struct buf *b, uint64_t v);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);    /* drop the first n bytes (n <= len) */
/* Hands the contents to the caller (who free()s them), NUL-terminated, and
 * resets b to empty.  Returns NULL on allocation failure. */
char *buf_steal_cstr(struct buf *b, size_t *len_out);

/* Big-endian stores into caller memory. */
static inline void put_u16be(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static inline void put_u32be(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static inline void put_u64be(uint8_t *p, uint64_t v) { put_u32be(p, v >> 32); put_u32be(p + 4, (uint32_t)v); }
static inline uint16_t get_u16be(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_u32be(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline uint64_t get_u64be(const uint8_t *p) { return (uint64_t)get_u32be(p) << 32 | get_u32be(p + 4); }

/* A read cursor over untrusted bytes.  Every read fails (returns -1, cursor
 * unchanged) if fewer bytes remain than it needs. */
struct cur {
  const uint8_t *p;
  size_t len;
};

static inline struct cur cur_make(const void *p, size_t len) { struct cur c = { p, len }; return c; }
static inline int cur_u8(struct cur *c, uint8_t *v) { if (c->len < 1) return -1; *v = c->p[0]; c->p++; c->len--; return 0; }
static inline int cur_u16be(struct cur *c, uint16_t *v) { if (c->len < 2) return -1; *v = get_u16be(c->p); c->p += 2; c->len -= 2; return 0; }
static inline int cur_u32be(struct cur *c, uint32_t *v) { if (c->len < 4) return -1; *v = get_u32be(c->p); c->p += 4; c->len -= 4; return 0; }
static inline int cur_u64be(struct cur *c, uint64_t *v) { if (c->len < 8) return -1; *v = get_u64be(c->p); c->p += 8; c->len -= 8; return 0; }
static inline int cur_copy(struct cur *c, void *dst, size_t n) { if (c->len < n) return -1; memcpy(dst, c->p, n); c->p += n; c->len -= n; return 0; }
/* Borrow n bytes in place (valid as long as the input). */
static inline int cur_take(struct cur *c, size_t n, const uint8_t **out) { if (c->len < n) return -1; *out = c->p; c->p += n; c->len -= n; return 0; }

#endif
