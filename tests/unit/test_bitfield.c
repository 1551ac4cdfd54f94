/* test_bitfield.c -- bit sets in BitTorrent order: set/clear/count, set_all spare bits, load checks. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/bitfield.h"

/* Counts set bits by hand, over the whole byte array (spare bits included). */
static uint32_t popcount_bytes(const struct bitfield *bf)
{
  uint32_t c = 0;
  for (size_t i = 0; i < bitfield_bytes(bf->nbits); i++)
    for (int k = 0; k < 8; k++)
      c += (bf->bits[i] >> k) & 1;
  return c;
}

START_TEST(test_bytes)
{
  ck_assert_uint_eq(bitfield_bytes(0), 0);
  ck_assert_uint_eq(bitfield_bytes(1), 1);
  ck_assert_uint_eq(bitfield_bytes(8), 1);
  ck_assert_uint_eq(bitfield_bytes(9), 2);
  ck_assert_uint_eq(bitfield_bytes(UINT32_MAX), 536870912u); /* no 32-bit wrap */
}
END_TEST

START_TEST(test_init_clear)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 20), 0);
  ck_assert_uint_eq(bf.nbits, 20);
  ck_assert_uint_eq(bf.count, 0);
  for (size_t i = 0; i < 3; i++)
    ck_assert_uint_eq(bf.bits[i], 0);
  for (uint32_t i = 0; i < 20; i++)
    ck_assert(!bitfield_get(&bf, i));
  ck_assert(!bitfield_complete(&bf));
  bitfield_free(&bf);
  ck_assert_ptr_null(bf.bits);
  ck_assert_uint_eq(bf.nbits, 0);
}
END_TEST

