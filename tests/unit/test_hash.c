/* test_hash.c -- SHA-1 / SHA-256 against FIPS 180 test vectors, incremental hashing, hex and unhex. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

/* FIPS 180-2 appendix vectors. */
#define SHA1_ABC "a9993e364706816aba3e25717850c26c9cd0d89d"
#define SHA1_EMPTY "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define SHA1_448 "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
#define SHA1_MILLION_A "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

static void expect_hex(const uint8_t *d, size_t n, const char *want)
{
  char hex[2 * HASH_SHA256_LEN + 1];
  ck_assert_uint_le(n, HASH_SHA256_LEN);
  hash_hex(d, n, hex);
  ck_assert_str_eq(hex, want);
}

START_TEST(test_sha1_vectors)
{
  uint8_t d[HASH_SHA1_LEN];
  hash_sha1("abc", 3, d);
  expect_hex(d, sizeof d, SHA1_ABC);
  hash_sha1("", 0, d);
  expect_hex(d, sizeof d, SHA1_EMPTY);
  hash_sha1(MSG_448, strlen(MSG_448), d);
  expect_hex(d, sizeof d, SHA1_448);
  /* Raw bytes too, not only through hash_hex. */
  hash_sha1("abc", 3, d);
  const uint8_t want[HASH_SHA1_LEN] = { 0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e,
                                        0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d };
  ck_assert(memcmp(d, want, sizeof want) == 0);
}
END_TEST

START_TEST(test_sha256_vectors)
{
  uint8_t d[HASH_SHA256_LEN];
  hash_sha256("abc", 3, d);
  expect_hex(d, sizeof d, SHA256_ABC);
  hash_sha256("", 0, d);
  expect_hex(d, sizeof d, SHA256_EMPTY);
  hash_sha256(MSG_448, strlen(MSG_448), d);
  expect_hex(d, sizeof d, SHA256_448);
}
END_TEST

START_TEST(test_sha1_million_a_chunks)
{
  /* One million 'a', fed in chunks of sizes that cross the 64-byte block boundary in every way. */
  static const size_t chunks[] = { 1, 3, 63, 64, 65, 127, 1000, 4096, 7, 16384 };
  uint8_t a[16384];
  memset(a, 'a', sizeof a);
  for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
    struct hash_sha1_ctx c;
    ck_assert_int_eq(hash_sha1_init(&c), 0);
    size_t left = 1000000;
    while (left) {
      size_t n = left < chunks[k] ? left : chunks[k];
      hash_sha1_update(&c, a, n);
      left -= n;
    }
    uint8_t d[HASH_SHA1_LEN];
    hash_sha1_final(&c, d);
    ck_assert_ptr_null(c.md);
    expect_hex(d, sizeof d, SHA1_MILLION_A);
  }
}
END_TEST

START_TEST(test_sha1_million_a_mixed)
{
  /* Irregular chunk sizes, including empty updates. */
  uint8_t a[1000];
  memset(a, 'a', sizeof a);
  struct hash_sha1_ctx c;
  ck_assert_int_eq(hash_sha1_init(&c), 0);
  size_t left = 1000000;
  uint32_t x = 99;
  while (left) {
    x = x * 1664525u + 1013904223u;
    size_t n = (x >> 16) % (sizeof a + 1);
    if (n > left)
      n = left;
    hash_sha1_update(&c, a, n);
    left -= n;
  }
  uint8_t d[HASH_SHA1_LEN];
  hash_sha1_final(&c, d);
  expect_hex(d, sizeof d, SHA1_MILLION_A);

  /* One-shot of the whole million agrees. */
  uint8_t *big = malloc(1000000);
  ck_assert_ptr_nonnull(big);
  memset(big, 'a', 1000000);
  hash_sha1(big, 1000000, d);
  expect_hex(d, sizeof d, SHA1_MILLION_A);
  free(big);
}
END_TEST

START_TEST(test_sha1_incremental_matches_oneshot)
{
  /* Every split point of a 200-byte message gives the one-shot digest. */
  uint8_t m[200];
  for (size_t i = 0; i < sizeof m; i++)
    m[i] = (uint8_t)(i * 31 + 7);
  uint8_t want[HASH_SHA1_LEN];
  hash_sha1(m, sizeof m, want);
  for (size_t cut = 0; cut <= sizeof m; cut++) {
    struct hash_sha1_ctx c;
    ck_assert_int_eq(hash_sha1_init(&c), 0);
    hash_sha1_update(&c, m, cut);
    hash_sha1_update(&c, m + cut, sizeof m - cut);
    uint8_t d[HASH_SHA1_LEN];
    hash_sha1_final(&c, d);
    ck_assert(memcmp(d, want, sizeof d) == 0);
  }
  /* Incremental "abc" and empty. */
  struct hash_sha1_ctx c;
  uint8_t d[HASH_SHA1_LEN];
  ck_assert_int_eq(hash_sha1_init(&c), 0);
  hash_sha1_update(&c, "a", 1);
  hash_sha1_update(&c, "bc", 2);
  hash_sha1_final(&c, d);
  expect_hex(d, sizeof d, SHA1_ABC);
  ck_assert_int_eq(hash_sha1_init(&c), 0);
  hash_sha1_final(&c, d);
  expect_hex(d, sizeof d, SHA1_EMPTY);
}
END_TEST

