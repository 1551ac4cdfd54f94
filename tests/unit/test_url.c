/* test_url.c -- percent-encoding, percent-decoding and query-string iteration. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/url.h"

static long dec(const char *s, uint8_t *out, size_t cap)
{
  return url_decode(s, strlen(s), out, cap);
}

START_TEST(test_encode)
{
  struct buf b;
  buf_init(&b, 1024);
  const uint8_t in[] = { 'A', 'z', '0', '9', '-', '.', '_', '~', ' ', '/', '%', '+', 0x00, 0xff, 0x12, 0xab };
  ck_assert_int_eq(url_encode(&b, in, sizeof in), 0);
  const char *want = "Az09-._~%20%2F%25%2B%00%FF%12%AB";
  ck_assert_uint_eq(b.len, strlen(want));
  ck_assert(memcmp(b.p, want, b.len) == 0);
  /* Appends to what is there; an empty input adds nothing. */
  ck_assert_int_eq(url_encode(&b, (const uint8_t *)"x", 1), 0);
  ck_assert_int_eq(url_encode(&b, NULL, 0), 0);
  ck_assert_uint_eq(b.len, strlen(want) + 1);
  ck_assert_int_eq(b.p[b.len - 1], 'x');
  buf_free(&b);
}
END_TEST

START_TEST(test_encode_max)
{
  /* 20 bytes of 0xff encode to 60 characters: a 59-byte buffer refuses and stays empty. */
  uint8_t h[20];
  memset(h, 0xff, sizeof h);
  struct buf b;
  buf_init(&b, 59);
  ck_assert_int_eq(url_encode(&b, h, sizeof h), UV_E2BIG);
  ck_assert_uint_eq(b.len, 0);
  buf_free(&b);
  buf_init(&b, 60);
  ck_assert_int_eq(url_encode(&b, h, sizeof h), 0);
  ck_assert_uint_eq(b.len, 60);
  buf_free(&b);
}
END_TEST

START_TEST(test_roundtrip_all_bytes)
{
  uint8_t in[256], out[256];
  for (int i = 0; i < 256; i++)
    in[i] = (uint8_t)i;
  struct buf b;
  buf_init(&b, 4096);
  ck_assert_int_eq(url_encode(&b, in, sizeof in), 0);
  ck_assert_int_eq(url_decode((const char *)b.p, b.len, out, sizeof out), 256);
  ck_assert(memcmp(in, out, sizeof in) == 0);
  buf_free(&b);
}
END_TEST

START_TEST(test_decode)
{
  uint8_t out[64];
  ck_assert_int_eq(dec("", out, sizeof out), 0);
  ck_assert_int_eq(dec("abc", out, sizeof out), 3);
  ck_assert(memcmp(out, "abc", 3) == 0);
  ck_assert_int_eq(dec("%41%62%2f%2F", out, sizeof out), 4);
  ck_assert(memcmp(out, "Ab//", 4) == 0);
  ck_assert_int_eq(dec("a+b", out, sizeof out), 3); /* '+' is a space in a query */
  ck_assert(memcmp(out, "a b", 3) == 0);
  ck_assert_int_eq(dec("a%2Bb", out, sizeof out), 3); /* a real '+' is escaped */
  ck_assert(memcmp(out, "a+b", 3) == 0);
  ck_assert_int_eq(dec("%00x", out, sizeof out), 2);
  ck_assert_int_eq(out[0], 0);
  ck_assert_int_eq(dec("%ff", out, sizeof out), 1);
  ck_assert_int_eq(out[0], 0xff);
  /* Raw high bytes are copied as they are. */
  ck_assert_int_eq(dec("\xc3\xa9", out, sizeof out), 2);
  ck_assert_int_eq(out[0], 0xc3);
}
END_TEST

START_TEST(test_decode_bad)
{
  uint8_t out[64];
  ck_assert_int_eq(dec("%", out, sizeof out), -1);
  ck_assert_int_eq(dec("%4", out, sizeof out), -1);
  ck_assert_int_eq(dec("ab%4", out, sizeof out), -1);
  ck_assert_int_eq(dec("%G1", out, sizeof out), -1);
  ck_assert_int_eq(dec("%1G", out, sizeof out), -1);
  ck_assert_int_eq(dec("%%41", out, sizeof out), -1);
  ck_assert_int_eq(dec("% 1", out, sizeof out), -1);
  ck_assert_int_eq(dec("%-1", out, sizeof out), -1);
  /* An embedded NUL in the length-delimited input is not an escape. */
  ck_assert_int_eq(url_decode("%4\0", 3, out, sizeof out), -1);
}
END_TEST

