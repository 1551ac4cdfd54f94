/* test_magnet.c -- magnet link parsing (BEP 9, BEP 53) and building. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/magnet.h"

#define IH_HEX "0102030405060708090a0b0c0d0e0f1011121314"
#define IH_HEX_UP "0102030405060708090A0B0C0D0E0F1011121314"
#define IH_B32 "AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYU"
static const uint8_t IH[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };

/* Parses a link expected to be valid; m must be magnet_free()d. */
static void ok(struct magnet *m, const char *uri)
{
  char err[SHOAL_ERRLEN] = "";
  int r = magnet_parse(m, uri, err, sizeof err);
  ck_assert_msg(r == 0, "%s: %d %s", uri, r, err);
}

/* Parses a link expected to fail with UV_EINVAL and an error containing want. */
static void bad(const char *uri, const char *want)
{
  struct magnet m;
  char err[SHOAL_ERRLEN] = "";
  int r = magnet_parse(&m, uri, err, sizeof err);
  ck_assert_msg(r == UV_EINVAL, "%s: returned %d", uri, r);
  ck_assert_msg(strstr(err, want) != NULL, "%s: error \"%s\", wanted \"%s\"", uri, err, want);
  ck_assert_ptr_null(strchr(err, '\n'));
  ck_assert_ptr_null(m.name);          /* owns nothing */
  ck_assert_uint_eq(m.ntrackers, 0);
}

/* bad() for the link with IH_HEX's xt followed by "&" query. */
static void bad_q(const char *query, const char *want)
{
  char uri[2048];
  int n = snprintf(uri, sizeof uri, "magnet:?xt=urn:btih:" IH_HEX "&%s", query);
  ck_assert(n > 0 && (size_t)n < sizeof uri);
  bad(uri, want);
}

/* The link with IH_HEX's xt, then head, then n copies of piece; free() it. */
static char *uri_repeat(const char *head, const char *piece, int n)
{
  struct buf b;
  buf_init(&b, 1 << 16);
  ck_assert_int_eq(buf_append_str(&b, "magnet:?xt=urn:btih:" IH_HEX), 0);
  ck_assert_int_eq(buf_append_str(&b, head), 0);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(buf_append_str(&b, piece), 0);
  char *uri = buf_steal_cstr(&b, NULL);
  ck_assert_ptr_nonnull(uri);
  buf_free(&b);
  return uri;
}

/* The link with IH_HEX's xt, then pre<i>post for i = 0..n-1; free() it. */
static char *uri_numbered(const char *pre, const char *post, int n)
{
  struct buf b;
  buf_init(&b, 1 << 16);
  ck_assert_int_eq(buf_append_str(&b, "magnet:?xt=urn:btih:" IH_HEX), 0);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(buf_printf(&b, "%s%d%s", pre, i, post), 0);
  char *uri = buf_steal_cstr(&b, NULL);
  ck_assert_ptr_nonnull(uri);
  buf_free(&b);
  return uri;
}

START_TEST(test_infohash_forms)
{
  struct magnet m;
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX);
  ck_assert_mem_eq(m.infohash, IH, 20);
  ck_assert_ptr_null(m.name);
  ck_assert_uint_eq(m.ntrackers, 0);
  ck_assert_uint_eq(m.npeers, 0);
  ck_assert_uint_eq(m.nso, 0);
  magnet_free(&m);
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX_UP);
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
  ok(&m, "MAGNET:?xt=URN:BTIH:0102030405060708090a0B0C0D0E0F1011121314");
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
  ok(&m, "magnet:?xt=urn:btih:" IH_B32);
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
  ok(&m, "magnet:?xt=urn:btih:aebagbafaydqqcikbmga2dqpcaireeyu");
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
  /* All ones / all zeros in base32. */
  ok(&m, "magnet:?xt=urn:btih:77777777777777777777777777777777");
  for (int i = 0; i < 20; i++)
    ck_assert_uint_eq(m.infohash[i], 0xff);
  magnet_free(&m);
  ok(&m, "magnet:?xt=urn:btih:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  for (int i = 0; i < 20; i++)
    ck_assert_uint_eq(m.infohash[i], 0);
  magnet_free(&m);
  /* xt percent-encoded, and not the first parameter. */
  ok(&m, "magnet:?dn=x&xt=urn%3Abtih%3A" IH_HEX);
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
}
END_TEST