START_TEST(test_sha1_abort)
{
  /* abort releases the context (leaks would show under ASan); a new one starts fresh. */
  struct hash_sha1_ctx c;
  ck_assert_int_eq(hash_sha1_init(&c), 0);
  hash_sha1_update(&c, "garbage", 7);
  hash_sha1_abort(&c);
  ck_assert_ptr_null(c.md);
  ck_assert_int_eq(hash_sha1_init(&c), 0);
  hash_sha1_update(&c, "abc", 3);
  uint8_t d[HASH_SHA1_LEN];
  hash_sha1_final(&c, d);
  expect_hex(d, sizeof d, SHA1_ABC);
}
END_TEST

START_TEST(test_hex)
{
  const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
  char out[2 * sizeof in + 1];
  memset(out, 'Z', sizeof out);
  hash_hex(in, sizeof in, out);
  ck_assert_str_eq(out, "00017f80abff");
  /* Zero bytes: just the NUL. */
  char e[1] = { 'Z' };
  hash_hex(in, 0, e);
  ck_assert_int_eq(e[0], '\0');
}
END_TEST

START_TEST(test_hex_roundtrip)
{
  uint8_t in[256], back[256];
  char hex[2 * 256 + 1];
  for (int i = 0; i < 256; i++)
    in[i] = (uint8_t)i;
  hash_hex(in, sizeof in, hex);
  ck_assert_uint_eq(strlen(hex), 512);
  for (size_t i = 0; i < 512; i++)
    ck_assert(strchr("0123456789abcdef", hex[i]) != NULL);
  memset(back, 0, sizeof back);
  ck_assert_int_eq(hash_unhex(hex, 512, back, sizeof back), 0);
  ck_assert(memcmp(in, back, sizeof in) == 0);

  /* Upper case is accepted too. */
  uint8_t u[4];
  ck_assert_int_eq(hash_unhex("DEADbeef", 8, u, 4), 0);
  ck_assert_uint_eq(u[0], 0xde);
  ck_assert_uint_eq(u[1], 0xad);
  ck_assert_uint_eq(u[2], 0xbe);
  ck_assert_uint_eq(u[3], 0xef);

  /* A 40-digit infohash. */
  uint8_t ih[HASH_SHA1_LEN];
  ck_assert_int_eq(hash_unhex(SHA1_ABC, 40, ih, sizeof ih), 0);
  expect_hex(ih, sizeof ih, SHA1_ABC);

  /* Zero bytes from zero digits. */
  ck_assert_int_eq(hash_unhex("", 0, u, 0), 0);
}
END_TEST

START_TEST(test_unhex_bad)
{
  uint8_t out[4];
  /* Odd length, and any length other than exactly 2n. */
  ck_assert_int_eq(hash_unhex("abc", 3, out, 2), -1);
  ck_assert_int_eq(hash_unhex("abc", 3, out, 1), -1);
  ck_assert_int_eq(hash_unhex("a", 1, out, 1), -1);
  ck_assert_int_eq(hash_unhex("abcdef", 6, out, 2), -1);
  ck_assert_int_eq(hash_unhex("ab", 2, out, 2), -1);
  ck_assert_int_eq(hash_unhex("", 0, out, 1), -1);
  /* Non-hex characters in either nibble, at every position, including the
   * neighbours of the digit ranges in ASCII and a NUL inside the span. */
  static const char bad[] = { 'g', 'G', 'x', ' ', '/', ':', '@', '[', '`', '{', '\0', '-', '+', (char)0x80, (char)0xff };
  for (size_t b = 0; b < sizeof bad; b++) {
    for (size_t pos = 0; pos < 8; pos++) {
      char s[8];
      memcpy(s, "0123abcd", 8);
      s[pos] = bad[b];
      ck_assert_msg(hash_unhex(s, 8, out, 4) == -1, "char 0x%02x at %zu accepted", (unsigned char)bad[b], pos);
    }
  }
  /* The valid neighbours still parse. */
  ck_assert_int_eq(hash_unhex("09afAF00", 8, out, 4), 0);
  ck_assert_uint_eq(out[0], 0x09);
  ck_assert_uint_eq(out[1], 0xaf);
  ck_assert_uint_eq(out[2], 0xaf);
  ck_assert_uint_eq(out[3], 0x00);
}
END_TEST

Suite *hash_suite(void)
{
  Suite *s = suite_create("hash");
  TCase *tc = tcase_create("digest");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_sha1_vectors);
  tcase_add_test(tc, test_sha256_vectors);
  tcase_add_test(tc, test_sha1_million_a_chunks);
  tcase_add_test(tc, test_sha1_million_a_mixed);
  tcase_add_test(tc, test_sha1_incremental_matches_oneshot);
  tcase_add_test(tc, test_sha1_abort);
  suite_add_tcase(s, tc);
  TCase *th = tcase_create("hex");
  tcase_add_test(th, test_hex);
  tcase_add_test(th, test_hex_roundtrip);
  tcase_add_test(th, test_unhex_bad);
  suite_add_tcase(s, th);
  return s;
}
