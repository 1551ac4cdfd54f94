/* test_settings.c -- daemon settings: defaults from the environment, strict JSON parse, overrides, output round trip. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/ratelimit.h"
#include "peer/settings.h"

static const struct settings_env env_home = { .home = "/home/ann" };

static void defaults(struct settings *s)
{
  ck_assert_int_eq(settings_defaults(s, &env_home), 0);
}

/* Parses a NUL-terminated text onto s. */
static int parse(struct settings *s, const char *text, char *err)
{
  err[0] = 0;
  return settings_parse_json(text, strlen(text), s, err, SHOAL_ERRLEN);
}

/* The whole struct as text, for equality checks (caller frees). */
static char *text_of(const struct settings *s)
{
  char *t = settings_to_text(s);
  ck_assert_ptr_nonnull(t);
  return t;
}

START_TEST(test_defaults)
{
  struct settings s;
  ck_assert_int_eq(settings_defaults(&s, &env_home), 0);
  ck_assert_str_eq(s.download_dir, "/home/ann/.local/share/shoal/downloads");
  ck_assert_uint_eq(s.listen_port, 6881);
  ck_assert_str_eq(s.bind, "");
  ck_assert_uint_eq(s.rpc_port, SETTINGS_DEFAULT_RPC_PORT);
  ck_assert_uint_eq(s.rpc_port, 6880);
  ck_assert_str_eq(s.rpc_bind, "127.0.0.1");
  ck_assert_uint_eq(s.num_rpc_host_names, 0);
  ck_assert_uint_eq(s.max_active_downloads, 5);
  ck_assert_uint_eq(s.max_active_seeds, 10);
  ck_assert_uint_eq(s.max_peers_global, 500);
  ck_assert_uint_eq(s.max_peers_per_torrent, 50);
  ck_assert_uint_eq(s.upload_slots, 4);
  ck_assert_uint_eq(s.rate_down, 0);
  ck_assert_uint_eq(s.rate_up, 0);
  ck_assert(s.seed_ratio_limit == 0.0);
  ck_assert_uint_eq(s.seed_idle_limit_s, 0);
  ck_assert_str_eq(s.watch_dir, "");
  ck_assert_str_eq(s.log_file, "");
  ck_assert_int_eq(s.log_level, LOG_LEVEL_WARN);
  ck_assert_uint_eq(s.resume_save_interval_s, 60);
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(settings_check(&s, err, sizeof err), 0);
  settings_free(&s);
  settings_free(&s);   /* twice is safe */
  ck_assert_ptr_null(s.download_dir);
}
END_TEST

START_TEST(test_defaults_env)
{
  struct settings s;
  struct settings_env e = { .home = "/home/ann", .xdg_data_home = "/data/x" };
  ck_assert_int_eq(settings_defaults(&s, &e), 0);
  ck_assert_str_eq(s.download_dir, "/data/x/shoal/downloads");
  settings_free(&s);
  e.xdg_data_home = "/data/x///";       /* trailing slashes dropped */
  ck_assert_int_eq(settings_defaults(&s, &e), 0);
  ck_assert_str_eq(s.download_dir, "/data/x/shoal/downloads");
  settings_free(&s);
  e.xdg_data_home = "relative/dir";     /* ignored per XDG: HOME used */
  ck_assert_int_eq(settings_defaults(&s, &e), 0);
  ck_assert_str_eq(s.download_dir, "/home/ann/.local/share/shoal/downloads");
  settings_free(&s);
  e.xdg_data_home = "";
  e.home = "/";
  ck_assert_int_eq(settings_defaults(&s, &e), 0);
  ck_assert_str_eq(s.download_dir, "/.local/share/shoal/downloads");
  settings_free(&s);
  /* Nothing usable: ENOENT, download_dir empty, the rest set; check says so. */
  static const char *bad_homes[] = { NULL, "", "home/ann", "/home/\xff\xfe", "/home/a\nb" };
  for (size_t i = 0; i < sizeof bad_homes / sizeof bad_homes[0]; i++) {
    e.home = bad_homes[i];
    e.xdg_data_home = NULL;
    ck_assert_int_eq(settings_defaults(&s, &e), UV_ENOENT);
    ck_assert_str_eq(s.download_dir, "");
    ck_assert_uint_eq(s.rpc_port, 6880);
    ck_assert_str_eq(s.rpc_bind, "127.0.0.1");
    char err[SHOAL_ERRLEN];
    ck_assert_int_eq(settings_check(&s, err, sizeof err), UV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "download_dir"));
    settings_free(&s);
  }
  ck_assert_int_eq(settings_defaults(&s, NULL), UV_ENOENT);
  settings_free(&s);
  /* A HOME so long the path would pass the limit. */
  char *longhome = malloc(SETTINGS_MAX_STR + 2);
  longhome[0] = '/';
  memset(longhome + 1, 'h', SETTINGS_MAX_STR);
  longhome[SETTINGS_MAX_STR + 1] = 0;
  e.home = longhome;
  ck_assert_int_eq(settings_defaults(&s, &e), UV_ENOENT);
  settings_free(&s);
  free(longhome);
}
END_TEST