START_TEST(test_infohash_bad)
{
  bad("magnet:?xt=urn:btih:0102030405060708090a0b0c0d0e0f101112131", "not 39");
  bad("magnet:?xt=urn:btih:0102030405060708090a0b0c0d0e0f101112131415", "not 42");
  bad("magnet:?xt=urn:btih:0102030405060708090a0b0c0d0e0f10111213145", "not 41");
  bad("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEY", "not 31");
  bad("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUA", "not 33");
  bad("magnet:?xt=urn:btih:", "must be 40 hex or 32 base32 characters, not 0");
  bad("magnet:?xt=urn:btih:0102030405060708090a0b0c0d0e0f10111213g4", "non-hex");
  bad("magnet:?xt=urn:btih:0102030405060708090a0b0c0d0e0f1011121 14", "non-hex");
  bad("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEY1", "non-base32");
  bad("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEY8", "non-base32");
  bad("magnet:?xt=urn:btih:AEBAGBAFAYDQQCIKBMGA2DQPCAIREEY=", "non-base32");
  /* Two btih that disagree; two that agree (hex and base32) are fine. */
  bad_q("xt=urn:btih:77777777777777777777777777777777",
      "several different btih infohashes");
  struct magnet m;
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&xt=urn:btih:" IH_B32);
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
}
END_TEST

START_TEST(test_xt_kinds)
{
  bad("magnet:?dn=foo&tr=http://t/a", "missing xt=urn:btih:");
  bad("magnet:?", "missing xt");
  bad("magnet:?xt=", "missing xt");
  bad("magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C", "missing xt");
  bad("magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e",
      "v2-only magnet links are not supported");
  struct magnet m;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(magnet_parse(&m, "magnet:?xt=urn:btmh:1220aa", err, sizeof err), UV_EINVAL);
  ck_assert_str_eq(err, "magnet: v2-only magnet links are not supported");
  /* Hybrid: the btih is used. */
  ok(&m, "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
         "&xt=urn:btih:" IH_HEX);
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
  ok(&m, "magnet:?xt=urn:sha1:XX&xt=urn:btih:" IH_HEX "&xt=urn:btmh:1220");
  ck_assert_mem_eq(m.infohash, IH, 20);
  magnet_free(&m);
  /* Not a magnet link. */
  bad("http://example.com/?xt=urn:btih:" IH_HEX, "does not start with \"magnet:?\"");
  bad("magnet:xt=urn:btih:" IH_HEX, "does not start");
  bad("magnet", "does not start");
  bad("", "does not start");
  /* Unknown parameters ignored, even with bad escapes or no value. */
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&xl=12345&ws=http%ZZ&kt=&&x.foo&as");
  magnet_free(&m);
  /* Error with a NULL err buffer. */
  ck_assert_int_eq(magnet_parse(&m, "magnet:?", NULL, 0), UV_EINVAL);
}
END_TEST

START_TEST(test_dn)
{
  struct magnet m;
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&dn=Hello+World%21%20%C3%A9t%c3%A9%2B");
  ck_assert_str_eq(m.name, "Hello World! \xc3\xa9t\xc3\xa9+");
  magnet_free(&m);
  /* Empty dn: no name; the first dn counts. */
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&dn=");
  ck_assert_ptr_null(m.name);
  magnet_free(&m);
  ok(&m, "magnet:?dn=first&xt=urn:btih:" IH_HEX "&dn=second");
  ck_assert_str_eq(m.name, "first");
  magnet_free(&m);
  /* Raw UTF-8 (not escaped) is accepted too. */
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&dn=\xe6\x97\xa5\xe6\x9c\xac");
  ck_assert_str_eq(m.name, "\xe6\x97\xa5\xe6\x9c\xac");
  magnet_free(&m);

  bad_q("dn=a%FFb", "dn is not valid UTF-8");
  bad_q("dn=%C0%80", "dn is not valid UTF-8");     /* overlong NUL */
  bad_q("dn=%ED%A0%80", "dn is not valid UTF-8");  /* surrogate */
  bad_q("dn=%E2%82", "dn is not valid UTF-8");     /* truncated */
  bad_q("dn=a%0Ab", "dn contains control characters");
  bad_q("dn=a%00b", "dn contains control characters");
  bad_q("dn=a%7Fb", "dn contains control characters");
  bad_q("dn=a%C2%9Bb", "dn contains control characters");
  bad_q("dn=a%G0", "bad %-escape in dn");
  bad_q("dn=a%4", "bad %-escape in dn");
  bad_q("dn=%", "bad %-escape in dn");
  /* Only the first dn's content is checked and kept (escapes are checked in all). */
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&dn=ok&dn=%FF");
  ck_assert_str_eq(m.name, "ok");
  magnet_free(&m);
}
END_TEST

