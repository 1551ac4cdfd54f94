/* test_buf.c -- capped byte buffers, big-endian stores and loads, and the bounds-checked cursor. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"

/* Contents of b equal the n bytes at want. */
static void expect_bytes(const struct buf *b, const void *want, size_t n)
{
  ck_assert_uint_eq(b->len, n);
  if (n)
    ck_assert(memcmp(b->p, want, n) == 0);
}

START_TEST(test_init_empty)
{
  struct buf b;
  buf_init(&b, 100);
  ck_assert_ptr_null(b.p);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_uint_eq(b.max, 100);
  /* An empty append succeeds and changes nothing. */
  ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
  ck_assert_uint_eq(b.len, 0);
  buf_free(&b);
  ck_assert_ptr_null(b.p);
  ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_append_to_max)
{
  struct buf b;
  buf_init(&b, 10);
  ck_assert_int_eq(buf_append(&b, "0123456", 7), 0);
  ck_assert_int_eq(buf_append(&b, "789", 3), 0);
  expect_bytes(&b, "0123456789", 10);
  ck_assert_uint_le(b.cap, b.max);
  /* Full: even one more byte is refused and nothing changes. */
  ck_assert_int_eq(buf_append(&b, "x", 1), UV_E2BIG);
  ck_assert_int_eq(buf_append_u8(&b, 1), UV_E2BIG);
  expect_bytes(&b, "0123456789", 10);
  /* Zero bytes still fit. */
  ck_assert_int_eq(buf_append(&b, "x", 0), 0);
  expect_bytes(&b, "0123456789", 10);
  buf_free(&b);
}
END_TEST

START_TEST(test_append_past_max_unchanged)
{
  struct buf b;
  buf_init(&b, 8);
  ck_assert_int_eq(buf_append(&b, "abcde", 5), 0);
  /* 5 + 4 > 8: refused as a whole, not partly written. */
  ck_assert_int_eq(buf_append(&b, "WXYZ", 4), UV_E2BIG);
  expect_bytes(&b, "abcde", 5);
  ck_assert_int_eq(buf_append_str(&b, "1234"), UV_E2BIG);
  ck_assert_int_eq(buf_append_u32be(&b, 0xdeadbeef), UV_E2BIG);
  ck_assert_int_eq(buf_append_u64be(&b, 1), UV_E2BIG);
  expect_bytes(&b, "abcde", 5);
  /* What does fit still goes in after a refusal. */
  ck_assert_int_eq(buf_append_u16be(&b, 0x4142), 0);
  ck_assert_int_eq(buf_append_u8(&b, 'C'), 0);
  expect_bytes(&b, "abcdeABC", 8);
  buf_free(&b);
}
END_TEST

START_TEST(test_max_zero)
{
  struct buf b;
  buf_init(&b, 0);
  ck_assert_int_eq(buf_append(&b, "a", 1), UV_E2BIG);
  ck_assert_int_eq(buf_reserve(&b, 1), UV_E2BIG);
  ck_assert_int_eq(buf_reserve(&b, 0), 0);
  ck_assert_uint_eq(b.len, 0);
  buf_free(&b);
}
END_TEST

START_TEST(test_reserve_overflow)
{
  /* len + extra would wrap size_t: must be refused, not wrapped into a small number. */
  struct buf b;
  buf_init(&b, SIZE_MAX);
  ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
  ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), UV_E2BIG);
  ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 1), UV_E2BIG);
  ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 2), UV_E2BIG);
  expect_bytes(&b, "abc", 3);
  buf_free(&b);

  buf_init(&b, 100);
  ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
  ck_assert_int_eq(buf_reserve(&b, 98), UV_E2BIG);
  ck_assert_int_eq(buf_reserve(&b, 97), 0);
  ck_assert_uint_ge(b.cap, 100);
  ck_assert_uint_le(b.cap, 100);
  expect_bytes(&b, "abc", 3);
  buf_free(&b);
}
END_TEST

START_TEST(test_reserve_size_max_unchanged)
{
  /* max SIZE_MAX, len + extra == SIZE_MAX: within max, but no allocation can
   * hold SIZE_MAX + 1 bytes (contents plus steal's NUL).  It must fail and
   * leave the buffer as it was, still owning its memory. */
  struct buf b;
  buf_init(&b, SIZE_MAX);
  ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
  int r = buf_reserve(&b, SIZE_MAX - 3);
  ck_assert_msg(r == UV_ENOMEM || r == UV_E2BIG, "reserve to SIZE_MAX gave %d", r);
  ck_assert_ptr_nonnull(b.p);
  expect_bytes(&b, "abc", 3);
  ck_assert_int_eq(buf_append(&b, "d", 1), 0);
  expect_bytes(&b, "abcd", 4);
  buf_free(&b);
}
END_TEST