START_TEST(test_config_dir)
{
  char *d;
  struct settings_env e = { .home = "/home/ann" };
  ck_assert_int_eq(settings_config_dir(&e, &d), 0);
  ck_assert_str_eq(d, "/home/ann/.config/shoal");
  free(d);
  e.xdg_config_home = "/cfg/";
  ck_assert_int_eq(settings_config_dir(&e, &d), 0);
  ck_assert_str_eq(d, "/cfg/shoal");
  free(d);
  e.xdg_config_home = "cfg";
  e.home = NULL;
  ck_assert_int_eq(settings_config_dir(&e, &d), UV_ENOENT);
  ck_assert_ptr_null(d);
}
END_TEST

START_TEST(test_env_from_process)
{
  setenv("HOME", "/home/proc", 1);
  setenv("XDG_DATA_HOME", "/xdg/data", 1);
  unsetenv("XDG_CONFIG_HOME");
  struct settings_env e;
  settings_env_from_process(&e);
  ck_assert_str_eq(e.home, "/home/proc");
  ck_assert_str_eq(e.xdg_data_home, "/xdg/data");
  ck_assert_ptr_null(e.xdg_config_home);
}
END_TEST

static const char full_json[] =
  "{\n"
  "  \"download_dir\": \"/srv/dl\",\n"
  "  \"listen_port\": 51413,\n"
  "  \"bind\": \"::\",\n"
  "  \"rpc_port\": 9999,\n"
  "  \"rpc_bind\": \"::1\",\n"
  "  \"rpc_host_names\": [\"box.lan\", \"Seed-1.example\"],\n"
  "  \"max_active_downloads\": 3,\n"
  "  \"max_active_seeds\": 0,\n"
  "  \"max_peers_global\": 1000,\n"
  "  \"max_peers_per_torrent\": 80,\n"
  "  \"upload_slots\": 8,\n"
  "  \"rate_down\": 1048576,\n"
  "  \"rate_up\": 65536,\n"
  "  \"seed_ratio_limit\": 1.5,\n"
  "  \"seed_idle_limit_s\": 3600,\n"
  "  \"watch_dir\": \"/srv/watch\",\n"
  "  \"log_file\": \"/var/log/shoal.log\",\n"
  "  \"log_level\": \"debug\",\n"
  "  \"resume_save_interval_s\": 300\n"
  "}\n";

START_TEST(test_parse_full)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  ck_assert_int_eq(parse(&s, full_json, err), 0);
  ck_assert_str_eq(s.download_dir, "/srv/dl");
  ck_assert_uint_eq(s.listen_port, 51413);
  ck_assert_str_eq(s.bind, "::");
  ck_assert_uint_eq(s.rpc_port, 9999);
  ck_assert_str_eq(s.rpc_bind, "::1");
  ck_assert_uint_eq(s.num_rpc_host_names, 2);
  ck_assert_str_eq(s.rpc_host_names[0], "box.lan");
  ck_assert_str_eq(s.rpc_host_names[1], "Seed-1.example");
  ck_assert_uint_eq(s.max_active_downloads, 3);
  ck_assert_uint_eq(s.max_active_seeds, 0);
  ck_assert_uint_eq(s.max_peers_global, 1000);
  ck_assert_uint_eq(s.max_peers_per_torrent, 80);
  ck_assert_uint_eq(s.upload_slots, 8);
  ck_assert_uint_eq(s.rate_down, 1048576);
  ck_assert_uint_eq(s.rate_up, 65536);
  ck_assert(s.seed_ratio_limit == 1.5);
  ck_assert_uint_eq(s.seed_idle_limit_s, 3600);
  ck_assert_str_eq(s.watch_dir, "/srv/watch");
  ck_assert_str_eq(s.log_file, "/var/log/shoal.log");
  ck_assert_int_eq(s.log_level, LOG_LEVEL_DEBUG);
  ck_assert_uint_eq(s.resume_save_interval_s, 300);
  ck_assert_int_eq(settings_check(&s, err, sizeof err), 0);
  /* Parsing again onto itself replaces every string without leaking. */
  ck_assert_int_eq(parse(&s, full_json, err), 0);
  ck_assert_str_eq(s.rpc_host_names[1], "Seed-1.example");
  settings_free(&s);
}
END_TEST