START_TEST(test_set_clear_order)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 12), 0);
  /* Bit 0 is the high bit of byte 0; bit 9 is 0x40 of byte 1. */
  bitfield_set(&bf, 0);
  ck_assert_uint_eq(bf.bits[0], 0x80);
  bitfield_set(&bf, 7);
  ck_assert_uint_eq(bf.bits[0], 0x81);
  bitfield_set(&bf, 9);
  ck_assert_uint_eq(bf.bits[1], 0x40);
  ck_assert_uint_eq(bf.count, 3);
  ck_assert(bitfield_get(&bf, 0));
  ck_assert(bitfield_get(&bf, 7));
  ck_assert(bitfield_get(&bf, 9));
  ck_assert(!bitfield_get(&bf, 1));
  ck_assert(!bitfield_get(&bf, 8));
  ck_assert(!bitfield_get(&bf, 11));
  /* Setting a set bit or clearing a clear one leaves the count alone. */
  bitfield_set(&bf, 9);
  ck_assert_uint_eq(bf.count, 3);
  bitfield_clear(&bf, 10);
  ck_assert_uint_eq(bf.count, 3);
  bitfield_clear(&bf, 0);
  ck_assert_uint_eq(bf.count, 2);
  ck_assert_uint_eq(bf.bits[0], 0x01);
  ck_assert(!bitfield_get(&bf, 0));
  bitfield_clear(&bf, 0);
  ck_assert_uint_eq(bf.count, 2);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_out_of_range)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 10), 0);
  bitfield_set_all(&bf);
  ck_assert_uint_eq(bf.count, 10);
  /* get beyond nbits: false, including the spare bits of the last byte. */
  for (uint32_t i = 10; i < 16; i++)
    ck_assert(!bitfield_get(&bf, i));
  ck_assert(!bitfield_get(&bf, 1000));
  ck_assert(!bitfield_get(&bf, UINT32_MAX));
  bitfield_clear_all(&bf);
  /* set beyond nbits: no-op, no spare bit set, no count change. */
  bitfield_set(&bf, 10);
  bitfield_set(&bf, 15);
  bitfield_set(&bf, UINT32_MAX);
  ck_assert_uint_eq(bf.count, 0);
  ck_assert_uint_eq(bf.bits[0], 0);
  ck_assert_uint_eq(bf.bits[1], 0);
  bitfield_clear(&bf, UINT32_MAX);
  ck_assert_uint_eq(bf.count, 0);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_count_random)
{
  /* Random set/clear against a plain bool array. */
  const uint32_t n = 1001;
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, n), 0);
  bool *model = calloc(n, 1);
  ck_assert_ptr_nonnull(model);
  uint32_t x = 12345, want = 0;
  for (int step = 0; step < 20000; step++) {
    x = x * 1103515245u + 12345u;
    uint32_t i = (x >> 8) % n;
    if ((x >> 4) & 1) {
      if (!model[i]) { model[i] = true; want++; }
      bitfield_set(&bf, i);
    } else {
      if (model[i]) { model[i] = false; want--; }
      bitfield_clear(&bf, i);
    }
    ck_assert_uint_eq(bf.count, want);
  }
  for (uint32_t i = 0; i < n; i++)
    ck_assert(bitfield_get(&bf, i) == model[i]);
  ck_assert_uint_eq(popcount_bytes(&bf), want);
  free(model);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_set_all_spare_bits)
{
  /* For every nbits % 8, set_all sets exactly nbits bits and no spare bit. */
  for (uint32_t nbits = 1; nbits <= 33; nbits++) {
    struct bitfield bf;
    ck_assert_int_eq(bitfield_init(&bf, nbits), 0);
    bitfield_set_all(&bf);
    ck_assert_uint_eq(bf.count, nbits);
    ck_assert(bitfield_complete(&bf));
    ck_assert_uint_eq(popcount_bytes(&bf), nbits);
    size_t n = bitfield_bytes(nbits);
    uint8_t spare = (nbits % 8) ? (uint8_t)(0xffu >> (nbits % 8)) : 0;
    ck_assert_uint_eq(bf.bits[n - 1] & spare, 0);
    for (uint32_t i = 0; i < nbits; i++)
      ck_assert(bitfield_get(&bf, i));
    bitfield_clear_all(&bf);
    ck_assert_uint_eq(bf.count, 0);
    ck_assert_uint_eq(popcount_bytes(&bf), 0);
    bitfield_free(&bf);
  }
  /* Literal: 10 bits -> ff c0; 3 bits -> e0. */
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 10), 0);
  bitfield_set_all(&bf);
  ck_assert_uint_eq(bf.bits[0], 0xff);
  ck_assert_uint_eq(bf.bits[1], 0xc0);
  bitfield_free(&bf);
  ck_assert_int_eq(bitfield_init(&bf, 3), 0);
  bitfield_set_all(&bf);
  ck_assert_uint_eq(bf.bits[0], 0xe0);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_load_ok)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 12), 0);
  const uint8_t in[2] = { 0xa5, 0xf0 };
  ck_assert_int_eq(bitfield_load(&bf, in, sizeof in), 0);
  ck_assert_uint_eq(bf.count, 8);
  ck_assert(bitfield_get(&bf, 0));
  ck_assert(!bitfield_get(&bf, 1));
  ck_assert(bitfield_get(&bf, 2));
  ck_assert(bitfield_get(&bf, 7));
  ck_assert(bitfield_get(&bf, 8));
  ck_assert(bitfield_get(&bf, 11));
  /* A full load makes it complete. */
  const uint8_t all[2] = { 0xff, 0xf0 };
  ck_assert_int_eq(bitfield_load(&bf, all, sizeof all), 0);
  ck_assert_uint_eq(bf.count, 12);
  ck_assert(bitfield_complete(&bf));
  bitfield_free(&bf);

  /* Multiple of 8: every bit of the last byte is real. */
  ck_assert_int_eq(bitfield_init(&bf, 16), 0);
  const uint8_t ff[2] = { 0xff, 0xff };
  ck_assert_int_eq(bitfield_load(&bf, ff, sizeof ff), 0);
  ck_assert_uint_eq(bf.count, 16);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_load_spare_bits)
{
  /* 12 bits: the low 4 bits of byte 1 are spare; any of them set -> UV_EINVAL, bf unchanged. */
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 12), 0);
  bitfield_set(&bf, 3);
  for (int k = 0; k < 4; k++) {
    const uint8_t in[2] = { 0xff, (uint8_t)(0xf0 | (1u << k)) };
    ck_assert_int_eq(bitfield_load(&bf, in, sizeof in), UV_EINVAL);
    ck_assert_uint_eq(bf.count, 1);
    ck_assert_uint_eq(bf.bits[0], 0x10);
    ck_assert_uint_eq(bf.bits[1], 0x00);
  }
  bitfield_free(&bf);

  /* 1 bit: 0x80 is fine, 0x81 and 0x40 are not. */
  ck_assert_int_eq(bitfield_init(&bf, 1), 0);
  uint8_t b = 0x81;
  ck_assert_int_eq(bitfield_load(&bf, &b, 1), UV_EINVAL);
  b = 0x40;
  ck_assert_int_eq(bitfield_load(&bf, &b, 1), UV_EINVAL);
  ck_assert_uint_eq(bf.count, 0);
  b = 0x80;
  ck_assert_int_eq(bitfield_load(&bf, &b, 1), 0);
  ck_assert_uint_eq(bf.count, 1);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_load_wrong_length)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 12), 0);
  bitfield_set(&bf, 5);
  const uint8_t in[3] = { 0xff, 0x00, 0x00 };
  ck_assert_int_eq(bitfield_load(&bf, in, 3), UV_EINVAL);
  ck_assert_int_eq(bitfield_load(&bf, in, 1), UV_EINVAL);
  ck_assert_int_eq(bitfield_load(&bf, in, 0), UV_EINVAL);
  ck_assert_uint_eq(bf.count, 1);
  ck_assert_uint_eq(bf.bits[0], 0x04);
  ck_assert_uint_eq(bf.bits[1], 0x00);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_zero_bits)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 0), 0);
  ck_assert_ptr_nonnull(bf.bits);
  ck_assert_uint_eq(bf.count, 0);
  ck_assert(bitfield_complete(&bf));
  ck_assert(!bitfield_get(&bf, 0));
  bitfield_set(&bf, 0);
  ck_assert_uint_eq(bf.count, 0);
  bitfield_set_all(&bf);
  ck_assert_uint_eq(bf.count, 0);
  bitfield_clear_all(&bf);
  ck_assert_uint_eq(bf.count, 0);
  uint8_t one = 0;
  ck_assert_int_eq(bitfield_load(&bf, &one, 1), UV_EINVAL);
  ck_assert_int_eq(bitfield_load(&bf, &one, 0), 0);
  ck_assert_uint_eq(bf.count, 0);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_large)
{
  /* A large torrent: count and complete across many bytes. */
  const uint32_t n = 100003;
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, n), 0);
  for (uint32_t i = 0; i < n; i += 2)
    bitfield_set(&bf, i);
  ck_assert_uint_eq(bf.count, (n + 1) / 2);
  for (uint32_t i = 1; i < n; i += 2)
    bitfield_set(&bf, i);
  ck_assert(bitfield_complete(&bf));
  ck_assert_uint_eq(popcount_bytes(&bf), n);
  bitfield_clear(&bf, n - 1);
  ck_assert(!bitfield_complete(&bf));
  ck_assert_uint_eq(bf.count, n - 1);
  bitfield_free(&bf);
}
END_TEST

