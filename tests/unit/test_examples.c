/* test_examples.c -- the files in examples/ stay usable: settings.json parses and is complete, the unit and script are sane. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "peer/settings.h"

/* The whole file (relative to the repository root, where the runner runs)
 * as a NUL-terminated string; *len its size.  Caller frees. */
static char *slurp(const char *path, size_t *len)
{
  FILE *fp = fopen(path, "rb");
  ck_assert_msg(fp != NULL, "cannot open %s (the unit tests run from the repository root)", path);
  size_t cap = 1 << 20;
  char *text = malloc(cap + 1);
  ck_assert_ptr_nonnull(text);
  size_t n = fread(text, 1, cap, fp);
  ck_assert_msg(feof(fp), "%s is larger than %zu bytes", path, cap);
  fclose(fp);
  text[n] = 0;
  if (len)
    *len = n;
  return text;
}

START_TEST(test_settings_example)
{
  size_t len;
  char *text = slurp("examples/settings.json", &len);
  static const struct settings_env env = { .home = "/home/test" };
  struct settings s;
  ck_assert_int_eq(settings_defaults(&s, &env), 0);
  char err[SHOAL_ERRLEN] = "";
  int r = settings_parse_json(text, len, &s, err, sizeof err);
  ck_assert_msg(r == 0, "examples/settings.json: %s", err);
  ck_assert_msg(settings_check(&s, err, sizeof err) == 0, "examples/settings.json: %s", err);
  ck_assert(s.download_dir[0] == '/');
  ck_assert_uint_eq(s.rpc_port, SETTINGS_DEFAULT_RPC_PORT);
  ck_assert_str_eq(s.rpc_bind, "127.0.0.1");
  ck_assert_int_eq(s.log_level, LOG_LEVEL_INFO);
  ck_assert(s.seed_ratio_limit == 2.0);

  /* Every key of struct settings is in the example, and nothing else. */
  json_error_t je;
  json_t *example = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  ck_assert_ptr_nonnull(example);
  json_t *all = settings_to_json(&s);
  ck_assert_ptr_nonnull(all);
  const char *key;
  json_t *v;
  json_object_foreach(all, key, v) {
    ck_assert_msg(json_object_get(example, key) != NULL, "examples/settings.json lacks \"%s\"", key);
  }
  ck_assert_uint_eq(json_object_size(example), json_object_size(all));
  ck_assert_uint_eq(json_object_size(all), 19);
  /* And it reads back to the same settings. */
  struct settings again;
  ck_assert_int_eq(settings_defaults(&again, &env), 0);
  char *out = settings_to_text(&s);
  ck_assert_ptr_nonnull(out);
  ck_assert_int_eq(settings_parse_json(out, strlen(out), &again, err, sizeof err), 0);
  char *out2 = settings_to_text(&again);
  ck_assert_str_eq(out, out2);
  free(out);
  free(out2);
  settings_free(&again);
  json_decref(all);
  json_decref(example);
  settings_free(&s);
  free(text);
}
END_TEST

START_TEST(test_service_example)
{
  char *text = slurp("examples/shoal.service", NULL);
  static const char *const lines[] = {
    "\nType=notify\n", "\nExecStart=/usr/local/bin/shoal daemon --foreground\n",
    "\nExecReload=/bin/kill -HUP $MAINPID\n", "\nRestart=on-failure\n", "\nNoNewPrivileges=yes\n",
    "\nProtectSystem=strict\n", "\nLimitNOFILE=65536\n", "\nWantedBy=default.target\n",
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    ck_assert_msg(strstr(text, lines[i]) != NULL, "examples/shoal.service lacks %s", lines[i] + 1);
  free(text);
}
END_TEST

START_TEST(test_daemon_script)
{
  char *text = slurp("examples/daemon.sh", NULL);
  ck_assert(strncmp(text, "#!/bin/bash\n", 12) == 0 || strncmp(text, "#!/usr/bin/env bash\n", 20) == 0);
  ck_assert_ptr_nonnull(strstr(text, "set -euo pipefail"));
  ck_assert_ptr_nonnull(strstr(text, "trap "));
  struct stat st;
  ck_assert_int_eq(stat("examples/daemon.sh", &st), 0);
  ck_assert_msg(st.st_mode & S_IXUSR, "examples/daemon.sh is not executable");
  free(text);
}
END_TEST

Suite *examples_suite(void)
{
  Suite *s = suite_create("examples");
  TCase *tc = tcase_create("examples");
  tcase_add_test(tc, test_settings_example);
  tcase_add_test(tc, test_service_example);
  tcase_add_test(tc, test_daemon_script);
  suite_add_tcase(s, tc);
  return s;
}
