/* test_utf8.c -- strict UTF-8 sequences: every refused form named in utf8.h. */
#include <check.h>
#include <string.h>

#include "common/utf8.h"

static bool ok(const char *s) { return utf8_valid((const uint8_t *)s, strlen(s)); }

START_TEST(test_valid)
{
  ck_assert(ok(""));
  ck_assert(ok("plain ascii"));
  ck_assert(ok("caf\xc3\xa9"));                 /* U+00E9 */
  ck_assert(ok("\xe2\x82\xac"));                /* U+20AC */
  ck_assert(ok("\xf0\x9f\x90\x9f"));            /* U+1F41F */
  ck_assert(ok("\xf4\x8f\xbf\xbf"));            /* U+10FFFF, the last one */
  uint32_t cp = 0;
  ck_assert_uint_eq(utf8_seq((const uint8_t *)"\xe2\x82\xac", 3, &cp), 3);
  ck_assert_uint_eq(cp, 0x20ac);
}
END_TEST

START_TEST(test_refused)
{
  ck_assert(!ok("\xc0\xaf"));                   /* overlong '/' */
  ck_assert(!ok("\xe0\x80\xaf"));               /* overlong, 3 bytes */
  ck_assert(!ok("\xed\xa0\x80"));               /* surrogate U+D800 */
  ck_assert(!ok("\xf4\x90\x80\x80"));           /* U+110000 */
  ck_assert(!ok("\xf8\x88\x80\x80\x80"));       /* 5-byte form */
  ck_assert(!ok("\x80"));                       /* lone continuation */
  ck_assert(!ok("ab\xc3"));                     /* truncated */
  ck_assert(!ok("\xe2\x28\xa1"));               /* bad continuation */
  uint32_t cp;
  ck_assert_uint_eq(utf8_seq((const uint8_t *)"x", 0, &cp), 0);
}
END_TEST

Suite *utf8_suite(void)
{
  Suite *s = suite_create("utf8");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_valid);
  tcase_add_test(tc, test_refused);
  suite_add_tcase(s, tc);
  return s;
}