START_TEST(test_decode_cap)
{
  uint8_t out[4];
  memset(out, 0x55, sizeof out);
  ck_assert_int_eq(dec("abc", out, 3), 3);
  ck_assert_int_eq(dec("abcd", out, 3), -1);
  ck_assert_int_eq(out[3], 0x55); /* never writes past cap */
  ck_assert_int_eq(dec("ab%41", out, 3), 3);
  ck_assert_int_eq(dec("ab%41%42", out, 3), -1);
  ck_assert_int_eq(dec("", out, 0), 0);
  ck_assert_int_eq(dec("a", out, 0), -1);
  /* Exactly 20 bytes from 60 characters. */
  char h[61];
  for (int i = 0; i < 20; i++)
    memcpy(h + 3 * i, "%AB", 3);
  h[60] = '\0';
  uint8_t ih[20];
  ck_assert_int_eq(dec(h, ih, 20), 20);
  ck_assert_int_eq(ih[19], 0xab);
  ck_assert_int_eq(dec(h, ih, 19), -1);
}
END_TEST

struct kv { const char *k, *v; };

/* Iterates q and compares the pairs with want[0..n). */
static void expect_pairs(const char *q, const struct kv *want, size_t n)
{
  struct url_query_iter it = { q, strlen(q) };
  const char *k, *v;
  size_t kl, vl, i = 0;
  while (url_query_next(&it, &k, &kl, &v, &vl)) {
    ck_assert_msg(i < n, "'%s': more than %zu pairs", q, n);
    ck_assert_msg(kl == strlen(want[i].k) && memcmp(k, want[i].k, kl) == 0,
                  "'%s' pair %zu: key '%.*s' != '%s'", q, i, (int)kl, k, want[i].k);
    ck_assert_msg(vl == strlen(want[i].v) && memcmp(v, want[i].v, vl) == 0,
                  "'%s' pair %zu: value '%.*s' != '%s'", q, i, (int)vl, v, want[i].v);
    i++;
  }
  ck_assert_msg(i == n, "'%s': %zu pairs, want %zu", q, i, n);
  /* Stays at the end. */
  ck_assert_int_eq(url_query_next(&it, &k, &kl, &v, &vl), 0);
}

START_TEST(test_query)
{
  expect_pairs("", NULL, 0);
  expect_pairs("&", NULL, 0);
  expect_pairs("&&&", NULL, 0);
  const struct kv a[] = { { "a", "1" }, { "b", "2" } };
  expect_pairs("a=1&b=2", a, 2);
  expect_pairs("&&a=1&&b=2&", a, 2);
  const struct kv b[] = { { "a", "" }, { "b", "" }, { "c", "x=y" } };
  expect_pairs("a&b=&c=x=y", b, 3);
  const struct kv c[] = { { "", "v" }, { "k", "%41+" } };
  expect_pairs("=v&k=%41+", c, 2);
  const struct kv d[] = { { "info_hash", "%12%34" }, { "info_hash", "ab" } };
  expect_pairs("info_hash=%12%34&info_hash=ab", d, 2);
}
END_TEST

START_TEST(test_query_bounded)
{
  /* The iterator never reads past len, even without a terminator. */
  char q[8];
  memcpy(q, "a=1&b=22", 8);
  struct url_query_iter it = { q, 5 }; /* "a=1&b" */
  const char *k, *v;
  size_t kl, vl;
  ck_assert_int_eq(url_query_next(&it, &k, &kl, &v, &vl), 1);
  ck_assert_uint_eq(kl, 1);
  ck_assert_uint_eq(vl, 1);
  ck_assert_int_eq(url_query_next(&it, &k, &kl, &v, &vl), 1);
  ck_assert_uint_eq(kl, 1);
  ck_assert_int_eq(k[0], 'b');
  ck_assert_uint_eq(vl, 0);
  ck_assert_int_eq(url_query_next(&it, &k, &kl, &v, &vl), 0);
  struct url_query_iter empty = { NULL, 0 };
  ck_assert_int_eq(url_query_next(&empty, &k, &kl, &v, &vl), 0);
}
END_TEST

Suite *url_suite(void)
{
  Suite *s = suite_create("url");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_encode);
  tcase_add_test(tc, test_encode_max);
  tcase_add_test(tc, test_roundtrip_all_bytes);
  tcase_add_test(tc, test_decode);
  tcase_add_test(tc, test_decode_bad);
  tcase_add_test(tc, test_decode_cap);
  tcase_add_test(tc, test_query);
  tcase_add_test(tc, test_query_bounded);
  suite_add_tcase(s, tc);
  return s;
}