START_TEST(test_growth_keeps_contents)
{
  /* Many small appends across several reallocations. */
  struct buf b;
  buf_init(&b, 100000);
  for (uint32_t i = 0; i < 10000; i++)
    ck_assert_int_eq(buf_append_u8(&b, (uint8_t)(i * 7)), 0);
  ck_assert_uint_eq(b.len, 10000);
  for (uint32_t i = 0; i < 10000; i++)
    ck_assert_uint_eq(b.p[i], (uint8_t)(i * 7));
  ck_assert_uint_le(b.cap, b.max);
  buf_free(&b);
}
END_TEST

START_TEST(test_be_appends)
{
  struct buf b;
  buf_init(&b, 64);
  ck_assert_int_eq(buf_append_u8(&b, 0xab), 0);
  ck_assert_int_eq(buf_append_u16be(&b, 0x0102), 0);
  ck_assert_int_eq(buf_append_u32be(&b, 0x03040506u), 0);
  ck_assert_int_eq(buf_append_u64be(&b, 0x0708090a0b0c0d0eull), 0);
  ck_assert_int_eq(buf_append_u32be(&b, 0xffffffffu), 0);
  const uint8_t want[] = { 0xab, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                           0x0b, 0x0c, 0x0d, 0x0e, 0xff, 0xff, 0xff, 0xff };
  expect_bytes(&b, want, sizeof want);
  buf_free(&b);
}
END_TEST