START_TEST(test_parse_partial)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  ck_assert_int_eq(parse(&s, "{}", err), 0);
  ck_assert_uint_eq(s.listen_port, 6881);
  ck_assert_int_eq(parse(&s, " { \"rate_up\" : 5000 , \"log_level\":\"trace\" } \n\t", err), 0);
  ck_assert_uint_eq(s.rate_up, 5000);
  ck_assert_int_eq(s.log_level, LOG_LEVEL_TRACE);
  ck_assert_uint_eq(s.listen_port, 6881);
  ck_assert_str_eq(s.download_dir, "/home/ann/.local/share/shoal/downloads");
  ck_assert_int_eq(parse(&s, "{\"rpc_host_names\": [\"a\"]}", err), 0);
  ck_assert_int_eq(parse(&s, "{\"rpc_host_names\": []}", err), 0);
  ck_assert_uint_eq(s.num_rpc_host_names, 0);
  /* Empty strings where they are allowed. */
  ck_assert_int_eq(parse(&s, "{\"bind\":\"\",\"watch_dir\":\"\",\"log_file\":\"\"}", err), 0);
  /* Integers where a ratio is wanted. */
  ck_assert_int_eq(parse(&s, "{\"seed_ratio_limit\": 2}", err), 0);
  ck_assert(s.seed_ratio_limit == 2.0);
  settings_free(&s);
}
END_TEST

START_TEST(test_unknown_key)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  char *before = text_of(&s);
  /* A valid key before the bad one must not be applied either. */
  ck_assert_int_eq(parse(&s, "{\"rate_up\": 7, \"rate_upp\": 7}", err), UV_EINVAL);
  ck_assert_str_eq(err, "unknown key \"rate_upp\"");
  char *after = text_of(&s);
  ck_assert_str_eq(before, after);
  free(after);
  /* Keys shown safely: control characters replaced, long keys cut. */
  ck_assert_int_eq(parse(&s, "{\"a\\nb\\\"c\": 1}", err), UV_EINVAL);
  ck_assert_str_eq(err, "unknown key \"a?b?c\"");
  char big[300];
  memset(big, 'k', sizeof big);
  memcpy(big, "{\"", 2);
  memcpy(big + 200, "\": 1}", 6);
  ck_assert_int_eq(parse(&s, big, err), UV_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "kkk..."));
  ck_assert_ptr_null(strchr(err, '\n'));
  /* Case matters. */
  ck_assert_int_eq(parse(&s, "{\"Listen_Port\": 1}", err), UV_EINVAL);
  after = text_of(&s);
  ck_assert_str_eq(before, after);
  free(after);
  free(before);
  settings_free(&s);
}
END_TEST

START_TEST(test_not_object_or_syntax)
{
  static const char *bad[] = {
    "", " ", "[]", "5", "\"x\"", "null", "true", "{", "}", "{\"rate_up\":}", "{\"rate_up\" 5}",
    "{\"rate_up\":5,}", "{rate_up:5}", "{\"rate_up\":5} x", "{\"rate_up\":5}{}", "{'rate_up':5}",
    "{\"rate_up\":05}", "{\"rate_up\":0x10}", "{\"download_dir\":\"/a\\u0000b\"}",
    "{\"rate_up\":5,\"rate_up\":6}",                      /* duplicate */
    "{\"download_dir\":\"/\xff\"}",                        /* not UTF-8 */
    "{\"download_dir\":\"/a\xc0\x80\"}",                   /* overlong NUL */
    "/* comment */ {}", "{\"rate_up\": NaN}", "{\"rate_up\": Infinity}",
  };
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  char *before = text_of(&s);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(parse(&s, bad[i], err) == UV_EINVAL, "accepted: %s", bad[i]);
    ck_assert_msg(err[0] != 0, "no reason for %s", bad[i]);
    ck_assert_ptr_null(strchr(err, '\n'));
  }
  char *after = text_of(&s);
  ck_assert_str_eq(before, after);
  free(after);
  free(before);
  /* Embedded NUL inside the input. */
  ck_assert_int_eq(settings_parse_json("{}\0{}", 5, &s, err, sizeof err), UV_EINVAL);
  settings_free(&s);
}
END_TEST

