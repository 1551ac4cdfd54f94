/* test_compact.c -- compact peer lists (BEP 23, BEP 7) and "host:port" text forms. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/compact.h"

static const struct sockaddr_in *v4(const struct sockaddr_storage *ss) { return (const struct sockaddr_in *)ss; }
static const struct sockaddr_in6 *v6(const struct sockaddr_storage *ss) { return (const struct sockaddr_in6 *)ss; }

START_TEST(test_parse_v4)
{
  const uint8_t p[] = { 1, 2, 3, 4, 0x1a, 0xe1,    /* 1.2.3.4:6881 */
                        10, 0, 0, 1, 0, 0,         /* port 0: skipped */
                        255, 255, 255, 255, 0xff, 0xff };
  struct sockaddr_storage out[4];
  ck_assert_int_eq(compact_parse(AF_INET, p, sizeof p, out, 4), 2);
  ck_assert_int_eq(v4(&out[0])->sin_family, AF_INET);
  ck_assert_uint_eq(ntohl(v4(&out[0])->sin_addr.s_addr), 0x01020304u);
  ck_assert_uint_eq(ntohs(v4(&out[0])->sin_port), 6881);
  ck_assert_uint_eq(ntohl(v4(&out[1])->sin_addr.s_addr), 0xffffffffu);
  ck_assert_uint_eq(ntohs(v4(&out[1])->sin_port), 65535);
  /* Empty list. */
  ck_assert_int_eq(compact_parse(AF_INET, p, 0, out, 4), 0);
}
END_TEST

START_TEST(test_parse_bad_len)
{
  uint8_t p[37] = { 0 };
  struct sockaddr_storage out[8];
  memset(out, 0x77, sizeof out);
  for (size_t len = 1; len < sizeof p; len++) {
    int want4 = len % 6 == 0 ? 0 : -1; /* all ports are 0: nothing kept */
    int want6 = len % 18 == 0 ? 0 : -1;
    ck_assert_msg(compact_parse(AF_INET, p, len, out, 8) == want4, "v4 len %zu", len);
    ck_assert_msg(compact_parse(AF_INET6, p, len, out, 8) == want6, "v6 len %zu", len);
  }
  /* Nothing written on error. */
  ck_assert_int_eq(((uint8_t *)out)[0], 0x77);
  ck_assert_int_eq(compact_parse(AF_UNIX, p, 6, out, 8), -1);
}
END_TEST

START_TEST(test_parse_max)
{
  uint8_t p[6 * 10];
  for (int i = 0; i < 10; i++) {
    uint8_t e[6] = { 10, 0, 0, (uint8_t)i, 0, (uint8_t)(i + 1) };
    memcpy(p + 6 * i, e, 6);
  }
  struct sockaddr_storage out[4];
  memset(out, 0, sizeof out);
  ck_assert_int_eq(compact_parse(AF_INET, p, sizeof p, out, 3), 3);
  ck_assert_uint_eq(ntohs(v4(&out[2])->sin_port), 3);
  ck_assert_int_eq(out[3].ss_family, 0); /* untouched */
  ck_assert_int_eq(compact_parse(AF_INET, p, sizeof p, out, 0), 0);
}
END_TEST

START_TEST(test_parse_v6)
{
  uint8_t p[18 * 3] = { 0 };
  p[15] = 1;                     /* ::1 */
  p[16] = 0x1a; p[17] = 0xe1;    /* :6881 */
  p[18] = 0x20; p[19] = 0x01;    /* 2001:: port 0: skipped */
  p[36] = 0xfe; p[37] = 0x80; p[53] = 80;
  struct sockaddr_storage out[3];
  ck_assert_int_eq(compact_parse(AF_INET6, p, sizeof p, out, 3), 2);
  ck_assert_int_eq(v6(&out[0])->sin6_family, AF_INET6);
  ck_assert(IN6_IS_ADDR_LOOPBACK(&v6(&out[0])->sin6_addr));
  ck_assert_uint_eq(ntohs(v6(&out[0])->sin6_port), 6881);
  ck_assert_int_eq(v6(&out[1])->sin6_addr.s6_addr[0], 0xfe);
  ck_assert_uint_eq(ntohs(v6(&out[1])->sin6_port), 80);
}
END_TEST

