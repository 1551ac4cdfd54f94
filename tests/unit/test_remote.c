/* test_remote.c -- `shoal remote`: rate parsing, sizes, sanitizing, endpoint and index lists, output tables, command line. */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "peer/remote-int.h"
#include "peer/remote.h"
#include "peer/rpc.h"

/* ---- rates and sizes ---- */

static uint64_t rate_ok(const char *s)
{
  uint64_t v = 12345;
  ck_assert_msg(remote_parse_rate(s, &v) == 0, "'%s' refused", s);
  return v;
}

static void rate_bad(const char *s)
{
  uint64_t v = 12345;
  ck_assert_msg(remote_parse_rate(s, &v) == UV_EINVAL, "'%s' accepted", s ? s : "(null)");
  ck_assert_uint_eq(v, 12345);   /* untouched */
}

START_TEST(test_rate_valid)
{
  ck_assert_uint_eq(rate_ok("0"), 0);
  ck_assert_uint_eq(rate_ok("500000"), 500000);
  ck_assert_uint_eq(rate_ok("500k"), 500 * 1024);
  ck_assert_uint_eq(rate_ok("500K"), 500 * 1024);
  ck_assert_uint_eq(rate_ok("1.5M"), 1572864);
  ck_assert_uint_eq(rate_ok("1.5m"), 1572864);
  ck_assert_uint_eq(rate_ok("2g"), 2147483648u);
  ck_assert_uint_eq(rate_ok("2G"), 2147483648u);
  ck_assert_uint_eq(rate_ok("100B"), 100);
  ck_assert_uint_eq(rate_ok("100b"), 100);
  ck_assert_uint_eq(rate_ok("100/s"), 100);
  ck_assert_uint_eq(rate_ok("100B/s"), 100);
  ck_assert_uint_eq(rate_ok("10KB"), 10240);
  ck_assert_uint_eq(rate_ok("10kb/s"), 10240);
  ck_assert_uint_eq(rate_ok("1.5MiB/s"), 1572864);
  ck_assert_uint_eq(rate_ok("1.5mib/S"), 1572864);
  ck_assert_uint_eq(rate_ok("3KiB"), 3072);
  ck_assert_uint_eq(rate_ok("2k/s"), 2048);
  ck_assert_uint_eq(rate_ok("0.5k"), 512);
  ck_assert_uint_eq(rate_ok("1.5"), 1);               /* fractions of a byte are dropped */
  ck_assert_uint_eq(rate_ok("0k"), 0);
  ck_assert_uint_eq(rate_ok("007"), 7);
  ck_assert_uint_eq(rate_ok("1.0000000001k"), 1024);  /* digits past the ninth are ignored */
  ck_assert_uint_eq(rate_ok("1.999999999999k"), 2047);
  /* the limit, 2^40, in several spellings */
  ck_assert_uint_eq(rate_ok("1099511627776"), 1ull << 40);
  ck_assert_uint_eq(rate_ok("1024G"), 1ull << 40);
  ck_assert_uint_eq(rate_ok("1048576M"), 1ull << 40);
  ck_assert_uint_eq(rate_ok("1023.5G"), (1ull << 40) - (1ull << 29));
}
END_TEST

START_TEST(test_rate_invalid)
{
  rate_bad(NULL);
  rate_bad("");                     /* empty */
  rate_bad("k");
  rate_bad("M");
  rate_bad("-1");                   /* negative */
  rate_bad("-0");
  rate_bad("+1");
  rate_bad(" 1");
  rate_bad("1 ");
  rate_bad("1 k");
  rate_bad(".5");
  rate_bad("1.");
  rate_bad("1.k");
  rate_bad("1..5");
  rate_bad("1.5.5");
  rate_bad("1e3");
  rate_bad("0x10");
  rate_bad("abc");
  rate_bad("12abc");
  rate_bad("1t");                   /* no tera */
  rate_bad("1kk");
  rate_bad("1Mi");                  /* "i" needs the B */
  rate_bad("5iB");                  /* "i" needs a unit */
  rate_bad("1KiB/");
  rate_bad("1/s/s");
  rate_bad("1/m");
  rate_bad("1s");
  rate_bad("1BB");
  rate_bad("unlimited");
  /* above 2^40, and overflows of 64 bits */
  rate_bad("1099511627777");
  rate_bad("1025G");
  rate_bad("1024.001G");
  rate_bad("1048577M");
  rate_bad("18446744073709551616");
  rate_bad("99999999999999999999999999999999");
  rate_bad("18446744073709551615k");
  rate_bad("17179869184G");         /* 2^34 * 2^30 = 2^64: wraps to 0 without the check */
}
END_TEST

static const char *size_of(uint64_t n)
{
  static char out[32];
  memset(out, 'x', sizeof out);
  remote_format_size(n, out, sizeof out);
  return out;
}

START_TEST(test_format_size)
{
  ck_assert_str_eq(size_of(0), "0 B");
  ck_assert_str_eq(size_of(1), "1 B");
  ck_assert_str_eq(size_of(1023), "1023 B");
  ck_assert_str_eq(size_of(1024), "1.0 KiB");
  ck_assert_str_eq(size_of(1536), "1.5 KiB");
  ck_assert_str_eq(size_of(12u << 20), "12.0 MiB");
  ck_assert_str_eq(size_of(1048575), "1.0 MiB");        /* not "1024.0 KiB" */
  ck_assert_str_eq(size_of(1048524), "1023.9 KiB");
  ck_assert_str_eq(size_of(3ull << 30), "3.0 GiB");
  ck_assert_str_eq(size_of(5ull << 40), "5.0 TiB");
  ck_assert_str_eq(size_of(1ull << 50), "1.0 PiB");
  ck_assert_str_eq(size_of(UINT64_MAX), "16.0 EiB");
  char small[4];
  remote_format_size(1536, small, sizeof small);
  ck_assert_str_eq(small, "1.5");                       /* truncated, terminated */
  char none[2] = { 'q', 'q' };
  remote_format_size(1536, none, 0);
  ck_assert_int_eq(none[0], 'q');                      /* len 0: nothing written */
  remote_format_size(1536, NULL, 10);                  /* no crash */
}
END_TEST

static const char *dur(uint64_t s)
{
  static char out[64];
  remote__format_duration(s, out, sizeof out);
  return out;
}