START_TEST(test_truncated_everywhere)
{
  /* Every prefix of a valid file is rejected (the whole is accepted), and
   * never changes the settings. */
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  char *before = text_of(&s);
  size_t n = strlen(full_json);
  size_t end = n;
  while (end > 0 && (full_json[end - 1] == '\n' || full_json[end - 1] == ' '))
    end--;
  for (size_t len = 0; len < end; len++) {
    int r = settings_parse_json(full_json, len, &s, err, sizeof err);
    ck_assert_msg(r == UV_EINVAL, "prefix %zu gave %d", len, r);
  }
  char *after = text_of(&s);
  ck_assert_str_eq(before, after);
  free(after);
  free(before);
  ck_assert_int_eq(settings_parse_json(full_json, end, &s, err, sizeof err), 0);
  settings_free(&s);
}
END_TEST

struct bad_case {
  const char *json;
  const char *key;     /* must be named in the reason */
  const char *allowed; /* and what is allowed */
};

START_TEST(test_bad_values)
{
  static const struct bad_case cases[] = {
    { "{\"download_dir\": \"relative/dir\"}", "download_dir", "absolute path" },
    { "{\"download_dir\": \"\"}", "download_dir", "absolute path" },
    { "{\"download_dir\": 5}", "download_dir", "absolute path" },
    { "{\"download_dir\": null}", "download_dir", "absolute path" },
    { "{\"download_dir\": [\"/a\"]}", "download_dir", "absolute path" },
    { "{\"download_dir\": \"/a\\nb\"}", "download_dir", "no control characters" },
    { "{\"download_dir\": \"/a\\u007fb\"}", "download_dir", "no control characters" },
    { "{\"listen_port\": 65536}", "listen_port", "0..65535" },
    { "{\"listen_port\": -1}", "listen_port", "0..65535" },
    { "{\"listen_port\": 1.5}", "listen_port", "0..65535" },
    { "{\"listen_port\": 1.0}", "listen_port", "0..65535" },
    { "{\"listen_port\": 1e3}", "listen_port", "0..65535" },
    { "{\"listen_port\": \"6881\"}", "listen_port", "0..65535" },
    { "{\"listen_port\": true}", "listen_port", "0..65535" },
    { "{\"listen_port\": null}", "listen_port", "0..65535" },
    { "{\"listen_port\": 99999999999999999999999}", NULL, NULL },  /* jansson: too big */
    { "{\"bind\": \"0.0.0.0.0\"}", "bind", "IPv4 or IPv6" },
    { "{\"bind\": \"localhost\"}", "bind", "IPv4 or IPv6" },
    { "{\"bind\": \" 1.2.3.4\"}", "bind", "IPv4 or IPv6" },
    { "{\"bind\": \"::1%eth0\"}", "bind", "IPv4 or IPv6" },
    { "{\"rpc_port\": 0}", "rpc_port", "1..65535" },
    { "{\"rpc_port\": 70000}", "rpc_port", "1..65535" },
    { "{\"rpc_bind\": \"\"}", "rpc_bind", "IPv4 or IPv6" },
    { "{\"rpc_bind\": 127}", "rpc_bind", "IPv4 or IPv6" },
    { "{\"rpc_host_names\": \"box\"}", "rpc_host_names", "array" },
    { "{\"rpc_host_names\": [\"\"]}", "rpc_host_names", "array" },
    { "{\"rpc_host_names\": [\"bad host\"]}", "rpc_host_names", "array" },
    { "{\"rpc_host_names\": [\"a/b\"]}", "rpc_host_names", "array" },
    { "{\"rpc_host_names\": [5]}", "rpc_host_names", "array" },
    { "{\"rpc_host_names\": [[\"a\"]]}", "rpc_host_names", "array" },
    { "{\"rpc_host_names\": {}}", "rpc_host_names", "array" },
    { "{\"max_active_downloads\": 0}", "max_active_downloads", "1..10000" },
    { "{\"max_active_downloads\": 10001}", "max_active_downloads", "1..10000" },
    { "{\"max_active_seeds\": -3}", "max_active_seeds", "0..10000" },
    { "{\"max_active_seeds\": 10001}", "max_active_seeds", "0..10000" },
    { "{\"max_peers_global\": 0}", "max_peers_global", "1..100000" },
    { "{\"max_peers_global\": 100001}", "max_peers_global", "1..100000" },
    { "{\"max_peers_per_torrent\": 0}", "max_peers_per_torrent", "1..10000" },
    { "{\"upload_slots\": 0}", "upload_slots", "1..1000" },
    { "{\"upload_slots\": 1001}", "upload_slots", "1..1000" },
    { "{\"rate_down\": -1}", "rate_down", "0..1099511627776" },
    { "{\"rate_down\": 1099511627777}", "rate_down", "0..1099511627776" },
    { "{\"rate_up\": 9223372036854775807}", "rate_up", "0..1099511627776" },
    { "{\"rate_up\": 100.5}", "rate_up", "0..1099511627776" },
    { "{\"seed_ratio_limit\": -0.5}", "seed_ratio_limit", "0..10000" },
    { "{\"seed_ratio_limit\": 10000.01}", "seed_ratio_limit", "0..10000" },
    { "{\"seed_ratio_limit\": 1e400}", NULL, NULL },    /* jansson: overflow */
    { "{\"seed_ratio_limit\": \"2\"}", "seed_ratio_limit", "0..10000" },
    { "{\"seed_idle_limit_s\": 2147483648}", "seed_idle_limit_s", "0..2147483647" },
    { "{\"watch_dir\": \"watch\"}", "watch_dir", "absolute path" },
    { "{\"log_file\": \"shoal.log\"}", "log_file", "absolute path" },
    { "{\"log_file\": false}", "log_file", "absolute path" },
    { "{\"log_level\": \"loud\"}", "log_level", "\"trace\"" },
    { "{\"log_level\": \"WARN\"}", "log_level", "\"trace\"" },
    { "{\"log_level\": \"\"}", "log_level", "\"trace\"" },
    { "{\"log_level\": 2}", "log_level", "\"trace\"" },
    { "{\"resume_save_interval_s\": 0}", "resume_save_interval_s", "1..86400" },
    { "{\"resume_save_interval_s\": 86401}", "resume_save_interval_s", "1..86400" },
  };
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  char *before = text_of(&s);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct bad_case *c = &cases[i];
    int r = parse(&s, c->json, err);
    ck_assert_msg(r == UV_EINVAL, "%s gave %d", c->json, r);
    if (c->key) {
      size_t kl = strlen(c->key);
      ck_assert_msg(strncmp(err, c->key, kl) == 0 && err[kl] == ':', "%s: reason \"%s\"", c->json, err);
      ck_assert_msg(strstr(err, c->allowed) != NULL, "%s: reason \"%s\"", c->json, err);
    }
    ck_assert_ptr_null(strchr(err, '\n'));
  }
  char *after = text_of(&s);
  ck_assert_str_eq(before, after);
  free(after);
  free(before);
  settings_free(&s);
}
END_TEST

