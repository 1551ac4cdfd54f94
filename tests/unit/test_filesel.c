/* test_filesel.c -- file index lists ("0,3-5"): what is taken, what is refused, and bounded work. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/filesel.h"

static int parse(const char *list, uint8_t *sel, uint32_t n, char *err)
{
  memset(sel, 0, n);
  return filesel_parse(list, sel, n, err, SHOAL_ERRLEN);
}

START_TEST(test_lists)
{
  uint8_t sel[8];
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(parse("0,3-5", sel, 8, err), 0);
  static const uint8_t want[8] = { 1, 0, 0, 1, 1, 1, 0, 0 };
  ck_assert(memcmp(sel, want, 8) == 0);
  ck_assert_int_eq(parse("7", sel, 8, err), 0);
  ck_assert_uint_eq(sel[7], 1);
  ck_assert_uint_eq(sel[6], 0);
  ck_assert_int_eq(parse("2-2,1-3,3", sel, 8, err), 0);   /* overlaps: a union */
  static const uint8_t want2[8] = { 0, 1, 1, 1, 0, 0, 0, 0 };
  ck_assert(memcmp(sel, want2, 8) == 0);
  /* entries already set stay set */
  memset(sel, 0, sizeof sel);
  sel[0] = 1;
  ck_assert_int_eq(filesel_parse("5", sel, 8, err, sizeof err), 0);
  ck_assert_uint_eq(sel[0], 1);
  ck_assert_uint_eq(sel[5], 1);
}
END_TEST

START_TEST(test_refused)
{
  uint8_t sel[8];
  char err[SHOAL_ERRLEN];
  static const char *const bad[] = { "x", "-1", "+1", " 1", "1, 2", "1- 2", "5-3", "1;2", "1-", "3-x", "1,,2" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(parse(bad[i], sel, 8, err) == -1, "accepted '%s'", bad[i]);
    ck_assert_msg(strstr(err, "bad file list") != NULL, "'%s': %s", bad[i], err);
  }
  ck_assert_int_eq(parse("8", sel, 8, err), -1);
  ck_assert_str_eq(err, "file index 8 is out of range (the torrent has 8 files, 0 to 7)");
  ck_assert_int_eq(parse("2-9", sel, 8, err), -1);
  ck_assert(strstr(err, "file index 9") != NULL);
  ck_assert_int_eq(parse("0", sel, 0, err), -1);
  ck_assert_str_eq(err, "file index 0 is out of range (the torrent has no files)");
  ck_assert_int_eq(parse("99999999999999999999999", sel, 8, err), -1);   /* overflow */
}
END_TEST

/* A hostile list repeating a wide range many times is still one pass. */
START_TEST(test_many_ranges)
{
  enum { NF = 100000, REPS = 200000 };
  const char *item = "0-99999,";
  size_t il = strlen(item);
  char *list = malloc(il * REPS + 2);
  ck_assert_ptr_nonnull(list);
  for (size_t i = 0; i < REPS; i++)
    memcpy(list + i * il, item, il);
  strcpy(list + il * REPS, "7");
  uint8_t *sel = calloc(NF, 1);
  ck_assert_ptr_nonnull(sel);
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(filesel_parse(list, sel, NF, err, sizeof err), 0);
  size_t n = 0;
  for (size_t i = 0; i < NF; i++)
    n += sel[i];
  ck_assert_uint_eq(n, NF);
  free(sel);
  free(list);
}
END_TEST

Suite *filesel_suite(void)
{
  Suite *s = suite_create("filesel");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_lists);
  tcase_add_test(tc, test_refused);
  tcase_add_test(tc, test_many_ranges);
  suite_add_tcase(s, tc);
  return s;
}