START_TEST(test_put_roundtrip)
{
  struct sockaddr_storage a, b, out[2];
  ck_assert_int_eq(compact_addr_parse("192.168.1.20:51413", &a), 0);
  ck_assert_int_eq(compact_addr_parse("[2001:db8::7]:6881", &b), 0);
  struct buf buf;
  buf_init(&buf, 64);
  ck_assert_int_eq(compact_put(&buf, (struct sockaddr *)&a), 0);
  ck_assert_uint_eq(buf.len, 6);
  const uint8_t want4[] = { 192, 168, 1, 20, 0xc8, 0xd5 };
  ck_assert(memcmp(buf.p, want4, 6) == 0);
  ck_assert_int_eq(compact_parse(AF_INET, buf.p, buf.len, out, 2), 1);
  ck_assert(memcmp(&v4(&out[0])->sin_addr, &v4(&a)->sin_addr, 4) == 0);
  ck_assert_int_eq(v4(&out[0])->sin_port, v4(&a)->sin_port);

  buf.len = 0;
  ck_assert_int_eq(compact_put(&buf, (struct sockaddr *)&b), 0);
  ck_assert_uint_eq(buf.len, 18);
  ck_assert_int_eq(buf.p[0], 0x20);
  ck_assert_int_eq(buf.p[15], 7);
  ck_assert_int_eq(buf.p[16], 0x1a);
  ck_assert_int_eq(buf.p[17], 0xe1);
  ck_assert_int_eq(compact_parse(AF_INET6, buf.p, buf.len, out, 2), 1);
  ck_assert(memcmp(&v6(&out[0])->sin6_addr, &v6(&b)->sin6_addr, 16) == 0);
  ck_assert_int_eq(v6(&out[0])->sin6_port, v6(&b)->sin6_port);

  /* Unknown family and a full buffer. */
  struct sockaddr_storage u;
  memset(&u, 0, sizeof u);
  u.ss_family = AF_UNIX;
  ck_assert_int_eq(compact_put(&buf, (struct sockaddr *)&u), UV_EAFNOSUPPORT);
  struct buf small;
  buf_init(&small, 17);
  ck_assert_int_eq(compact_put(&small, (struct sockaddr *)&b), UV_E2BIG);
  ck_assert_uint_eq(small.len, 0);
  buf_free(&small);
  buf_free(&buf);
}
END_TEST

static void expect_str(const char *in, const char *want)
{
  struct sockaddr_storage ss;
  char out[64];
  ck_assert_msg(compact_addr_parse(in, &ss) == 0, "'%s' should parse", in);
  compact_addr_str((struct sockaddr *)&ss, out, sizeof out);
  ck_assert_str_eq(out, want);
}

START_TEST(test_addr_parse_str)
{
  expect_str("1.2.3.4:6881", "1.2.3.4:6881");
  expect_str("127.0.0.1:1", "127.0.0.1:1");
  expect_str("0.0.0.0:65535", "0.0.0.0:65535");
  expect_str("0.0.0.0:0", "0.0.0.0:0");
  expect_str("[::1]:6881", "[::1]:6881");
  expect_str("[2001:DB8:0:0::1]:80", "[2001:db8::1]:80");
  expect_str("[::ffff:1.2.3.4]:7", "[::ffff:1.2.3.4]:7");
  expect_str("1.2.3.4:00080", "1.2.3.4:80");
  struct sockaddr_storage ss;
  ck_assert_int_eq(compact_addr_parse("[::1]:6881", &ss), 0);
  ck_assert_int_eq(ss.ss_family, AF_INET6);
  ck_assert_int_eq(compact_addr_parse("10.0.0.1:6881", &ss), 0);
  ck_assert_int_eq(ss.ss_family, AF_INET);
  ck_assert_uint_eq(ntohs(v4(&ss)->sin_port), 6881);
  /* A tiny output buffer is truncated, not overrun. */
  char tiny[5];
  memset(tiny, 'x', sizeof tiny);
  compact_addr_str((struct sockaddr *)&ss, tiny, 4);
  ck_assert_str_eq(tiny, "10.");
  ck_assert_int_eq(tiny[4], 'x');
}
END_TEST

