/* test_bencode.c -- the bencode decoder's rules and the encoder's output. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/bencode.h"
#include "common/err.h"

static int dec(const char *s, struct bencode_doc *d, char *err)
{
  return bencode_decode(d, (const uint8_t *)s, strlen(s), NULL, err, SHOAL_ERRLEN);
}

static void expect_bad(const char *s, const char *why)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN] = "";
  int r = dec(s, &d, err);
  ck_assert_msg(r == SHOAL_EBENCODE, "'%s' should fail (%s), got %d", s, why, r);
  ck_assert_msg(strstr(err, why) != NULL, "'%s': message '%s' lacks '%s'", s, err, why);
}

START_TEST(test_scalars)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  int64_t v;
  ck_assert_int_eq(dec("i42e", &d, err), 0);
  ck_assert_int_eq(bencode_get_int(&d, 0, &v), 0);
  ck_assert_int_eq(v, 42);
  bencode_free(&d);
  ck_assert_int_eq(dec("i-9223372036854775808e", &d, err), 0);
  ck_assert_int_eq(bencode_get_int(&d, 0, &v), 0);
  ck_assert(v == INT64_MIN);
  bencode_free(&d);
  ck_assert_int_eq(dec("i0e", &d, err), 0);
  bencode_free(&d);
  ck_assert_int_eq(dec("4:spam", &d, err), 0);
  ck_assert(bencode_str_eq(&d, 0, "spam"));
  ck_assert_int_eq(d.tok[0].raw_len, 6);
  bencode_free(&d);
  ck_assert_int_eq(dec("0:", &d, err), 0);
  ck_assert(bencode_str_eq(&d, 0, ""));
  bencode_free(&d);
}
END_TEST

START_TEST(test_malformed)
{
  expect_bad("", "empty input");
  expect_bad("i01e", "invalid integer");
  expect_bad("i-0e", "invalid integer");
  expect_bad("i-e", "invalid integer");
  expect_bad("ie", "invalid integer");
  expect_bad("i12", "invalid integer");
  expect_bad("i9223372036854775808e", "invalid integer");
  expect_bad("i1.5e", "invalid integer");
  expect_bad("03:abc", "leading zero");
  expect_bad("5:abc", "longer than the input");
  expect_bad("99999999999999999999999:x", "too large");
  expect_bad("3abc", "invalid string length");
  expect_bad("l", "unexpected end");
  expect_bad("li1e", "unexpected end");
  expect_bad("d3:foo", "unexpected end");
  expect_bad("d3:fooe", "without a value");
  expect_bad("di1ei2ee", "not a string");
  expect_bad("dlei1ee", "not a string");
  expect_bad("e", "unexpected 'e'");
  expect_bad("i1ei2e", "trailing data");
  expect_bad("4:spamx", "trailing data");
  expect_bad("x", "unexpected byte");
  expect_bad("d1:ai1e1:ai2ee", "duplicate");
  expect_bad("d1:bi1e1:ai2e1:bi3ee", "duplicate");
}
END_TEST

START_TEST(test_nesting)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  /* a list nested 10,000 deep: refused without recursion */
  size_t n = 10000;
  char *s = malloc(2 * n + 1);
  memset(s, 'l', n);
  memset(s + n, 'e', n);
  s[2 * n] = 0;
  ck_assert_int_eq(dec(s, &d, err), SHOAL_EBENCODE);
  ck_assert(strstr(err, "too deep") != NULL);
  /* exactly at the limit is fine */
  struct bencode_limits lim = bencode_default_limits;
  lim.max_depth = 64;
  ck_assert_int_eq(bencode_decode(&d, (uint8_t *)s + n - 64, 128, &lim, err, sizeof err), 0);
  ck_assert_int_eq(d.ntok, 64);
  bencode_free(&d);
  free(s);
}
END_TEST

START_TEST(test_token_limit)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  struct bencode_limits lim = bencode_default_limits;
  lim.max_tokens = 3;
  const char *s = "li1ei2ei3ee";
  ck_assert_int_eq(bencode_decode(&d, (const uint8_t *)s, strlen(s), &lim, err, sizeof err), SHOAL_ETOOBIG);
  lim.max_tokens = 4;
  ck_assert_int_eq(bencode_decode(&d, (const uint8_t *)s, strlen(s), &lim, err, sizeof err), 0);
  bencode_free(&d);
}
END_TEST