START_TEST(test_duration)
{
  ck_assert_str_eq(dur(0), "0s");
  ck_assert_str_eq(dur(59), "59s");
  ck_assert_str_eq(dur(60), "1m 0s");
  ck_assert_str_eq(dur(184), "3m 4s");
  ck_assert_str_eq(dur(3600), "1h 0m 0s");
  ck_assert_str_eq(dur(7384), "2h 3m 4s");
  ck_assert_str_eq(dur(93784), "1d 2h 3m 4s");
  ck_assert_str_eq(dur(86400), "1d 0h 0m 0s");
  ck_assert_str_eq(dur(UINT64_MAX), "213503982334601d 7h 0m 15s");
  char small[3];
  remote__format_duration(93784, small, sizeof small);
  ck_assert_str_eq(small, "1d");
}
END_TEST

/* ---- terminal safety ---- */

static const char *clean(const char *s, size_t outlen)
{
  static char out[256];
  ck_assert_uint_le(outlen, sizeof out);
  size_t n = remote__sanitize(s, out, outlen);
  ck_assert_uint_eq(n, strlen(out));
  return out;
}

START_TEST(test_sanitize)
{
  ck_assert_str_eq(clean("plain name.iso", 256), "plain name.iso");
  ck_assert_str_eq(clean("", 256), "");
  ck_assert_str_eq(clean(NULL, 256), "");
  ck_assert_str_eq(clean("a\x1b[31mb", 256), "a?[31mb");          /* ESC */
  ck_assert_str_eq(clean("bell\x07\r\n\t", 256), "bell????");
  ck_assert_str_eq(clean("del\x7f", 256), "del?");
  ck_assert_str_eq(clean("c1\xc2\x9b" "2J", 256), "c1?2J");       /* U+009B CSI as UTF-8 */
  ck_assert_str_eq(clean("raw\x9b" "2J", 256), "raw?2J");         /* a lone 8-bit CSI byte */
  ck_assert_str_eq(clean("bad\xff\xfe", 256), "bad??");
  ck_assert_str_eq(clean("cut\xe2\x82", 256), "cut??");           /* truncated sequence */
  ck_assert_str_eq(clean("over\xc0\xaf", 256), "over??");         /* overlong '/' */
  ck_assert_str_eq(clean("sur\xed\xa0\x80", 256), "sur???");      /* surrogate */
  ck_assert_str_eq(clean("exe\xe2\x80\xaegpj.exe", 256), "exe?gpj.exe");  /* U+202E RLO */
  ck_assert_str_eq(clean("iso\xe2\x81\xa6x", 256), "iso?x");      /* U+2066 */
  ck_assert_str_eq(clean("caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x8e\xb5", 256),
                   "caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x8e\xb5");    /* UTF-8 kept */
  /* bounded output: never a split character, always terminated */
  ck_assert_str_eq(clean("abcdef", 4), "abc");
  ck_assert_str_eq(clean("a\xc3\xa9", 3), "a");
  ck_assert_str_eq(clean("a\xc3\xa9", 4), "a\xc3\xa9");
  ck_assert_str_eq(clean("\x1b\x1b\x1b", 3), "??");
  ck_assert_str_eq(clean("abc", 1), "");
  char z[1] = { 'q' };
  ck_assert_uint_eq(remote__sanitize("abc", z, 0), 0);
  ck_assert_int_eq(z[0], 'q');

  ck_assert(remote__unsafe_cp(0));
  ck_assert(remote__unsafe_cp(0x1f));
  ck_assert(!remote__unsafe_cp(' '));
  ck_assert(!remote__unsafe_cp('~'));
  ck_assert(remote__unsafe_cp(0x7f));
  ck_assert(remote__unsafe_cp(0x80));
  ck_assert(remote__unsafe_cp(0x9f));
  ck_assert(!remote__unsafe_cp(0xa0));
  ck_assert(remote__unsafe_cp(0x202e));
  ck_assert(!remote__unsafe_cp(0x2030));
}
END_TEST

/* Runs fn(f, arg) into memory; returns the text (free()). */
static char *capture(void (*fn)(FILE *, const json_t *), const json_t *arg)
{
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(f);
  fn(f, arg);
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_uint_eq(strlen(text), len);
  return text;
}

static void put_clean_str(FILE *f, const json_t *s)
{
  remote__fput_clean(f, json_string_value(s));
}

START_TEST(test_fput_clean)
{
  /* longer than any fixed buffer, with hostile bytes spread through it */
  char in[10001];
  for (size_t i = 0; i < 10000; i++)
    in[i] = i % 1000 == 999 ? '\x1b' : 'a';
  in[10000] = 0;
  json_t *s = json_string_nocheck(in);
  char *out = capture(put_clean_str, s);
  ck_assert_uint_eq(strlen(out), 10000);
  ck_assert_int_eq(out[999], '?');
  ck_assert_int_eq(out[998], 'a');
  ck_assert_ptr_null(strchr(out, '\x1b'));
  free(out);
  json_decref(s);
  out = capture(put_clean_str, NULL);                /* NULL string: nothing */
  ck_assert_str_eq(out, "");
  free(out);
}
END_TEST

/* ---- the endpoint file ---- */

static int endpoint(const char *text, char host[REMOTE_HOST_MAX], uint16_t *port)
{
  return remote__parse_endpoint(text, strlen(text), host, port);
}