START_TEST(test_bounds_accepted)
{
  static const char *ok[] = {
    "{\"listen_port\": 0}", "{\"listen_port\": 65535}", "{\"rpc_port\": 1}", "{\"rpc_port\": 65535}",
    "{\"max_active_downloads\": 1}", "{\"max_active_downloads\": 10000}",
    "{\"max_active_seeds\": 0}", "{\"max_active_seeds\": 10000}",
    "{\"max_peers_global\": 1}", "{\"max_peers_global\": 100000}",
    "{\"max_peers_per_torrent\": 1}", "{\"max_peers_per_torrent\": 10000}",
    "{\"upload_slots\": 1}", "{\"upload_slots\": 1000}",
    "{\"rate_down\": 0}", "{\"rate_down\": 1099511627776}", "{\"rate_up\": 1099511627776}",
    "{\"seed_ratio_limit\": 0}", "{\"seed_ratio_limit\": 0.0}", "{\"seed_ratio_limit\": 10000}",
    "{\"seed_ratio_limit\": 1e-3}", "{\"seed_idle_limit_s\": 2147483647}",
    "{\"resume_save_interval_s\": 1}", "{\"resume_save_interval_s\": 86400}",
    "{\"bind\": \"10.1.2.3\"}", "{\"bind\": \"fe80::1\"}", "{\"rpc_bind\": \"0.0.0.0\"}",
    "{\"rpc_host_names\": [\"[::1]\", \"my_host\", \"a.b.c\", \"x:1\"]}",
    "{\"download_dir\": \"/\"}", "{\"download_dir\": \"/m\\u00fcsic/\\u65e5\\u672c\"}",
    "{\"log_level\": \"error\"}", "{\"log_level\": \"info\"}",
  };
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    ck_assert_msg(parse(&s, ok[i], err) == 0, "%s: %s", ok[i], err);
  ck_assert_str_eq(s.download_dir, "/m\xc3\xbcsic/\xe6\x97\xa5\xe6\x9c\xac");
  ck_assert_int_eq(s.log_level, LOG_LEVEL_INFO);
  settings_free(&s);
}
END_TEST