START_TEST(test_dn_cap)
{
  /* 600 x "é" (1200 bytes, escaped as %C3%A9) -> 512 characters, 1024 bytes. */
  char *uri = uri_repeat("&dn=x", "%C3%A9", 600);
  struct magnet m;
  ok(&m, uri);
  /* "x" + 511 x é = 1023 bytes: the next é would pass 1024. */
  ck_assert_uint_eq(strlen(m.name), 1023);
  ck_assert_int_eq(m.name[0], 'x');
  ck_assert_mem_eq(m.name + 1021, "\xc3\xa9", 2);
  magnet_free(&m);
  free(uri);
}
END_TEST

START_TEST(test_tr)
{
  struct magnet m;
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&tr=http%3A%2F%2Ftracker.example%3A6969%2Fannounce"
         "&tr=udp://open.example:1337&tr=http%3A%2F%2Ftracker.example%3A6969%2Fannounce"
         "&tr=https://t.example/a?x=1%26y=2");
  ck_assert_uint_eq(m.ntrackers, 3);
  ck_assert_str_eq(m.trackers[0], "http://tracker.example:6969/announce");
  ck_assert_str_eq(m.trackers[1], "udp://open.example:1337");
  ck_assert_str_eq(m.trackers[2], "https://t.example/a?x=1&y=2");
  magnet_free(&m);
  /* '+' stays '+' in tr. */
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&tr=http://a/b+c");
  ck_assert_str_eq(m.trackers[0], "http://a/b+c");
  magnet_free(&m);

  /* 40 distinct: 32 kept. */
  char *uri = uri_numbered("&tr=udp://t", ".example:80", 40);
  ok(&m, uri);
  ck_assert_uint_eq(m.ntrackers, MAGNET_MAX_TRACKERS);
  ck_assert_str_eq(m.trackers[31], "udp://t31.example:80");
  magnet_free(&m);
  free(uri);

  /* Length: 1024 accepted, 1025 refused (counted after decoding). */
  char *u1024 = uri_repeat("&tr=http://x/", "%61", 1024 - 9);
  ok(&m, u1024);
  ck_assert_uint_eq(strlen(m.trackers[0]), 1024);
  magnet_free(&m);
  free(u1024);
  char *u1025 = uri_repeat("&tr=http://x/", "a", 1024 - 8);
  bad(u1025, "tr longer than 1024 bytes");
  free(u1025);

  bad_q("tr=", "empty tr");
  bad_q("tr=http://a/%20b", "tr contains a space or a non-printable byte");
  bad_q("tr=http://a/%0D%0Ab", "tr contains");
  bad_q("tr=http://a/%C3%A9", "tr contains");
  bad_q("tr=http://a/%zz", "bad %-escape in tr");
  /* A bad tr after good ones frees them (ASan would see a leak). */
  bad("magnet:?dn=n&tr=http://a/&tr=http://b/&xt=urn:btih:" IH_HEX "&tr=%", "bad %-escape in tr");
}
END_TEST