START_TEST(test_endpoint)
{
  char host[REMOTE_HOST_MAX];
  uint16_t port = 0;
  ck_assert_int_eq(endpoint("127.0.0.1 6880\n", host, &port), 0);
  ck_assert_str_eq(host, "127.0.0.1");
  ck_assert_uint_eq(port, 6880);
  ck_assert_int_eq(endpoint("::1 1\n", host, &port), 0);
  ck_assert_str_eq(host, "::1");
  ck_assert_uint_eq(port, 1);
  ck_assert_int_eq(endpoint("10.1.2.3 65535\n", host, &port), 0);
  ck_assert_str_eq(host, "10.1.2.3");
  ck_assert_uint_eq(port, 65535);
  ck_assert_int_eq(endpoint("0.0.0.0 7000\n", host, &port), 0);  /* listening on all: use loopback */
  ck_assert_str_eq(host, "127.0.0.1");
  ck_assert_uint_eq(port, 7000);
  ck_assert_int_eq(endpoint(":: 7001\n", host, &port), 0);
  ck_assert_str_eq(host, "::1");
  ck_assert_int_eq(endpoint("fe80::1 06880\n", host, &port), 0);
  ck_assert_str_eq(host, "fe80::1");
  ck_assert_uint_eq(port, 6880);
  ck_assert_int_eq(endpoint("1111:2222:3333:4444:5555:6666:123.123.123.123 80\n", host, &port), 0);

  static const char *const bad[] = {
    "", "\n", "127.0.0.1 6880", "127.0.0.1 6880\n\n", "127.0.0.1 6880\r\n", "127.0.0.1 6880 \n",
    "127.0.0.1  6880\n", " 127.0.0.1 6880\n", "127.0.0.1\t6880\n", "127.0.0.1\n", "127.0.0.1 \n", " 6880\n",
    "127.0.0.1 0\n", "127.0.0.1 65536\n", "127.0.0.1 99999\n", "127.0.0.1 006880\n", "127.0.0.1 +6880\n",
    "127.0.0.1 -1\n", "127.0.0.1 6880x\n", "127.0.0.1 0x10\n", "localhost 6880\n", "[::1] 6880\n",
    "127.0.0.1:6880\n", "127.0.0.256 6880\n", "1.2.3 6880\n", "::1%eth0 6880\n", "example.org 80\n",
    "1111:2222:3333:4444:5555:6666:7777:8888:9999 80\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(endpoint(bad[i], host, &port) == UV_EINVAL, "accepted '%s'", bad[i]);
  /* a NUL inside, and text beyond the bound */
  ck_assert_int_eq(remote__parse_endpoint("127.0.0.1\0 6880\n", 16, host, &port), UV_EINVAL);
  ck_assert_int_eq(remote__parse_endpoint("127.0.0.1 6880\n\0", 16, host, &port), UV_EINVAL);
  char big[REMOTE_ENDPOINT_MAX + 20];
  memset(big, ' ', sizeof big);
  memcpy(big, "127.0.0.1 6880\n", 15);
  ck_assert_int_eq(remote__parse_endpoint(big, sizeof big, host, &port), UV_EINVAL);
  char longhost[200];
  memset(longhost, '1', sizeof longhost);
  memcpy(longhost + 180, " 6880\n", 7);
  ck_assert_int_eq(endpoint(longhost, host, &port), UV_EINVAL);
  ck_assert_int_eq(remote__parse_endpoint(NULL, 0, host, &port), UV_EINVAL);
}
END_TEST

/* ---- index lists and priorities ---- */

START_TEST(test_index_list)
{
  struct remote__range r[8];
  size_t n = 99;
  ck_assert_int_eq(remote__parse_index_list("0", r, 8, &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(r[0].lo, 0);
  ck_assert_uint_eq(r[0].hi, 0);
  ck_assert_int_eq(remote__parse_index_list("0,3-5", r, 8, &n), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(r[0].lo, 0);
  ck_assert_uint_eq(r[0].hi, 0);
  ck_assert_uint_eq(r[1].lo, 3);
  ck_assert_uint_eq(r[1].hi, 5);
  ck_assert_int_eq(remote__parse_index_list("7-7,2,99999", r, 8, &n), 0);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(r[0].lo, 7);
  ck_assert_uint_eq(r[0].hi, 7);
  ck_assert_uint_eq(r[2].lo, REMOTE_MAX_INDEX);
  ck_assert_int_eq(remote__parse_index_list("0-99999", r, 8, &n), 0);
  ck_assert_uint_eq(r[0].hi, 99999);
  ck_assert_int_eq(remote__parse_index_list("1,2", r, 2, &n), 0);   /* exactly max */
  ck_assert_uint_eq(n, 2);

  static const char *const bad[] = {
    "", ",", "1,", ",1", "1,,2", "3-1", "1-", "-1", "1--2", "1-2-3", "a", "1a", "1 ,2", " 1", "1 ",
    "100000", "0-100000", "99999999999999999999", "4294967296", "+1", "1.5", "0x1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    n = 77;
    ck_assert_msg(remote__parse_index_list(bad[i], r, 8, &n) == UV_EINVAL, "accepted '%s'", bad[i]);
    ck_assert_uint_eq(n, 77);
  }
  ck_assert_int_eq(remote__parse_index_list("1,2,3", r, 2, &n), UV_EINVAL);    /* over max */
  ck_assert_int_eq(remote__parse_index_list(NULL, r, 2, &n), UV_EINVAL);
}
END_TEST

START_TEST(test_priorities)
{
  json_t *p = json_object();
  char err[256];
  ck_assert_int_eq(remote__add_priorities(p, "0,3-5=skip", err, sizeof err), 0);
  ck_assert_uint_eq(json_object_size(p), 4);
  ck_assert_str_eq(json_string_value(json_object_get(p, "0")), "skip");
  ck_assert_str_eq(json_string_value(json_object_get(p, "3")), "skip");
  ck_assert_str_eq(json_string_value(json_object_get(p, "4")), "skip");
  ck_assert_str_eq(json_string_value(json_object_get(p, "5")), "skip");
  ck_assert_ptr_null(json_object_get(p, "1"));
  ck_assert_int_eq(remote__add_priorities(p, "4=high", err, sizeof err), 0);   /* later wins */
  ck_assert_str_eq(json_string_value(json_object_get(p, "4")), "high");
  ck_assert_int_eq(remote__add_priorities(p, "1=normal", err, sizeof err), 0);
  ck_assert_str_eq(json_string_value(json_object_get(p, "1")), "normal");
  ck_assert_uint_eq(json_object_size(p), 5);

  static const char *const bad[] = {
    "0,3-5", "0=", "=skip", "0=low", "0=SKIP", "0=skip=skip", "x=skip", "5-3=high", "0=skip ", "100000=skip",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    ck_assert_msg(remote__add_priorities(p, bad[i], err, sizeof err) == UV_EINVAL, "accepted '%s'", bad[i]);
    ck_assert_msg(err[0] != 0, "no reason for '%s'", bad[i]);
  }
  ck_assert_uint_eq(json_object_size(p), 5);    /* unchanged by the bad ones */
  json_decref(p);

  /* the whole index range: bounded by REMOTE_MAX_INDEX */
  p = json_object();
  ck_assert_int_eq(remote__add_priorities(p, "0-99999=skip", err, sizeof err), 0);
  ck_assert_uint_eq(json_object_size(p), 100000);
  json_decref(p);
}
END_TEST

/* ---- --json text ---- */

START_TEST(test_json_text)
{
  json_t *v = json_pack("{s:i, s:s}", "index", 1, "name", "caf\xc3\xa9");
  char *t = remote__json_text(v);
  ck_assert_str_eq(t, "{\n  \"index\": 1,\n  \"name\": \"caf\xc3\xa9\"\n}\n");
  free(t);
  json_decref(v);
  /* controls are escaped by the encoder, C1 and bidi ones by escaping all non-ASCII, DEL by hand */
  v = json_pack("{s:s}", "name", "a\x1b\xc2\x9b" "b\xc3\xa9\x7f");
  t = remote__json_text(v);
  ck_assert_str_eq(t, "{\n  \"name\": \"a\\u001B\\u009Bb\\u00E9\\u007F\"\n}\n");
  json_t *back = json_loads(t, 0, NULL);
  ck_assert(json_equal(back, v));
  json_decref(back);
  free(t);
  json_decref(v);
  v = json_null();
  t = remote__json_text(v);
  ck_assert_str_eq(t, "null\n");
  free(t);
}
END_TEST

/* ---- human tables ---- */

START_TEST(test_print_list)
{
  json_t *r = json_loads(
    "{\"torrents\": ["
    " {\"index\": 1, \"id\": \"0123456789abcdef0123456789abcdef01234567\", \"name\": \"debian.iso\","
    "  \"state\": \"downloading\", \"error\": \"\", \"size\": 1073741824, \"have\": 536870912, \"progress\": 0.5,"
    "  \"down_rate\": 1048576, \"up_rate\": 2048, \"peers\": 12, \"seeds\": 3, \"ratio\": 0.25},"
    " {\"index\": 2, \"id\": \"fedcba9876543210fedcba9876543210fedcba98\", \"name\": \"evil\\u001b]0;x\\u0007\","
    "  \"state\": \"error\", \"error\": \"disk \\u001b full\", \"size\": 0, \"progress\": 1, \"ratio\": -1}"
    "]}", 0, NULL);
  ck_assert_ptr_nonnull(r);
  char *t = capture(remote__print_list, r);
  const char *want =
    " IDX  ID        STATE        PROGRESS        SIZE          DOWN            UP  PEERS   RATIO  NAME\n"
    "   1  01234567  downloading     50.0%     1.0 GiB     1.0 MiB/s     2.0 KiB/s     12    0.25  debian.iso\n"
    "   2  fedcba98  error          100.0%         0 B         0 B/s         0 B/s      0       -  evil?]0;x? "
    "(error: disk ? full)\n";
  ck_assert_str_eq(t, want);
  free(t);
  json_decref(r);
}
END_TEST

START_TEST(test_print_list_malformed)
{
  static const char *const header =
    " IDX  ID        STATE        PROGRESS        SIZE          DOWN            UP  PEERS   RATIO  NAME\n";
  /* not an object, no torrents, torrents not an array: the header alone */
  static const char *const texts[] = { "null", "[]", "{}", "{\"torrents\": 5}", "{\"torrents\": {}}" };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    json_t *r = json_loads(texts[i], JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(r);
    char *t = capture(remote__print_list, r);
    ck_assert_str_eq(t, header);
    free(t);
    json_decref(r);
  }
  char *t = capture(remote__print_list, NULL);
  ck_assert_str_eq(t, header);
  free(t);
  /* entries of the wrong type, members of the wrong type or out of range */
  json_t *r = json_loads(
    "{\"torrents\": [7, null, {\"index\": \"1\", \"id\": 5, \"name\": [], \"state\": {}, \"size\": -5,"
    " \"progress\": 7.5, \"down_rate\": 1.5e300, \"up_rate\": -1e300, \"peers\": true, \"ratio\": 1e300,"
    " \"error\": 3},"
    " {\"index\": 3, \"id\": \"ab\", \"progress\": -2, \"size\": 2048.7}]}", 0, NULL);
  ck_assert_ptr_nonnull(r);
  t = capture(remote__print_list, r);
  const char *want_lines[] = {
    "   0            ",                                       /* the two non-objects */
    "   0            ",
    "   0                           100.0%         0 B     8.0 EiB/s         0 B/s      0    >1e6  \n",
    "   3  ab                         0.0%     2.0 KiB         0 B/s         0 B/s      0    0.00  \n",
  };
  const char *p = t + strlen(header);
  for (size_t i = 0; i < 4; i++) {
    ck_assert_msg(strncmp(p, want_lines[i], strlen(want_lines[i])) == 0, "line %zu: %s", i, p);
    p = strchr(p, '\n');
    ck_assert_ptr_nonnull(p);
    p++;
  }
  ck_assert_str_eq(p, "");
  free(t);
  json_decref(r);
}
END_TEST

static bool has_line(const char *text, const char *line)
{
  size_t n = strlen(line);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, line, n) && (p[n] == '\n' || p[n] == '\0'))
      return true;
  return false;
}

START_TEST(test_print_info)
{
  json_t *r = json_loads(
    "{\"index\": 4, \"id\": \"0123456789abcdef0123456789abcdef01234567\", \"name\": \"album\","
    " \"state\": \"seeding\", \"error\": \"\", \"size\": 3072, \"have\": 3072, \"progress\": 1,"
    " \"down_rate\": 0, \"up_rate\": 512, \"peers\": 2, \"seeds\": 0, \"uploaded\": 6144, \"downloaded\": 3072,"
    " \"ratio\": 2, \"eta_s\": -1, \"queue_position\": 3, \"sequential\": true, \"download_dir\": \"/srv/dl\","
    " \"added\": 0, \"pieces\": 1, \"piece_length\": 16384, \"have_pieces\": 1, \"private\": false,"
    " \"magnet\": \"magnet:?xt=urn:btih:0123\", \"comment\": \"hi\\u001b\","
    " \"trackers\": [\"http://t.example/announce\", 5],"
    " \"files\": [{\"index\": 0, \"path\": \"album/01.flac\", \"size\": 2048, \"priority\": \"high\","
    "   \"have\": 1024}, {\"index\": 1, \"path\": \"album/\\u009bcover.jpg\", \"size\": 0, \"priority\": \"skip\"}],"
    " \"limits\": {\"down\": 0, \"up\": 1048576, \"seed_ratio\": -1, \"seed_idle_s\": 3600, \"max_peers\": 50}}",
    0, NULL);
  ck_assert_ptr_nonnull(r);
  char *t = capture(remote__print_info, r);
  static const char *const lines[] = {
    "name: album",
    "id: 0123456789abcdef0123456789abcdef01234567",
    "index: 4",
    "state: seeding",
    "size: 3.0 KiB (have 3.0 KiB, 100.0%)",
    "pieces: 1 x 16.0 KiB (have 1)",
    "rates: down 0 B/s, up 512 B/s",
    "peers: 2 (seeds 0)",
    "downloaded: 3.0 KiB, uploaded: 6.0 KiB, ratio: 2.00",
    "eta: unknown",
    "queue position: 3",
    "sequential: yes",
    "private: no",
    "download dir: /srv/dl",
    "added: -",
    "comment: hi?",
    "magnet: magnet:?xt=urn:btih:0123",
    "limits: down unlimited, up 1.0 MiB/s, seed ratio global, seed idle 1h 0m 0s, max peers 50",
    "files:",
    "  IDX  PRIORITY  PROGRESS        SIZE  PATH",
    "    0  high         50.0%     2.0 KiB  album/01.flac",
    "    1  skip        100.0%         0 B  album/?cover.jpg",
    "trackers:",
    "  http://t.example/announce",
    "  ",
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    ck_assert_msg(has_line(t, lines[i]), "missing '%s' in:\n%s", lines[i], t);
  ck_assert_ptr_null(strstr(t, "error:"));      /* no error line when there is none */
  free(t);
  json_decref(r);

  /* nothing at all: every line still there, with empty values */
  r = json_object();
  t = capture(remote__print_info, r);
  ck_assert(has_line(t, "name: "));
  ck_assert(has_line(t, "size: 0 B (have 0 B, 0.0%)"));
  ck_assert(has_line(t, "eta: 0s"));
  ck_assert(has_line(t, "limits: down unlimited, up unlimited, seed ratio none, seed idle none, max peers 0"));
  ck_assert(has_line(t, "trackers: none"));
  free(t);
  json_decref(r);
  t = capture(remote__print_info, NULL);
  ck_assert(has_line(t, "index: 0"));
  free(t);
}
END_TEST

START_TEST(test_print_peers)
{
  json_t *r = json_loads(
    "{\"peers\": ["
    " {\"address\": \"127.0.0.1:6881\", \"client\": \"shoal 0.1.0\", \"outgoing\": true, \"seed\": true,"
    "  \"progress\": 1, \"down_rate\": 2048, \"up_rate\": 0, \"am_interested\": true, \"peer_choking\": false,"
    "  \"peer_interested\": false, \"am_choking\": true},"
    " {\"address\": \"[::1]:51413\", \"client\": \"\\u001b[2Jbad\", \"outgoing\": false, \"progress\": 0.25,"
    "  \"am_interested\": true, \"peer_choking\": true, \"peer_interested\": true, \"am_choking\": false},"
    " {\"address\": \"[::1]:1\", \"client\": \"a very long client name that goes on\", \"peer_interested\": true,"
    "  \"am_choking\": true},"
    " \"junk\"]}", 0, NULL);
  ck_assert_ptr_nonnull(r);
  char *t = capture(remote__print_peers, r);
  char want[2048];
  snprintf(want, sizeof want,
           "%-47s  %-24s  %-5s  %8s  %12s  %12s\n"
           "%-47s  %-24s  %-5s  %8s  %12s  %12s\n"
           "%-47s  %-24s  %-5s  %8s  %12s  %12s\n"
           "%-47s  %-24s  %-5s  %8s  %12s  %12s\n"
           "%-47s  %-24s  %-5s  %8s  %12s  %12s\n",
           "ADDRESS", "CLIENT", "FLAGS", "PROGRESS", "DOWN", "UP",
           "127.0.0.1:6881", "shoal 0.1.0", "OSD", "100.0%", "2.0 KiB/s", "0 B/s",
           "[::1]:51413", "?[2Jbad", "IdU", "25.0%", "0 B/s", "0 B/s",
           "[::1]:1", "a very long client name ", "Iu", "0.0%", "0 B/s", "0 B/s",
           "", "-", "I", "0.0%", "0 B/s", "0 B/s");
  ck_assert_str_eq(t, want);
  free(t);
  json_decref(r);
}
END_TEST

START_TEST(test_print_stats)
{
  json_t *r = json_loads(
    "{\"version\": \"0.1.0\", \"uptime_s\": 93784, \"torrents\": 3, \"downloading\": 1, \"seeding\": 2,"
    " \"peers\": 17, \"down_rate\": 1536, \"up_rate\": 0, \"downloaded\": 1073741824, \"uploaded\": 5,"
    " \"rate_down_limit\": 0, \"rate_up_limit\": 102400, \"listen_port\": 6881, \"open_files\": 9,"
    " \"rss_bytes\": 20971520, \"config_dir\": \"/home/ann/.config/shoal\"}", 0, NULL);
  ck_assert_ptr_nonnull(r);
  char *t = capture(remote__print_stats, r);
  ck_assert_str_eq(t,
                   "version: 0.1.0\n"
                   "uptime: 1d 2h 3m 4s\n"
                   "torrents: 3 (downloading 1, seeding 2)\n"
                   "peers: 17\n"
                   "rates: down 1.5 KiB/s, up 0 B/s\n"
                   "downloaded: 1.0 GiB, uploaded: 5 B\n"
                   "limits: down unlimited, up 100.0 KiB/s\n"
                   "listen port: 6881\n"
                   "open files: 9\n"
                   "memory: 20.0 MiB\n"
                   "config dir: /home/ann/.config/shoal\n");
  free(t);
  json_decref(r);
  r = json_string("not an object");
  t = capture(remote__print_stats, r);
  ck_assert(has_line(t, "uptime: 0s"));
  ck_assert(has_line(t, "version: "));
  free(t);
  json_decref(r);
}
END_TEST

/* ---- the command line (the parts that end before the network) ---- */

/* remote_main(argc, argv) with stdout on out_fd and stderr on err_fd. */
static int run_redirected(int out_fd, int err_fd, int argc, char **argv)
{
  fflush(stdout);
  fflush(stderr);
  int o1 = dup(1), o2 = dup(2);
  ck_assert(o1 >= 0 && o2 >= 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  int rc = remote_main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(o1, 1);
  dup2(o2, 2);
  close(o1);
  close(o2);
  return rc;
}

/* remote_main on a NULL-terminated list, with stdout and stderr sent to /dev/null. */
static int run_remote(const char *first, ...)
{
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)"remote";
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a; a = va_arg(ap, const char *)) {
    ck_assert_int_lt(argc, 31);
    argv[argc++] = (char *)a;
  }
  va_end(ap);
  argv[argc] = NULL;
  int nul = open("/dev/null", O_WRONLY);
  ck_assert(nul >= 0);
  int rc = run_redirected(nul, nul, argc, argv);
  close(nul);
  return rc;
}

START_TEST(test_cmdline_usage)
{
  ck_assert_int_eq(run_remote(NULL), 2);                                      /* no command */
  ck_assert_int_eq(run_remote("frobnicate", NULL), 2);
  ck_assert_int_eq(run_remote("--bogus", "list", NULL), 2);
  ck_assert_int_eq(run_remote("list", "--bogus", NULL), 2);
  ck_assert_int_eq(run_remote("--paused", "add", "x.torrent", NULL), 2);       /* command option first */
  ck_assert_int_eq(run_remote("list", "extra", NULL), 2);
  ck_assert_int_eq(run_remote("info", NULL), 2);
  ck_assert_int_eq(run_remote("info", "1", "2", NULL), 2);
  ck_assert_int_eq(run_remote("add", NULL), 2);
  ck_assert_int_eq(run_remote("add-peer", "1", NULL), 2);
  ck_assert_int_eq(run_remote("limits", "1", "2", NULL), 2);
  ck_assert_int_eq(run_remote("limits", "--down", NULL), 2);                  /* missing value */
  ck_assert_int_eq(run_remote("limits", "--down", "fast", NULL), 2);
  ck_assert_int_eq(run_remote("limits", "--up=-1", NULL), 2);
  ck_assert_int_eq(run_remote("limits", "--up", "2T", NULL), 2);
  ck_assert_int_eq(run_remote("remove", "1", "--delete-data=yes", NULL), 2);  /* flag with a value */
  ck_assert_int_eq(run_remote("pause", "1", "--delete-data", NULL), 2);       /* another command's option */
  ck_assert_int_eq(run_remote("set", "1", NULL), 2);                          /* nothing to set */
  ck_assert_int_eq(run_remote("set", "1", "--sequential", "maybe", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--priority", "0-3", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--priority", "0=urgent", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--priority", "0=skip", "--priority", "x=high", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--seed-ratio", "lots", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--seed-ratio", "-0.5", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--seed-ratio", "inf", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--seed-ratio", "nan", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--seed-idle", "-2", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--seed-idle", "1h", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--max-peers", "-1", NULL), 2);
  ck_assert_int_eq(run_remote("set", "1", "--queue", "sideways", NULL), 2);
  ck_assert_int_eq(run_remote("add", "x.torrent", "--only", "1-", NULL), 2);
  ck_assert_int_eq(run_remote("add", "x.torrent", "-o", "", NULL), 2);
  ck_assert_int_eq(run_remote("add", "x.torrent", "--sequential=on", NULL), 2);  /* add's is a flag */
  ck_assert_int_eq(run_remote("--rpc-port", "0", "list", NULL), 2);
  ck_assert_int_eq(run_remote("--rpc-port", "65536", "list", NULL), 2);
  ck_assert_int_eq(run_remote("--rpc-port", "http", "list", NULL), 2);
  ck_assert_int_eq(run_remote("--host", "example.org", "list", NULL), 2);
  ck_assert_int_eq(run_remote("--host", "", "list", NULL), 2);
  ck_assert_int_eq(run_remote("--config-dir", "", "list", NULL), 2);
  ck_assert_int_eq(run_remote("info", "\xff\xfe", NULL), 2);                  /* not UTF-8 */
  ck_assert_int_eq(run_remote("--help", NULL), 0);
  ck_assert_int_eq(run_remote("list", "-h", NULL), 0);
}
END_TEST

/* A fresh empty folder under /tmp (the caller removes it). */
static void make_dir(char *tmpl)
{
  ck_assert_ptr_nonnull(mkdtemp(tmpl));
}

static void write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static void remove_dir(const char *dir)
{
  static const char *const names[] = { "rpc-token", "rpc-endpoint" };
  for (size_t i = 0; i < 2; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

START_TEST(test_cmdline_no_daemon)
{
  char dir[] = "/tmp/shoal-remote-test-XXXXXX";
  make_dir(dir);
  /* no token: refused before any connection */
  ck_assert_int_eq(run_remote("--config-dir", dir, "list", NULL), 1);
  ck_assert_int_eq(run_remote("--config-dir", dir, "add", "/nonexistent.torrent", NULL), 1);
  /* a token, and an endpoint file that is not one */
  write_text(dir, "rpc-token", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 0600);
  write_text(dir, "rpc-endpoint", "127.0.0.1 6880 garbage\n", 0600);
  ck_assert_int_eq(run_remote("--config-dir", dir, "list", NULL), 1);
  /* an endpoint where nothing listens (port 1 on loopback): unreachable */
  write_text(dir, "rpc-endpoint", "127.0.0.1 1\n", 0600);
  ck_assert_int_eq(run_remote("--config-dir", dir, "stats", NULL), 1);
  ck_assert_int_eq(run_remote("--config-dir", dir, "--host", "::1", "--rpc-port", "1", "list", NULL), 1);
  /* add: an unreadable file and a directory both fail, the exit says so */
  ck_assert_int_eq(run_remote("--config-dir", dir, "add", "/nonexistent.torrent", dir, NULL), 1);
  remove_dir(dir);
}
END_TEST

/* ---- against the real control server, in a thread ---- */

#define E2E_TOKEN "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

struct fake_daemon {
  uv_loop_t loop;
  uv_async_t stop;
  struct rpc_server *server;
  pthread_t thread;
  pthread_mutex_t mu;
  char method[32];              /* the last call seen */
  json_t *params;
  int calls;
};

static json_t *summary(int index, const char *id, const char *name)
{
  return json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:f}", "index", index, "id", id, "name", name, "state",
                   "downloading", "error", "", "size", 4096, "have", 1024, "progress", 0.25);
}

static void fake_handler(void *ctx, struct rpc_call *call, const char *method, json_t *params)
{
  struct fake_daemon *d = ctx;
  pthread_mutex_lock(&d->mu);
  snprintf(d->method, sizeof d->method, "%s", method);
  json_decref(d->params);
  d->params = json_deep_copy(params);
  d->calls++;
  pthread_mutex_unlock(&d->mu);
  const char *id = json_string_value(json_object_get(params, "id"));
  if (id && !strcmp(id, "dead"))
    return rpc_replyf(call, 404, "no torrent matches id '%s'", id);
  if (!strcmp(method, "list")) {
    json_t *ts = json_array();
    json_array_append_new(ts, summary(1, "0123456789abcdef0123456789abcdef01234567", "one\x1b[2J"));
    return rpc_reply(call, 200, json_pack("{s:o}", "torrents", ts), NULL);
  }
  if (!strcmp(method, "add")) {
    if (json_object_get(params, "magnet") == NULL && json_object_get(params, "torrent") == NULL)
      return rpc_replyf(call, 400, "add wants torrent or magnet");
    const char *t = json_string_value(json_object_get(params, "torrent"));
    if (t && !strcmp(t, "ZHVw"))   /* "dup" */
      return rpc_replyf(call, 409, "torrent already added");
    return rpc_reply(call, 200, json_pack("{s:s, s:i, s:s}", "id", "abcdef0123456789abcdef0123456789abcdef01",
                                          "index", 2, "name", "two"), NULL);
  }
  if (!strcmp(method, "pause"))
    return rpc_reply(call, 200, json_pack("{s:i}", "count", 3), NULL);
  if (!strcmp(method, "limits"))
    return rpc_reply(call, 200, json_pack("{s:i, s:i}", "down", 0, "up", 1024), NULL);
  if (!strcmp(method, "set"))
    return rpc_reply(call, 200, summary(1, "0123456789abcdef0123456789abcdef01234567", "one"), NULL);
  if (!strcmp(method, "remove"))
    return rpc_reply(call, 200, json_pack("{s:s}", "id", "0123456789abcdef0123456789abcdef01234567"), NULL);
  rpc_replyf(call, 400, "unknown method '%s'", method);
}

static void fake_closed(void *ctx)
{
  struct fake_daemon *d = ctx;
  uv_close((uv_handle_t *)&d->stop, NULL);
}

static void fake_stop(uv_async_t *a)
{
  struct fake_daemon *d = a->data;
  rpc_server_close(d->server, fake_closed, d);
}

static void *fake_run(void *arg)
{
  struct fake_daemon *d = arg;
  uv_run(&d->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Starts the server on a free loopback port and writes dir/rpc-token and dir/rpc-endpoint. */
static void fake_start(struct fake_daemon *d, const char *dir)
{
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->mu, NULL);
  ck_assert_int_eq(uv_loop_init(&d->loop), 0);
  ck_assert_int_eq(uv_async_init(&d->loop, &d->stop, fake_stop), 0);
  d->stop.data = d;
  struct rpc_server_config cfg = { .bind = "127.0.0.1", .port = 0, .token = E2E_TOKEN };
  ck_assert_int_eq(rpc_server_start(&d->loop, &cfg, fake_handler, d, &d->server), 0);
  char ep[64];
  snprintf(ep, sizeof ep, "127.0.0.1 %u\n", (unsigned)rpc_server_port(d->server));
  write_text(dir, "rpc-token", E2E_TOKEN "\n", 0600);
  write_text(dir, "rpc-endpoint", ep, 0600);
  ck_assert_int_eq(pthread_create(&d->thread, NULL, fake_run, d), 0);
}

static void fake_finish(struct fake_daemon *d)
{
  uv_async_send(&d->stop);
  pthread_join(d->thread, NULL);
  ck_assert_int_eq(uv_loop_close(&d->loop), 0);
  json_decref(d->params);
}

/* remote_main with stdout captured into out (free()) and stderr into err. */
static int run_captured(char **out, char **err, int argc, char **argv)
{
  FILE *fo = tmpfile(), *fe = tmpfile();
  ck_assert(fo && fe);
  int rc = run_redirected(fileno(fo), fileno(fe), argc, argv);
  FILE *fs[2] = { fo, fe };
  char **dst[2] = { out, err };
  for (int i = 0; i < 2; i++) {
    long n = ftell(fs[i]);
    ck_assert_int_ge(n, 0);
    rewind(fs[i]);
    *dst[i] = calloc(1, (size_t)n + 1);
    ck_assert_uint_eq(fread(*dst[i], 1, (size_t)n, fs[i]), (size_t)n);
    fclose(fs[i]);
  }
  return rc;
}

#define RUN(out, err, ...)                                                     \
  ({                                                                           \
    char *argv_[] = { (char *)"remote", "--config-dir", dir, __VA_ARGS__, NULL }; \
    run_captured(out, err, (int)(sizeof argv_ / sizeof argv_[0]) - 1, argv_);  \
  })

START_TEST(test_end_to_end)
{
  char dir[] = "/tmp/shoal-remote-e2e-XXXXXX";
  make_dir(dir);
  struct fake_daemon d;
  fake_start(&d, dir);
  char *out, *err;

  ck_assert_int_eq(RUN(&out, &err, "list"), 0);
  ck_assert_str_eq(d.method, "list");
  ck_assert_ptr_nonnull(strstr(out, "   1  01234567  downloading     25.0%     4.0 KiB"));
  ck_assert_ptr_nonnull(strstr(out, "one?[2J\n"));
  ck_assert_str_eq(err, "");
  free(out), free(err);

  ck_assert_int_eq(RUN(&out, &err, "--json", "list"), 0);
  json_t *j = json_loads(out, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(j, "torrents"), 0), "index")), 1);
  json_decref(j);
  free(out), free(err);

  /* a torrent file goes base64-encoded, with the options; a relative -o is made absolute */
  char tpath[600];
  snprintf(tpath, sizeof tpath, "%s/x.torrent", dir);
  write_text(dir, "x.torrent", "d4:infod4:name1:xee", 0600);
  ck_assert_int_eq(RUN(&out, &err, "add", tpath, "--paused", "-o", "rel/dir", "--only", "0,3-5", "--sequential"), 0);
  ck_assert_str_eq(out, "added 2 abcdef01 two\n");
  ck_assert_str_eq(d.method, "add");
  ck_assert_str_eq(json_string_value(json_object_get(d.params, "torrent")), "ZDQ6aW5mb2Q0Om5hbWUxOnhlZQ==");
  ck_assert(json_is_true(json_object_get(d.params, "paused")));
  ck_assert(json_is_true(json_object_get(d.params, "sequential")));
  ck_assert_str_eq(json_string_value(json_object_get(d.params, "only")), "0,3-5");
  char cwd[512], want_dir[600];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  snprintf(want_dir, sizeof want_dir, "%s/rel/dir", strcmp(cwd, "/") ? cwd : "");
  ck_assert_str_eq(json_string_value(json_object_get(d.params, "download_dir")), want_dir);
  free(out), free(err);

  /* several: a magnet, a missing file, a duplicate: each is tried, the failures are reported */
  write_text(dir, "dup.torrent", "dup", 0600);
  char dpath[600];
  snprintf(dpath, sizeof dpath, "%s/dup.torrent", dir);
  int before = d.calls;
  ck_assert_int_eq(RUN(&out, &err, "add", "magnet:?xt=urn:btih:abc", "/nonexistent/a.torrent", dpath, tpath), 1);
  ck_assert_int_eq(d.calls - before, 3);
  ck_assert_str_eq(out, "added 2 abcdef01 two\nadded 2 abcdef01 two\n");
  ck_assert_ptr_nonnull(strstr(err, "shoal: /nonexistent/a.torrent: no such file or directory\n"));
  ck_assert_ptr_nonnull(strstr(err, "dup.torrent: torrent already added\n"));
  free(out), free(err);

  /* the daemon's refusal: its text, exit 1 */
  ck_assert_int_eq(RUN(&out, &err, "info", "dead"), 1);
  ck_assert_str_eq(out, "");
  ck_assert_str_eq(err, "shoal: no torrent matches id 'dead'\n");
  free(out), free(err);

  ck_assert_int_eq(RUN(&out, &err, "pause", "all"), 0);
  ck_assert_str_eq(out, "paused 3 torrents\n");
  ck_assert_str_eq(json_string_value(json_object_get(d.params, "id")), "all");
  free(out), free(err);

  ck_assert_int_eq(RUN(&out, &err, "limits", "--down", "1.5M", "--up=0", "7"), 0);
  ck_assert_str_eq(out, "limits of 7: down unlimited, up 1.0 KiB/s\n");
  ck_assert_int_eq(json_integer_value(json_object_get(d.params, "down")), 1572864);
  ck_assert_int_eq(json_integer_value(json_object_get(d.params, "up")), 0);
  ck_assert_str_eq(json_string_value(json_object_get(d.params, "id")), "7");
  free(out), free(err);

  ck_assert_int_eq(RUN(&out, &err, "limits"), 0);
  ck_assert_str_eq(out, "global limits: down unlimited, up 1.0 KiB/s\n");
  ck_assert_uint_eq(json_object_size(d.params), 0);
  free(out), free(err);

  ck_assert_int_eq(RUN(&out, &err, "set", "0123", "--sequential", "off", "--priority", "0,3-4=skip", "--priority",
                       "4=high", "--seed-ratio", "1.5", "--seed-idle", "global", "--max-peers", "20", "--queue",
                       "top"), 0);
  ck_assert_str_eq(out, "updated 1 01234567 one\n");
  ck_assert_str_eq(d.method, "set");
  json_t *want = json_loads("{\"id\": \"0123\", \"sequential\": false, \"priorities\": {\"0\": \"skip\", \"3\": "
                            "\"skip\", \"4\": \"high\"}, \"seed_ratio\": 1.5, \"seed_idle_s\": -1, \"max_peers\": 20,"
                            " \"queue\": \"top\"}", 0, NULL);
  ck_assert_msg(json_equal(want, d.params), "params: %s", json_dumps(d.params, 0));
  json_decref(want);
  free(out), free(err);

  ck_assert_int_eq(RUN(&out, &err, "remove", "1", "--delete-data"), 0);
  ck_assert_str_eq(out, "removed 01234567 and deleted its data\n");
  ck_assert(json_is_true(json_object_get(d.params, "delete_data")));
  free(out), free(err);

  /* a wrong token: the daemon's 401 text */
  write_text(dir, "rpc-token", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n", 0600);
  before = d.calls;
  ck_assert_int_eq(RUN(&out, &err, "stats"), 1);
  ck_assert_int_eq(d.calls, before);
  ck_assert_ptr_nonnull(strstr(err, "shoal: "));
  free(out), free(err);

  fake_finish(&d);
  unlink(tpath);
  unlink(dpath);
  remove_dir(dir);
}
END_TEST

Suite *remote_suite(void)
{
  Suite *s = suite_create("remote");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_rate_valid);
  tcase_add_test(tc, test_rate_invalid);
  tcase_add_test(tc, test_format_size);
  tcase_add_test(tc, test_duration);
  tcase_add_test(tc, test_sanitize);
  tcase_add_test(tc, test_fput_clean);
  tcase_add_test(tc, test_endpoint);
  tcase_add_test(tc, test_index_list);
  tcase_add_test(tc, test_priorities);
  tcase_add_test(tc, test_json_text);
  tcase_add_test(tc, test_print_list);
  tcase_add_test(tc, test_print_list_malformed);
  tcase_add_test(tc, test_print_info);
  tcase_add_test(tc, test_print_peers);
  tcase_add_test(tc, test_print_stats);
  tcase_add_test(tc, test_cmdline_usage);
  tcase_add_test(tc, test_cmdline_no_daemon);
  tcase_add_test(tc, test_end_to_end);
  suite_add_tcase(s, tc);
  return s;
}