START_TEST(test_string_limits)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  /* A path of exactly SETTINGS_MAX_STR bytes passes, one more fails. */
  size_t cap = SETTINGS_MAX_STR + 64;
  char *j = malloc(cap);
  for (int extra = 0; extra <= 1; extra++) {
    size_t plen = SETTINGS_MAX_STR + (size_t)extra;
    int o = snprintf(j, cap, "{\"download_dir\": \"/");
    memset(j + o, 'p', plen - 1);
    snprintf(j + o + plen - 1, cap - (size_t)o - plen + 1, "\"}");
    int r = parse(&s, j, err);
    ck_assert_int_eq(r, extra ? UV_EINVAL : 0);
    if (!extra)
      ck_assert_uint_eq(strlen(s.download_dir), SETTINGS_MAX_STR);
  }
  /* 64 host names pass, 65 fail; a name of 253 bytes passes, 254 fails. */
  struct buf_ { char *p; size_t n; } b = { malloc(2000), 0 };
  b.n = (size_t)snprintf(b.p, 2000, "{\"rpc_host_names\": [");
  for (int i = 0; i < 65; i++)
    b.n += (size_t)snprintf(b.p + b.n, 2000 - b.n, "%s\"h%d\"", i ? "," : "", i);
  snprintf(b.p + b.n, 2000 - b.n, "]}");
  ck_assert_int_eq(parse(&s, b.p, err), UV_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "at most 64"));
  char *cut = strstr(b.p, ",\"h64\"");
  strcpy(cut, "]}");
  ck_assert_int_eq(parse(&s, b.p, err), 0);
  ck_assert_uint_eq(s.num_rpc_host_names, 64);
  ck_assert_str_eq(s.rpc_host_names[63], "h63");
  for (int extra = 0; extra <= 1; extra++) {
    int o = snprintf(j, cap, "{\"rpc_host_names\": [\"");
    memset(j + o, 'a', 253 + (size_t)extra);
    snprintf(j + o + 253 + extra, cap - (size_t)o - 253 - (size_t)extra, "\"]}");
    ck_assert_int_eq(parse(&s, j, err), extra ? UV_EINVAL : 0);
  }
  free(b.p);
  free(j);
  settings_free(&s);
}
END_TEST

START_TEST(test_size_and_depth)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  /* Exactly the cap (padded with spaces) is read; one byte more is refused unread. */
  char *t = malloc(SETTINGS_MAX_TEXT + 1);
  memset(t, ' ', SETTINGS_MAX_TEXT + 1);
  memcpy(t, "{\"rate_up\": 1}", 14);
  ck_assert_int_eq(settings_parse_json(t, SETTINGS_MAX_TEXT, &s, err, sizeof err), 0);
  ck_assert_int_eq(settings_parse_json(t, SETTINGS_MAX_TEXT + 1, &s, err, sizeof err), SHOAL_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(err, "too large"));
  /* Deep nesting, as a whole document and as a value: an error, no crash. */
  memset(t, '[', SETTINGS_MAX_TEXT);
  ck_assert_int_eq(settings_parse_json(t, SETTINGS_MAX_TEXT, &s, err, sizeof err), UV_EINVAL);
  memcpy(t, "{\"rpc_host_names\":", 18);
  ck_assert_int_eq(settings_parse_json(t, SETTINGS_MAX_TEXT, &s, err, sizeof err), UV_EINVAL);
  memset(t, '{', SETTINGS_MAX_TEXT);
  ck_assert_int_eq(settings_parse_json(t, SETTINGS_MAX_TEXT, &s, err, sizeof err), UV_EINVAL);
  free(t);
  settings_free(&s);
}
END_TEST

START_TEST(test_round_trip)
{
  struct settings a, b;
  char err[SHOAL_ERRLEN];
  defaults(&a);
  ck_assert_int_eq(parse(&a, full_json, err), 0);
  char *ta = text_of(&a);
  ck_assert_uint_eq(ta[strlen(ta) - 1], '\n');
  /* Onto defaults from another environment: every field comes from the text. */
  struct settings_env e = { .home = "/elsewhere" };
  ck_assert_int_eq(settings_defaults(&b, &e), 0);
  ck_assert_int_eq(parse(&b, ta, err), 0);
  char *tb = text_of(&b);
  ck_assert_str_eq(ta, tb);
  ck_assert(b.seed_ratio_limit == 1.5);
  ck_assert_str_eq(b.rpc_host_names[0], "box.lan");
  /* The printed form is the documented one. */
  ck_assert_ptr_nonnull(strstr(ta, "\"seed_ratio_limit\": 1.5,"));
  ck_assert_ptr_nonnull(strstr(ta, "\"log_level\": \"debug\","));
  ck_assert_ptr_nonnull(strstr(ta, "\"rpc_port\": 9999,"));
  ck_assert(strstr(ta, "download_dir") < strstr(ta, "resume_save_interval_s"));
  free(ta);
  free(tb);
  settings_free(&b);
  /* Defaults round-trip too, and a ratio typed as 0.1 prints as 0.1. */
  settings_free(&a);
  defaults(&a);
  ck_assert_int_eq(parse(&a, "{\"seed_ratio_limit\": 0.1}", err), 0);
  ta = text_of(&a);
  ck_assert_ptr_nonnull(strstr(ta, "\"seed_ratio_limit\": 0.1,"));
  ck_assert_ptr_nonnull(strstr(ta, "\"rpc_host_names\": [],"));
  ck_assert_ptr_nonnull(strstr(ta, "\"rpc_port\": 6880,"));
  defaults(&b);
  ck_assert_int_eq(parse(&b, ta, err), 0);
  tb = text_of(&b);
  ck_assert_str_eq(ta, tb);
  free(ta);
  free(tb);
  settings_free(&a);
  settings_free(&b);
}
END_TEST

