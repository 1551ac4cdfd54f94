/* bitfield.c -- fixed-size bit sets in BitTorrent order. */
#include "common/bitfield.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

int bitfield_init(struct bitfield *bf, uint32_t nbits)
{
  size_t n = bitfield_bytes(nbits);
  bf->bits = calloc(n ? n : 1, 1);
  if (bf->bits == NULL)
    return UV_ENOMEM;
  bf->nbits = nbits;
  bf->count = 0;
  return 0;
}

int bitfield_copy(struct bitfield *dst, const struct bitfield *src)
{
  if (dst->nbits != src->nbits)
    return UV_EINVAL;
  memcpy(dst->bits, src->bits, bitfield_bytes(src->nbits));
  dst->count = src->count;
  return 0;
}

int bitfield_dup(struct bitfield *dst, const struct bitfield *src)
{
  int r = bitfield_init(dst, src->nbits);
  return r < 0 ? r : bitfield_copy(dst, src);
}

void bitfield_free(struct bitfield *bf)
{
  free(bf->bits);
  bf->bits = NULL;
  bf->nbits = bf->count = 0;
}

void bitfield_set(struct bitfield *bf, uint32_t i)
{
  if (i >= bf->nbits)
    return;
  uint8_t m = (uint8_t)(0x80u >> (i & 7));
  if (!(bf->bits[i >> 3] & m)) {
    bf->bits[i >> 3] |= m;
    bf->count++;
  }
}

void bitfield_clear(struct bitfield *bf, uint32_t i)
{
  if (i >= bf->nbits)
    return;
  uint8_t m = (uint8_t)(0x80u >> (i & 7));
  if (bf->bits[i >> 3] & m) {
    bf->bits[i >> 3] &= (uint8_t)~m;
    bf->count--;
  }
}

void bitfield_set_all(struct bitfield *bf)
{
  size_t n = bitfield_bytes(bf->nbits);
  if (n == 0)
    return;
  memset(bf->bits, 0xff, n);
  if (bf->nbits & 7)
    bf->bits[n - 1] = (uint8_t)(0xff00u >> (bf->nbits & 7));
  bf->count = bf->nbits;
}

void bitfield_clear_all(struct bitfield *bf)
{
  memset(bf->bits, 0, bitfield_bytes(bf->nbits));
  bf->count = 0;
}

int bitfield_load(struct bitfield *bf, const uint8_t *p, size_t len)
{
  size_t n = bitfield_bytes(bf->nbits);
  if (len != n)
    return UV_EINVAL;
  if ((bf->nbits & 7) && (p[n - 1] & (uint8_t)(0xffu >> (bf->nbits & 7))))
    return UV_EINVAL;
  memcpy(bf->bits, p, n);
  uint32_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += (uint32_t)__builtin_popcount(p[i]);
  bf->count = c;
  return 0;
}