START_TEST(test_addr_parse_bad)
{
  static const char *const bad[] = {
    "", ":", "1.2.3.4", "1.2.3.4:", ":80", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:+80",
    "1.2.3.4:80a", "1.2.3.4:8 0", "1.2.3.4:123456", "1.2.3:80", "1.2.3.4.5:80",
    "256.1.1.1:80", "host.example:80", "::1:80", "[::1]", "[::1]:", "[::1]80",
    "[::1:80", "[]:80", "[1.2.3.4]:80", "[::g]:80", "[::1]:80:80", "1.2.3.4:80:80",
    " 1.2.3.4:80", "[fe80::1%eth0]:80",
    "[0000000000000000000000000000000000000000000000000000000000000000000000001]:1",
  };
  struct sockaddr_storage ss;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(compact_addr_parse(bad[i], &ss) == UV_EINVAL, "'%s' should be refused", bad[i]);
  ck_assert_int_eq(compact_addr_parse(NULL, &ss), UV_EINVAL);
  char out[64];
  memset(&ss, 0, sizeof ss);
  ss.ss_family = AF_UNIX;
  compact_addr_str((struct sockaddr *)&ss, out, sizeof out);
  ck_assert(strstr(out, "unknown") != NULL);
}
END_TEST

START_TEST(test_addr_split)
{
  struct sockaddr_storage ss;
  uint8_t fam = 0, ip[16];
  uint16_t port = 0;
  ck_assert_int_eq(compact_addr_parse("1.2.3.4:6881", &ss), 0);
  memset(ip, 0xee, sizeof ip);
  ck_assert_int_eq(compact_addr_split((struct sockaddr *)&ss, &fam, ip, &port), 0);
  static const uint8_t want4[16] = { 1, 2, 3, 4 };   /* the rest zeroed */
  ck_assert_uint_eq(fam, AF_INET);
  ck_assert_mem_eq(ip, want4, 16);
  ck_assert_uint_eq(port, 6881);

  ck_assert_int_eq(compact_addr_parse("[2001:db8::7]:51413", &ss), 0);
  ck_assert_int_eq(compact_addr_split((struct sockaddr *)&ss, &fam, ip, &port), 0);
  ck_assert_uint_eq(fam, AF_INET6);
  ck_assert_mem_eq(ip, &v6(&ss)->sin6_addr, 16);
  ck_assert_uint_eq(port, 51413);

  /* IPv4-mapped IPv6 counts as IPv4. */
  ck_assert_int_eq(compact_addr_parse("[::ffff:1.2.3.4]:7", &ss), 0);
  memset(ip, 0xee, sizeof ip);
  ck_assert_int_eq(compact_addr_split((struct sockaddr *)&ss, &fam, ip, &port), 0);
  ck_assert_uint_eq(fam, AF_INET);
  ck_assert_mem_eq(ip, want4, 16);
  ck_assert_uint_eq(port, 7);

  memset(&ss, 0, sizeof ss);
  ss.ss_family = AF_UNIX;
  ck_assert_int_eq(compact_addr_split((struct sockaddr *)&ss, &fam, ip, &port), UV_EINVAL);
  ck_assert_int_eq(compact_addr_split(NULL, &fam, ip, &port), UV_EINVAL);
}
END_TEST

Suite *compact_suite(void)
{
  Suite *s = suite_create("compact");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_parse_v4);
  tcase_add_test(tc, test_parse_bad_len);
  tcase_add_test(tc, test_parse_max);
  tcase_add_test(tc, test_parse_v6);
  tcase_add_test(tc, test_put_roundtrip);
  tcase_add_test(tc, test_addr_parse_str);
  tcase_add_test(tc, test_addr_parse_bad);
  tcase_add_test(tc, test_addr_split);
  suite_add_tcase(s, tc);
  return s;
}