START_TEST(test_to_json)
{
  struct settings s;
  defaults(&s);
  json_t *o = settings_to_json(&s);
  ck_assert_ptr_nonnull(o);
  ck_assert_uint_eq(json_object_size(o), 19);
  ck_assert(json_is_integer(json_object_get(o, "listen_port")));
  ck_assert_int_eq(json_integer_value(json_object_get(o, "listen_port")), 6881);
  ck_assert(json_is_real(json_object_get(o, "seed_ratio_limit")));
  ck_assert(json_is_array(json_object_get(o, "rpc_host_names")));
  ck_assert_str_eq(json_string_value(json_object_get(o, "log_level")), "warn");
  ck_assert_str_eq(json_string_value(json_object_get(o, "rpc_bind")), "127.0.0.1");
  /* Every key it writes is one the parser takes back. */
  char err[SHOAL_ERRLEN];
  char *t = json_dumps(o, 0);
  ck_assert_int_eq(parse(&s, t, err), 0);
  free(t);
  json_decref(o);
  settings_free(&s);
}
END_TEST

START_TEST(test_overrides)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  ck_assert_int_eq(settings_apply_override(&s, "listen-port", "7000", err, sizeof err), 0);
  ck_assert_uint_eq(s.listen_port, 7000);
  ck_assert_int_eq(settings_apply_override(&s, "rate_up", "1048576", err, sizeof err), 0);
  ck_assert_uint_eq(s.rate_up, 1048576);
  ck_assert_int_eq(settings_apply_override(&s, "seed-ratio-limit", "1.25", err, sizeof err), 0);
  ck_assert(s.seed_ratio_limit == 1.25);
  ck_assert_int_eq(settings_apply_override(&s, "seed-ratio-limit", "3", err, sizeof err), 0);
  ck_assert(s.seed_ratio_limit == 3.0);
  ck_assert_int_eq(settings_apply_override(&s, "seed-ratio-limit", ".5", err, sizeof err), 0);
  ck_assert(s.seed_ratio_limit == 0.5);
  ck_assert_int_eq(settings_apply_override(&s, "rpc-host-names", "a.example,b", err, sizeof err), 0);
  ck_assert_uint_eq(s.num_rpc_host_names, 2);
  ck_assert_str_eq(s.rpc_host_names[1], "b");
  ck_assert_int_eq(settings_apply_override(&s, "rpc-host-names", "", err, sizeof err), 0);
  ck_assert_uint_eq(s.num_rpc_host_names, 0);
  ck_assert_int_eq(settings_apply_override(&s, "download-dir", "/mnt/x", err, sizeof err), 0);
  ck_assert_str_eq(s.download_dir, "/mnt/x");
  ck_assert_int_eq(settings_apply_override(&s, "log-level", "info", err, sizeof err), 0);
  ck_assert_int_eq(s.log_level, LOG_LEVEL_INFO);
  ck_assert_int_eq(settings_apply_override(&s, "bind", "", err, sizeof err), 0);
  ck_assert_int_eq(settings_apply_override(&s, "rpc_bind", "::1", err, sizeof err), 0);
  ck_assert_str_eq(s.rpc_bind, "::1");

  char *before = text_of(&s);
  static const char *const bad[][2] = {
    { "listen-port", "7x" }, { "listen-port", "-1" }, { "listen-port", "" }, { "listen-port", "+5" },
    { "listen-port", " 5" }, { "listen-port", "5 " }, { "listen-port", "70000" }, { "listen-port", "0x10" },
    { "rate-up", "99999999999999999999999" }, { "rate-up", "18446744073709551615" },
    { "rate-up", "9223372036854775808" }, { "rate-up", "1099511627777" },
    { "seed-ratio-limit", "1e3" }, { "seed-ratio-limit", "nan" }, { "seed-ratio-limit", "inf" },
    { "seed-ratio-limit", "1.2.3" }, { "seed-ratio-limit", "." }, { "seed-ratio-limit", "-1" },
    { "seed-ratio-limit", "10001" }, { "seed-ratio-limit", "" },
    { "rpc-host-names", "a,,b" }, { "rpc-host-names", "a," }, { "rpc-host-names", ",a" },
    { "rpc-host-names", "a b" },
    { "download-dir", "relative" }, { "download-dir", "" }, { "download-dir", "/a\tb" },
    { "download-dir", "/\xff" }, { "log-level", "loud" }, { "bind", "nowhere" },
    { "rpc-bind", "" }, { "max-active-downloads", "0" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    int r = settings_apply_override(&s, bad[i][0], bad[i][1], err, sizeof err);
    ck_assert_msg(r == UV_EINVAL, "%s=%s gave %d", bad[i][0], bad[i][1], r);
    /* The reason names the JSON key. */
    char key[64];
    snprintf(key, sizeof key, "%s", bad[i][0]);
    for (char *p = key; *p; p++)
      if (*p == '-')
        *p = '_';
    ck_assert_msg(strncmp(err, key, strlen(key)) == 0, "%s=%s: reason \"%s\"", bad[i][0], bad[i][1], err);
  }
  /* Unknown keys. */
  ck_assert_int_eq(settings_apply_override(&s, "no-such", "1", err, sizeof err), UV_EINVAL);
  ck_assert_str_eq(err, "unknown setting \"no-such\"");
  char longkey[200];
  memset(longkey, 'x', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = 0;
  ck_assert_int_eq(settings_apply_override(&s, longkey, "1", err, sizeof err), UV_EINVAL);
  ck_assert_int_eq(settings_apply_override(&s, "", "1", err, sizeof err), UV_EINVAL);
  char *after = text_of(&s);
  ck_assert_str_eq(before, after);
  free(before);
  free(after);
  settings_free(&s);
}
END_TEST

START_TEST(test_check)
{
  struct settings s;
  char err[SHOAL_ERRLEN];
  defaults(&s);
  ck_assert_int_eq(settings_check(&s, err, sizeof err), 0);
  ck_assert_int_eq(settings_apply_override(&s, "rpc-port", "6881", err, sizeof err), 0);
  ck_assert_int_eq(settings_check(&s, err, sizeof err), UV_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "listen_port"));
  ck_assert_ptr_nonnull(strstr(err, "rpc_port"));
  ck_assert_int_eq(settings_apply_override(&s, "listen-port", "0", err, sizeof err), 0);
  ck_assert_int_eq(settings_check(&s, err, sizeof err), 0);
  settings_free(&s);
}
END_TEST