START_TEST(test_x_pe)
{
  struct magnet m;
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&x.pe=1.2.3.4:5&x.pe=%5B%3A%3A1%5D%3A6881&x.pe=[2001:db8::7]:51413"
         "&x.pe=peer.example.com:6881&x.pe=my-host:1");
  ck_assert_uint_eq(m.npeers, 3);
  ck_assert_uint_eq(m.peers_skipped, 2);
  const struct sockaddr_in *s4 = (const struct sockaddr_in *)&m.peers[0];
  ck_assert_int_eq(s4->sin_family, AF_INET);
  ck_assert_uint_eq(ntohl(s4->sin_addr.s_addr), 0x01020304u);
  ck_assert_uint_eq(ntohs(s4->sin_port), 5);
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&m.peers[1];
  ck_assert_int_eq(s6->sin6_family, AF_INET6);
  ck_assert(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
  ck_assert_uint_eq(ntohs(s6->sin6_port), 6881);
  s6 = (const struct sockaddr_in6 *)&m.peers[2];
  ck_assert_uint_eq(s6->sin6_addr.s6_addr[0], 0x20);
  ck_assert_uint_eq(s6->sin6_addr.s6_addr[15], 7);
  ck_assert_uint_eq(ntohs(s6->sin6_port), 51413);
  magnet_free(&m);

  /* More than MAGNET_MAX_PEERS: the rest counted as skipped. */
  char *uri = uri_numbered("&x.pe=10.0.0.", ":80", 40);
  ok(&m, uri);
  ck_assert_uint_eq(m.npeers, MAGNET_MAX_PEERS);
  ck_assert_uint_eq(m.peers_skipped, 8);
  magnet_free(&m);
  free(uri);

  bad_q("x.pe=1.2.3.4", "invalid x.pe peer address");
  bad_q("x.pe=1.2.3.4:", "invalid x.pe");
  bad_q("x.pe=1.2.3.4:0", "x.pe peer address has port 0");
  bad_q("x.pe=1.2.3.4:65536", "invalid x.pe");
  bad_q("x.pe=1.2.3.999:5", "invalid x.pe");
  bad_q("x.pe=::1:5", "invalid x.pe");
  bad_q("x.pe=[::1]", "invalid x.pe");
  bad_q("x.pe=[::1:5", "invalid x.pe");
  bad_q("x.pe=[::1]:0", "port 0");
  bad_q("x.pe=host:0", "invalid x.pe");
  bad_q("x.pe=host:080", "invalid x.pe");
  bad_q("x.pe=ho_st:80", "invalid x.pe");
  bad_q("x.pe=host:80%00", "invalid x.pe");
  bad_q("x.pe=", "invalid x.pe");
  bad_q("x.pe=:80", "invalid x.pe");
}
END_TEST

START_TEST(test_so)
{
  struct magnet m;
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX "&so=0,2,4-6");
  ck_assert_uint_eq(m.nso, 3);
  ck_assert_uint_eq(m.so[0].first, 0);
  ck_assert_uint_eq(m.so[0].last, 0);
  ck_assert_uint_eq(m.so[1].first, 2);
  ck_assert_uint_eq(m.so[2].first, 4);
  ck_assert_uint_eq(m.so[2].last, 6);
  static const bool want[8] = { true, false, true, false, true, true, true, false };
  for (uint32_t i = 0; i < 8; i++)
    ck_assert_int_eq(magnet_file_selected(&m, i), want[i]);
  ck_assert(!magnet_file_selected(&m, 99999));
  magnet_free(&m);
  /* No so: every file. Several so: merged. Encoded commas. */
  ok(&m, "magnet:?xt=urn:btih:" IH_HEX);
  ck_assert(magnet_file_selected(&m, 0));
  ck_assert(magnet_file_selected(&m, 123456));
  magnet_free(&m);
  ok(&m, "magnet:?so=1&xt=urn:btih:" IH_HEX "&so=3%2C99999&so=7-7");
  ck_assert_uint_eq(m.nso, 4);
  ck_assert(magnet_file_selected(&m, 99999));
  ck_assert(magnet_file_selected(&m, 7));
  ck_assert(!magnet_file_selected(&m, 6));
  magnet_free(&m);

  bad_q("so=6-4", "so range 6-4 is reversed");
  bad_q("so=1,,2", "so element 2 is not a file index");
  bad_q("so=1,", "so element");
  bad_q("so=,1", "so element 1");
  bad_q("so=a", "so element");
  bad_q("so=100000", "below 100000");
  bad_q("so=4294967296", "so element");
  bad_q("so=01", "so element");
  bad_q("so=-1", "so range");
  bad_q("so=1-", "so range");
  bad_q("so=-", "so range");
  bad_q("so=1-2-3", "so range");
  bad_q("so=0-100000", "so range");
  bad_q("so=+1", "so element");
  bad_q("so= 1", "so element");
  bad_q("so=", "empty so");

  /* Range count: 256 accepted, 257 refused (across so parameters). */
  struct buf b;
  buf_init(&b, 1 << 16);
  ck_assert_int_eq(buf_append_str(&b, "magnet:?xt=urn:btih:" IH_HEX "&so=0"), 0);
  for (int i = 1; i < 200; i++)
    ck_assert_int_eq(buf_printf(&b, ",%d", i * 2), 0);
  ck_assert_int_eq(buf_append_str(&b, "&so=1000"), 0);
  for (int i = 1; i < 56; i++)
    ck_assert_int_eq(buf_printf(&b, ",%d-%d", 1000 + i * 10, 1005 + i * 10), 0);
  char *u256 = buf_steal_cstr(&b, NULL);
  ok(&m, u256);
  ck_assert_uint_eq(m.nso, MAGNET_MAX_SO);
  ck_assert(magnet_file_selected(&m, 1553));
  ck_assert(!magnet_file_selected(&m, 1557));
  magnet_free(&m);
  size_t l = strlen(u256);
  char *u257 = malloc(l + 8);
  memcpy(u257, u256, l);
  memcpy(u257 + l, ",99999", 7);
  bad(u257, "more than 256 so ranges");
  free(u257);
  free(u256);
  buf_free(&b);
}
END_TEST

