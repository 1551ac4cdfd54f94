/* bitfield.h -- fixed-size bit sets in BitTorrent order (bit 0 = high bit of byte 0). */
#ifndef COMMON_BITFIELD_H_
#define COMMON_BITFIELD_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bitfield {
  uint8_t *bits;     /* (nbits + 7) / 8 bytes; spare bits in the last byte are 0 */
  uint32_t nbits;
  uint32_t count;    /* number of set bits, kept up to date */
};

int bitfield_init(struct bitfield *bf, uint32_t nbits);  /* all clear; UV_ENOMEM */
void bitfield_free(struct bitfield *bf);
/* dst (initialised) takes src's bits and count; UV_EINVAL (dst unchanged)
 * when their sizes differ. */
int bitfield_copy(struct bitfield *dst, const struct bitfield *src);
/* A new bitfield equal to src; dst owns nothing before.  0 or UV_ENOMEM. */
int bitfield_dup(struct bitfield *dst, const struct bitfield *src);
static inline size_t bitfield_bytes(uint32_t nbits) { return ((size_t)nbits + 7) / 8; }
static inline bool bitfield_get(const struct bitfield *bf, uint32_t i) {
  return i < bf->nbits && (bf->bits[i >> 3] >> (7 - (i & 7))) & 1;
}
void bitfield_set(struct bitfield *bf, uint32_t i);    /* no-op if i >= nbits */
void bitfield_clear(struct bitfield *bf, uint32_t i);
void bitfield_set_all(struct bitfield *bf);
void bitfield_clear_all(struct bitfield *bf);
static inline bool bitfield_complete(const struct bitfield *bf) { return bf->count == bf->nbits; }
/* Load from wire bytes: len must be exactly bitfield_bytes(nbits) and the
 * spare bits must be zero (BEP 3), else UV_EINVAL and bf is unchanged. */
int bitfield_load(struct bitfield *bf, const uint8_t *p, size_t len);

#endif