START_TEST(test_copy)
{
  struct settings a, b;
  char err[SHOAL_ERRLEN];
  defaults(&a);
  ck_assert_int_eq(parse(&a, full_json, err), 0);
  ck_assert_int_eq(settings_copy(&b, &a), 0);
  ck_assert_ptr_ne(a.download_dir, b.download_dir);
  ck_assert_ptr_ne(a.rpc_host_names, b.rpc_host_names);
  ck_assert_ptr_ne(a.rpc_host_names[0], b.rpc_host_names[0]);
  char *ta = text_of(&a), *tb = text_of(&b);
  ck_assert_str_eq(ta, tb);
  free(ta);
  free(tb);
  settings_free(&a);
  ck_assert_str_eq(b.rpc_host_names[1], "Seed-1.example");   /* independent */
  settings_free(&b);
}
END_TEST

START_TEST(test_level_names)
{
  ck_assert_str_eq(settings_log_level_name(LOG_LEVEL_ERROR), "error");
  ck_assert_str_eq(settings_log_level_name(LOG_LEVEL_TRACE), "trace");
  ck_assert_str_eq(settings_log_level_name(-1), "warn");
  ck_assert_str_eq(settings_log_level_name(99), "warn");
}
END_TEST

Suite *settings_suite(void)
{
  Suite *s = suite_create("settings");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_defaults_env);
  tcase_add_test(tc, test_config_dir);
  tcase_add_test(tc, test_env_from_process);
  tcase_add_test(tc, test_parse_full);
  tcase_add_test(tc, test_parse_partial);
  tcase_add_test(tc, test_unknown_key);
  tcase_add_test(tc, test_not_object_or_syntax);
  tcase_add_test(tc, test_truncated_everywhere);
  tcase_add_test(tc, test_bad_values);
  tcase_add_test(tc, test_bounds_accepted);
  tcase_add_test(tc, test_string_limits);
  tcase_add_test(tc, test_size_and_depth);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_to_json);
  tcase_add_test(tc, test_overrides);
  tcase_add_test(tc, test_check);
  tcase_add_test(tc, test_copy);
  tcase_add_test(tc, test_level_names);
  suite_add_tcase(s, tc);
  return s;
}