START_TEST(test_put_get_be)
{
  uint8_t t[8];
  put_u16be(t, 0xbeef);
  ck_assert_uint_eq(t[0], 0xbe);
  ck_assert_uint_eq(t[1], 0xef);
  ck_assert_uint_eq(get_u16be(t), 0xbeef);

  put_u32be(t, 0x80000001u);
  const uint8_t w32[] = { 0x80, 0x00, 0x00, 0x01 };
  ck_assert(memcmp(t, w32, 4) == 0);
  ck_assert_uint_eq(get_u32be(t), 0x80000001u);

  put_u64be(t, 0xfedcba9876543210ull);
  const uint8_t w64[] = { 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10 };
  ck_assert(memcmp(t, w64, 8) == 0);
  ck_assert(get_u64be(t) == 0xfedcba9876543210ull);

  /* High bits must not sign-extend. */
  const uint8_t ff[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  ck_assert_uint_eq(get_u16be(ff), 0xffff);
  ck_assert_uint_eq(get_u32be(ff), 0xffffffffu);
  ck_assert(get_u64be(ff) == UINT64_MAX);
}
END_TEST

START_TEST(test_printf)
{
  struct buf b;
  buf_init(&b, 64);
  ck_assert_int_eq(buf_printf(&b, "%d-%s", 42, "x"), 0);
  expect_bytes(&b, "42-x", 4);
  ck_assert_int_eq(buf_printf(&b, "|%05u|", 7u), 0);
  expect_bytes(&b, "42-x|00007|", 11);
  /* An empty format adds nothing. */
  ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
  expect_bytes(&b, "42-x|00007|", 11);
  buf_free(&b);
}
END_TEST

START_TEST(test_printf_empty_fresh)
{
  /* An empty result into a buffer that has no memory yet (p == NULL):
   * succeeds, adds nothing, and the buffer stays usable. */
  struct buf b;
  buf_init(&b, 16);
  ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_int_eq(buf_printf(&b, "%d", 5), 0);
  expect_bytes(&b, "5", 1);
  /* Again after a steal has reset p to NULL. */
  char *s = buf_steal_cstr(&b, NULL);
  ck_assert_str_eq(s, "5");
  free(s);
  ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
  ck_assert_uint_eq(b.len, 0);
  buf_free(&b);
  /* And with max 0. */
  buf_init(&b, 0);
  ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_int_eq(buf_printf(&b, "x"), UV_E2BIG);
  buf_free(&b);
}
END_TEST

START_TEST(test_printf_past_max_unchanged)
{
  struct buf b;
  buf_init(&b, 10);
  ck_assert_int_eq(buf_append_str(&b, "abcdef"), 0);
  ck_assert_int_eq(buf_printf(&b, "%s", "12345"), UV_E2BIG);
  expect_bytes(&b, "abcdef", 6);
  ck_assert_int_eq(buf_printf(&b, "%d", 123), 0);
  expect_bytes(&b, "abcdef123", 9);
  buf_free(&b);
}
END_TEST

START_TEST(test_printf_fills_to_max)
{
  /* The contents (without a NUL) may reach max, as buf_append allows:
   * "hello" fits a buffer of max 5 whichever way it is appended. */
  struct buf b;
  buf_init(&b, 5);
  ck_assert_int_eq(buf_append_str(&b, "hello"), 0);
  expect_bytes(&b, "hello", 5);
  buf_free(&b);

  buf_init(&b, 5);
  ck_assert_int_eq(buf_printf(&b, "%s", "hello"), 0);
  expect_bytes(&b, "hello", 5);
  buf_free(&b);

  buf_init(&b, 5);
  ck_assert_int_eq(buf_append_str(&b, "he"), 0);
  ck_assert_int_eq(buf_printf(&b, "l%co", 'l'), 0);
  expect_bytes(&b, "hello", 5);
  /* And the NUL steal adds is still there to be added. */
  size_t n = 0;
  char *s = buf_steal_cstr(&b, &n);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(n, 5);
  ck_assert_str_eq(s, "hello");
  free(s);
}
END_TEST

START_TEST(test_consume)
{
  struct buf b;
  buf_init(&b, 64);
  ck_assert_int_eq(buf_append_str(&b, "abcdefgh"), 0);
  buf_consume(&b, 0);
  expect_bytes(&b, "abcdefgh", 8);
  buf_consume(&b, 3);
  expect_bytes(&b, "defgh", 5);
  buf_consume(&b, 4);
  expect_bytes(&b, "h", 1);
  buf_consume(&b, 1);
  ck_assert_uint_eq(b.len, 0);
  /* Appending after a consume goes after what is left. */
  ck_assert_int_eq(buf_append_str(&b, "xy"), 0);
  ck_assert_int_eq(buf_append_str(&b, "z"), 0);
  buf_consume(&b, 1);
  expect_bytes(&b, "yz", 2);
  /* Consumed room is reusable up to max. */
  buf_consume(&b, 2);
  char big[64];
  memset(big, 'q', sizeof big);
  ck_assert_int_eq(buf_append(&b, big, sizeof big), 0);
  expect_bytes(&b, big, sizeof big);
  /* Consuming more than there is empties it. */
  buf_consume(&b, 1000);
  ck_assert_uint_eq(b.len, 0);
  buf_free(&b);
}
END_TEST

START_TEST(test_steal_cstr)
{
  struct buf b;
  buf_init(&b, 32);
  ck_assert_int_eq(buf_append_str(&b, "announce"), 0);
  size_t n = 99;
  char *s = buf_steal_cstr(&b, &n);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(n, 8);
  ck_assert_str_eq(s, "announce");
  ck_assert_uint_eq(strlen(s), 8);
  /* b is reset to empty, keeps its max, and is usable again. */
  ck_assert_ptr_null(b.p);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_uint_eq(b.max, 32);
  ck_assert_int_eq(buf_append_str(&b, "again"), 0);
  expect_bytes(&b, "again", 5);
  char *t = buf_steal_cstr(&b, NULL);
  ck_assert_str_eq(t, "again");
  free(s);
  free(t);

  /* Stealing an untouched buffer gives "". */
  size_t m = 99;
  char *e = buf_steal_cstr(&b, &m);
  ck_assert_ptr_nonnull(e);
  ck_assert_uint_eq(m, 0);
  ck_assert_str_eq(e, "");
  free(e);
  buf_free(&b);
}
END_TEST

START_TEST(test_steal_cstr_at_max)
{
  /* Full buffer: the NUL still has room. */
  struct buf b;
  buf_init(&b, 4);
  ck_assert_int_eq(buf_append(&b, "wxyz", 4), 0);
  size_t n = 0;
  char *s = buf_steal_cstr(&b, &n);
  ck_assert_uint_eq(n, 4);
  ck_assert_str_eq(s, "wxyz");
  free(s);
}
END_TEST

START_TEST(test_cursor_reads)
{
  const uint8_t in[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                         0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11 };
  struct cur c = cur_make(in, sizeof in);
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  ck_assert_int_eq(cur_u8(&c, &u8), 0);
  ck_assert_uint_eq(u8, 0x01);
  ck_assert_int_eq(cur_u16be(&c, &u16), 0);
  ck_assert_uint_eq(u16, 0x0203);
  ck_assert_int_eq(cur_u32be(&c, &u32), 0);
  ck_assert_uint_eq(u32, 0x04050607u);
  ck_assert_int_eq(cur_u64be(&c, &u64), 0);
  ck_assert(u64 == 0x08090a0b0c0d0e0full);
  ck_assert_uint_eq(c.len, 2);
  ck_assert_ptr_eq(c.p, in + 15);
  uint8_t two[2];
  ck_assert_int_eq(cur_copy(&c, two, 2), 0);
  ck_assert_uint_eq(two[0], 0x10);
  ck_assert_uint_eq(two[1], 0x11);
  ck_assert_uint_eq(c.len, 0);
  ck_assert_ptr_eq(c.p, in + sizeof in);
  /* Nothing left: everything fails, a zero-byte take still succeeds. */
  ck_assert_int_eq(cur_u8(&c, &u8), -1);
  const uint8_t *q = NULL;
  ck_assert_int_eq(cur_take(&c, 0, &q), 0);
  ck_assert_ptr_eq(q, in + sizeof in);
}
END_TEST

START_TEST(test_cursor_short_reads_do_not_move)
{
  const uint8_t in[7] = { 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11 };
  for (size_t len = 0; len <= sizeof in; len++) {
    struct cur c = cur_make(in, len);
    uint8_t u8 = 0x5a;
    uint16_t u16 = 0x5a5a;
    uint32_t u32 = 0x5a5a5a5a;
    uint64_t u64 = 0x5a5a5a5a5a5a5a5aull;
    uint8_t dst[8];
    memset(dst, 0x5a, sizeof dst);
    const uint8_t *taken = (const uint8_t *)"sentinel";

    if (len < 1) {
      ck_assert_int_eq(cur_u8(&c, &u8), -1);
      ck_assert_uint_eq(u8, 0x5a);
    }
    if (len < 2) {
      ck_assert_int_eq(cur_u16be(&c, &u16), -1);
      ck_assert_uint_eq(u16, 0x5a5a);
    }
    if (len < 4) {
      ck_assert_int_eq(cur_u32be(&c, &u32), -1);
      ck_assert_uint_eq(u32, 0x5a5a5a5a);
    }
    ck_assert_int_eq(cur_u64be(&c, &u64), -1); /* len <= 7 always */
    ck_assert(u64 == 0x5a5a5a5a5a5a5a5aull);
    ck_assert_int_eq(cur_copy(&c, dst, len + 1), -1);
    for (size_t i = 0; i < sizeof dst; i++)
      ck_assert_uint_eq(dst[i], 0x5a);
    ck_assert_int_eq(cur_take(&c, len + 1, &taken), -1);
    ck_assert_str_eq((const char *)taken, "sentinel");
    ck_assert_int_eq(cur_take(&c, SIZE_MAX, &taken), -1);
    /* Still where it started. */
    ck_assert_ptr_eq(c.p, in);
    ck_assert_uint_eq(c.len, len);
    /* And the whole remainder can still be taken. */
    ck_assert_int_eq(cur_take(&c, len, &taken), 0);
    ck_assert_ptr_eq(taken, in);
    ck_assert_uint_eq(c.len, 0);
  }
}
END_TEST

Suite *buf_suite(void)
{
  Suite *s = suite_create("buf");
  TCase *tc = tcase_create("buf");
  tcase_add_test(tc, test_init_empty);
  tcase_add_test(tc, test_append_to_max);
  tcase_add_test(tc, test_append_past_max_unchanged);
  tcase_add_test(tc, test_max_zero);
  tcase_add_test(tc, test_reserve_overflow);
  tcase_add_test(tc, test_reserve_size_max_unchanged);
  tcase_add_test(tc, test_growth_keeps_contents);
  tcase_add_test(tc, test_be_appends);
  tcase_add_test(tc, test_put_get_be);
  tcase_add_test(tc, test_printf);
  tcase_add_test(tc, test_printf_empty_fresh);
  tcase_add_test(tc, test_printf_past_max_unchanged);
  tcase_add_test(tc, test_printf_fills_to_max);
  tcase_add_test(tc, test_consume);
  tcase_add_test(tc, test_steal_cstr);
  tcase_add_test(tc, test_steal_cstr_at_max);
  suite_add_tcase(s, tc);
  TCase *tcur = tcase_create("cur");
  tcase_add_test(tcur, test_cursor_reads);
  tcase_add_test(tcur, test_cursor_short_reads_do_not_move);
  suite_add_tcase(s, tcur);
  return s;
}