START_TEST(test_navigation)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  const char *s = "d1:ali1ei2eld1:xi7eeee1:b3:hey1:cdee";
  ck_assert_int_eq(dec(s, &d, err), 0);
  ck_assert_int_eq(d.tok[0].type, BENCODE_DICT);
  ck_assert_int_eq(d.tok[0].count, 3);
  ck_assert_int_eq(d.tok[0].raw_len, strlen(s));
  int a = bencode_dict_get_type(&d, 0, "a", BENCODE_LIST);
  ck_assert_int_ge(a, 0);
  ck_assert_int_eq(d.tok[a].count, 3);
  int64_t v, sum = 0;
  int n = 0;
  for (int e = bencode_first(&d, a); e >= 0; e = bencode_next(&d, a, e)) {
    if (bencode_get_int(&d, e, &v) == 0)
      sum += v;
    n++;
  }
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(sum, 3);
  int inner = bencode_next(&d, a, bencode_next(&d, a, bencode_first(&d, a)));
  ck_assert_int_eq(d.tok[inner].type, BENCODE_LIST);
  int x = bencode_dict_get(&d, bencode_first(&d, inner), "x");
  ck_assert_int_eq(bencode_get_int(&d, x, &v), 0);
  ck_assert_int_eq(v, 7);
  ck_assert(bencode_str_eq(&d, bencode_dict_get(&d, 0, "b"), "hey"));
  int c = bencode_dict_get_type(&d, 0, "c", BENCODE_DICT);
  ck_assert_int_ge(c, 0);
  ck_assert_int_eq(bencode_first(&d, c), -1);
  ck_assert_int_eq(bencode_dict_get(&d, 0, "zz"), -1);
  ck_assert_int_eq(bencode_dict_get_type(&d, 0, "b", BENCODE_INT), -1);
  ck_assert_int_eq(bencode_get_int(&d, -1, &v), -1);
  /* the raw span of a nested value */
  int bv = bencode_dict_get(&d, 0, "a");
  ck_assert_int_eq(memcmp(s + d.tok[bv].raw_off, "li1ei2eld1:xi7eeee", d.tok[bv].raw_len), 0);
  bencode_free(&d);
}
END_TEST

START_TEST(test_sorted_keys)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  const char *unsorted = "d1:bi1e1:ai2ee";
  ck_assert_int_eq(dec(unsorted, &d, err), 0);  /* lenient by default */
  bencode_free(&d);
  struct bencode_limits lim = bencode_default_limits;
  lim.require_sorted = true;
  ck_assert_int_eq(bencode_decode(&d, (const uint8_t *)unsorted, strlen(unsorted), &lim, err, sizeof err),
                   SHOAL_EBENCODE);
  ck_assert(strstr(err, "not sorted") != NULL);
  const char *sorted = "d1:ai1e2:aai2e1:bi3ee";
  ck_assert_int_eq(bencode_decode(&d, (const uint8_t *)sorted, strlen(sorted), &lim, err, sizeof err), 0);
  bencode_free(&d);
}
END_TEST

START_TEST(test_trailing)
{
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  struct bencode_limits lim = bencode_default_limits;
  lim.allow_trailing = true;
  const char *s = "d8:msg_typei1e5:piecei0eeRAWDATA";
  ck_assert_int_eq(bencode_decode(&d, (const uint8_t *)s, strlen(s), &lim, err, sizeof err), 0);
  ck_assert_int_eq(d.used, strlen(s) - 7);
  bencode_free(&d);
}
END_TEST

START_TEST(test_encode_roundtrip)
{
  struct buf b;
  buf_init(&b, 4096);
  ck_assert_int_eq(bencode_put_dict(&b), 0);
  bencode_put_kv_int(&b, "a", -5);
  bencode_put_cstr(&b, "b");
  bencode_put_list(&b);
  bencode_put_str(&b, "\0x", 2);
  bencode_put_int(&b, 0);
  bencode_put_end(&b);
  bencode_put_kv_cstr(&b, "c", "text");
  bencode_put_end(&b);
  const char want[] = "d1:ai-5e1:bl2:\0xi0ee1:c4:texte";
  ck_assert_int_eq(b.len, sizeof want - 1);
  ck_assert_int_eq(memcmp(b.p, want, b.len), 0);
  struct bencode_doc d;
  char err[SHOAL_ERRLEN];
  struct bencode_limits lim = bencode_default_limits;
  lim.require_sorted = true;
  ck_assert_int_eq(bencode_decode(&d, b.p, b.len, &lim, err, sizeof err), 0);
  const uint8_t *p;
  size_t n;
  int l = bencode_dict_get(&d, 0, "b");
  ck_assert_int_eq(bencode_get_str(&d, bencode_first(&d, l), &p, &n), 0);
  ck_assert_int_eq(n, 2);
  ck_assert_int_eq(p[0], 0);
  bencode_free(&d);
  buf_free(&b);
  /* the encoder honours the buffer's maximum */
  buf_init(&b, 4);
  ck_assert_int_ne(bencode_put_cstr(&b, "hello"), 0);
  buf_free(&b);
}
END_TEST

/* Random bytes never crash the decoder and never yield a doc without a root. */
START_TEST(test_random_inputs)
{
  unsigned seed = 12345;
  uint8_t in[64];
  static const char alphabet[] = "ilde0123456789:-x";
  for (int iter = 0; iter < 200000; iter++) {
    size_t n = (size_t)(rand_r(&seed) % sizeof in) + 1;
    for (size_t i = 0; i < n; i++)
      in[i] = (uint8_t)alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
    struct bencode_doc d;
    char err[SHOAL_ERRLEN];
    if (bencode_decode(&d, in, n, NULL, err, sizeof err) == 0) {
      ck_assert_int_ge(d.ntok, 1);
      ck_assert_int_eq(d.tok[0].raw_len, n);
      ck_assert_int_eq(d.tok[0].next, d.ntok);
      bencode_free(&d);
    }
  }
}
END_TEST

Suite *bencode_suite(void)
{
  Suite *s = suite_create("bencode");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_scalars);
  tcase_add_test(tc, test_malformed);
  tcase_add_test(tc, test_nesting);
  tcase_add_test(tc, test_token_limit);
  tcase_add_test(tc, test_navigation);
  tcase_add_test(tc, test_sorted_keys);
  tcase_add_test(tc, test_trailing);
  tcase_add_test(tc, test_encode_roundtrip);
  tcase_add_test(tc, test_random_inputs);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