START_TEST(test_too_long)
{
  size_t n = MAGNET_MAX_LEN + 1;
  char *uri = malloc(n + 1);
  memcpy(uri, "magnet:?xt=urn:btih:" IH_HEX "&x=", 63);
  memset(uri + 63, 'a', n - 63);
  uri[n] = '\0';
  struct magnet m;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(magnet_parse(&m, uri, err, sizeof err), SHOAL_ETOOBIG);
  ck_assert_str_eq(err, "magnet: link longer than 65536 bytes");
  uri[n - 1] = '\0';                   /* exactly the limit: fine */
  ok(&m, uri);
  magnet_free(&m);
  free(uri);
}
END_TEST

START_TEST(test_build)
{
  const char *tr[] = { "http://tracker.example:6969/announce", "udp://t.example:80" };
  char *s = magnet_build(IH, "a b/é", tr, 2);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "magnet:?xt=urn:btih:" IH_HEX "&dn=a%20b%2F%C3%A9"
                      "&tr=http%3A%2F%2Ftracker.example%3A6969%2Fannounce&tr=udp%3A%2F%2Ft.example%3A80");
  struct magnet m;
  ok(&m, s);
  ck_assert_mem_eq(m.infohash, IH, 20);
  ck_assert_str_eq(m.name, "a b/é");
  ck_assert_uint_eq(m.ntrackers, 2);
  ck_assert_str_eq(m.trackers[0], tr[0]);
  ck_assert_str_eq(m.trackers[1], tr[1]);
  magnet_free(&m);
  free(s);
  s = magnet_build(IH, NULL, NULL, 0);
  ck_assert_str_eq(s, "magnet:?xt=urn:btih:" IH_HEX);
  free(s);
  s = magnet_build(IH, "", NULL, 0);
  ck_assert_str_eq(s, "magnet:?xt=urn:btih:" IH_HEX);
  free(s);
  /* A name "+&=%" survives the round trip. */
  s = magnet_build(IH, "+&=%", NULL, 0);
  ok(&m, s);
  ck_assert_str_eq(m.name, "+&=%");
  magnet_free(&m);
  free(s);
  /* Too long for MAGNET_MAX_LEN: NULL. */
  char *big = malloc(30000);
  memset(big, '/', 29999);
  big[29999] = '\0';
  ck_assert_ptr_null(magnet_build(IH, big, NULL, 0));   /* 3 bytes per '/' */
  free(big);
}
END_TEST

Suite *magnet_suite(void)
{
  Suite *s = suite_create("magnet");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_infohash_forms);
  tcase_add_test(tc, test_infohash_bad);
  tcase_add_test(tc, test_xt_kinds);
  tcase_add_test(tc, test_dn);
  tcase_add_test(tc, test_dn_cap);
  tcase_add_test(tc, test_tr);
  tcase_add_test(tc, test_x_pe);
  tcase_add_test(tc, test_so);
  tcase_add_test(tc, test_too_long);
  tcase_add_test(tc, test_build);
  suite_add_tcase(s, tc);
  return s;
}