/* copy and dup carry bits and count; a size mismatch changes nothing */
START_TEST(test_copy_dup)
{
  struct bitfield a, b, c;
  ck_assert_int_eq(bitfield_init(&a, 21), 0);
  bitfield_set(&a, 0);
  bitfield_set(&a, 9);
  bitfield_set(&a, 20);
  ck_assert_int_eq(bitfield_dup(&b, &a), 0);
  ck_assert_uint_eq(b.nbits, 21);
  ck_assert_uint_eq(b.count, 3);
  ck_assert(bitfield_get(&b, 0) && bitfield_get(&b, 9) && bitfield_get(&b, 20) && !bitfield_get(&b, 1));
  bitfield_clear(&a, 9);
  ck_assert(bitfield_get(&b, 9));                       /* its own bits */
  ck_assert_int_eq(bitfield_copy(&b, &a), 0);
  ck_assert_uint_eq(b.count, 2);
  ck_assert(!bitfield_get(&b, 9));
  ck_assert_int_eq(bitfield_init(&c, 22), 0);
  bitfield_set(&c, 21);
  ck_assert_int_eq(bitfield_copy(&c, &a), UV_EINVAL);
  ck_assert_uint_eq(c.count, 1);
  ck_assert(bitfield_get(&c, 21));
  bitfield_free(&a);
  bitfield_free(&b);
  bitfield_free(&c);
}
END_TEST

Suite *bitfield_suite(void)
{
  Suite *s = suite_create("bitfield");
  TCase *tc = tcase_create("bitfield");
  tcase_add_test(tc, test_bytes);
  tcase_add_test(tc, test_init_clear);
  tcase_add_test(tc, test_set_clear_order);
  tcase_add_test(tc, test_out_of_range);
  tcase_add_test(tc, test_count_random);
  tcase_add_test(tc, test_set_all_spare_bits);
  tcase_add_test(tc, test_load_ok);
  tcase_add_test(tc, test_load_spare_bits);
  tcase_add_test(tc, test_load_wrong_length);
  tcase_add_test(tc, test_zero_bits);
  tcase_add_test(tc, test_large);
  tcase_add_test(tc, test_copy_dup);
  suite_add_tcase(s, tc);
  return s;
}
