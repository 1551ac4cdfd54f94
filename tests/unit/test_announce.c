/* test_announce.c -- tracker client: announce URL, reply parsing, schedule, BEP 12 tier order; the client on a loop against fake UDP trackers. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "peer/announce.h"
#include "peer/http_client.h"

/* ---- helpers ---- */

static struct announce_params test_params(void)
{
  struct announce_params p;
  memset(&p, 0, sizeof p);
  for (int i = 0; i < 20; i++)
    p.infohash[i] = (uint8_t)(0xa0 + i);
  memcpy(p.peer_id, "-SH0001-abcdefghijkl", 20);
  p.port = 6881;
  return p;
}

/* Builds into a NUL-terminated heap string (NULL on error, *rc set). */
static char *build(const char *base, const struct announce_params *p, enum announce_event ev,
                   uint64_t up, uint64_t down, uint64_t left, const char *tid, const char *key, int *rc)
{
  struct buf b;
  buf_init(&b, 8192);
  *rc = announce_build_url(&b, base, p, ev, up, down, left, (const uint8_t *)tid, tid ? strlen(tid) : 0, key);
  if (*rc != 0) {
    buf_free(&b);
    return NULL;
  }
  return buf_steal_cstr(&b, NULL);
}

/* Value of query key `k` in url (first match), copied into out. */
static int query_get(const char *url, const char *k, char *out, size_t cap)
{
  const char *q = strchr(url, '?');
  if (q == NULL)
    return -1;
  q++;
  size_t kl = strlen(k);
  while (*q) {
    const char *end = strchr(q, '&');
    size_t n = end ? (size_t)(end - q) : strlen(q);
    if (n > kl && strncmp(q, k, kl) == 0 && q[kl] == '=') {
      size_t vl = n - kl - 1;
      if (vl + 1 > cap)
        return -1;
      memcpy(out, q + kl + 1, vl);
      out[vl] = '\0';
      return 0;
    }
    q += n;
    if (*q == '&')
      q++;
  }
  return -1;
}

static int count_char(const char *s, char c)
{
  int n = 0;
  for (; *s; s++)
    n += *s == c;
  return n;
}

/* ---- URL building ---- */

START_TEST(test_url_basic)
{
  struct announce_params p = test_params();
  int rc;
  char *u = build("http://tracker.example:8080/announce", &p, ANNOUNCE_EVENT_STARTED, 1, 2, 3,
                  NULL, "0a1b2c3d", &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(u,
                   "http://tracker.example:8080/announce?info_hash="
                   "%A0%A1%A2%A3%A4%A5%A6%A7%A8%A9%AA%AB%AC%AD%AE%AF%B0%B1%B2%B3"
                   "&peer_id=-SH0001-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3"
                   "&compact=1&no_peer_id=1&numwant=50&key=0a1b2c3d&event=started");
  free(u);

  /* No event for a regular announce; the largest counters print in full. */
  u = build("http://t/a", &p, ANNOUNCE_EVENT_NONE, UINT64_MAX, 0, 1234567890123ull, NULL, NULL, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_null(strstr(u, "event="));
  ck_assert_ptr_null(strstr(u, "key="));
  ck_assert_ptr_null(strstr(u, "trackerid="));
  ck_assert_ptr_nonnull(strstr(u, "&uploaded=18446744073709551615&downloaded=0&left=1234567890123&"));
  free(u);
}
END_TEST

START_TEST(test_url_events_numwant)
{
  struct announce_params p = test_params();
  char v[64];
  int rc;
  char *u = build("http://t/a", &p, ANNOUNCE_EVENT_COMPLETED, 0, 0, 0, NULL, NULL, &rc);
  ck_assert_int_eq(query_get(u, "event", v, sizeof v), 0);
  ck_assert_str_eq(v, "completed");
  ck_assert_int_eq(query_get(u, "numwant", v, sizeof v), 0);
  ck_assert_str_eq(v, "50");
  free(u);

  p.numwant = 80;
  u = build("http://t/a", &p, ANNOUNCE_EVENT_STOPPED, 0, 0, 0, NULL, NULL, &rc);
  ck_assert_int_eq(query_get(u, "event", v, sizeof v), 0);
  ck_assert_str_eq(v, "stopped");
  ck_assert_int_eq(query_get(u, "numwant", v, sizeof v), 0);
  ck_assert_str_eq(v, "0");
  free(u);

  u = build("http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert_int_eq(query_get(u, "numwant", v, sizeof v), 0);
  ck_assert_str_eq(v, "80");
  free(u);

  p.numwant = 100000;
  u = build("http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert_int_eq(query_get(u, "numwant", v, sizeof v), 0);
  ck_assert_str_eq(v, "500");
  free(u);

  p.port = 65535;
  u = build("http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert_int_eq(query_get(u, "port", v, sizeof v), 0);
  ck_assert_str_eq(v, "65535");
  free(u);

  ck_assert_str_eq(announce_event_name(ANNOUNCE_EVENT_NONE), "");
  ck_assert_str_eq(announce_event_name(ANNOUNCE_EVENT_STARTED), "started");
}
END_TEST

START_TEST(test_url_existing_query)
{
  struct announce_params p = test_params();
  int rc;
  char *u = build("http://t/a?passkey=abc", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert(strncmp(u, "http://t/a?passkey=abc&info_hash=", 33) == 0);
  ck_assert_int_eq(count_char(u, '?'), 1);
  free(u);

  u = build("http://t/a?", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert(strncmp(u, "http://t/a?info_hash=", 21) == 0);
  ck_assert_int_eq(count_char(u, '?'), 1);
  free(u);

  u = build("http://t/a?x=1&", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert(strncmp(u, "http://t/a?x=1&info_hash=", 25) == 0);
  ck_assert_ptr_null(strstr(u, "&&"));
  free(u);

  /* A fragment is not part of the request: dropped, the query goes before it. */
  u = build("http://t/a#frag", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert(strncmp(u, "http://t/a?info_hash=", 21) == 0);
  ck_assert_ptr_null(strchr(u, '#'));
  free(u);

  u = build("https://t/a?k=v#frag?x", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert(strncmp(u, "https://t/a?k=v&info_hash=", 26) == 0);
  ck_assert_ptr_null(strchr(u, '#'));
  free(u);

  /* '?' only inside the fragment does not count as a query. */
  u = build("http://t/a#x?y", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
  ck_assert(strncmp(u, "http://t/a?info_hash=", 21) == 0);
  free(u);
}
END_TEST

static int is_unreserved(int c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

START_TEST(test_url_escape_all_bytes)
{
  static const char hex[] = "0123456789ABCDEF";
  /* Every byte value goes through info_hash and through peer_id. */
  for (int start = 0; start < 256; start += 20) {
    struct announce_params p = test_params();
    for (int i = 0; i < 20; i++) {
      p.infohash[i] = (uint8_t)((start + i) & 0xff);
      p.peer_id[i] = (uint8_t)(255 - ((start + i) & 0xff));
    }
    int rc;
    char *u = build("http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, NULL, &rc);
    ck_assert_int_eq(rc, 0);
    char want_ih[61], want_pid[61];
    size_t a = 0, b = 0;
    for (int i = 0; i < 20; i++) {
      int c = p.infohash[i];
      if (is_unreserved(c)) {
        want_ih[a++] = (char)c;
      } else {
        want_ih[a++] = '%';
        want_ih[a++] = hex[c >> 4];
        want_ih[a++] = hex[c & 15];
      }
      c = p.peer_id[i];
      if (is_unreserved(c)) {
        want_pid[b++] = (char)c;
      } else {
        want_pid[b++] = '%';
        want_pid[b++] = hex[c >> 4];
        want_pid[b++] = hex[c & 15];
      }
    }
    want_ih[a] = want_pid[b] = '\0';
    char got[128];
    ck_assert_int_eq(query_get(u, "info_hash", got, sizeof got), 0);
    ck_assert_str_eq(got, want_ih);
    ck_assert_int_eq(query_get(u, "peer_id", got, sizeof got), 0);
    ck_assert_str_eq(got, want_pid);
    /* Nothing outside the printable URL set leaks into the URL. */
    for (const char *s = u; *s; s++)
      ck_assert(*s > 0x20 && *s < 0x7f && *s != ' ' && *s != '#');
    free(u);
  }
}
END_TEST

START_TEST(test_url_trackerid_key)
{
  struct announce_params p = test_params();
  char v[128];
  int rc;
  char *u = build("http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, "id&x=1 2", "k/y", &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(query_get(u, "trackerid", v, sizeof v), 0);
  ck_assert_str_eq(v, "id%26x%3D1%202");
  ck_assert_int_eq(query_get(u, "key", v, sizeof v), 0);
  ck_assert_str_eq(v, "k%2Fy");
  free(u);

  /* Binary tracker id with a NUL inside. */
  struct buf b;
  buf_init(&b, 4096);
  const uint8_t tid[3] = { 'a', 0, 0xff };
  ck_assert_int_eq(announce_build_url(&b, "http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, tid, 3, NULL), 0);
  ck_assert_int_eq(buf_append_u8(&b, 0), 0);
  ck_assert_ptr_nonnull(strstr((char *)b.p, "&trackerid=a%00%FF"));
  buf_free(&b);
}
END_TEST

START_TEST(test_url_errors)
{
  struct announce_params p = test_params();
  struct buf b;
  buf_init(&b, 100);
  ck_assert_int_eq(buf_append_str(&b, "keep"), 0);
  /* Too long for the buffer: fails and leaves it as it was. */
  ck_assert_int_eq(announce_build_url(&b, "http://t/a", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, 0, NULL), UV_E2BIG);
  ck_assert_uint_eq(b.len, 4);
  ck_assert(memcmp(b.p, "keep", 4) == 0);
  ck_assert_int_eq(announce_build_url(&b, "", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, 0, NULL), UV_EINVAL);
  ck_assert_int_eq(announce_build_url(&b, "#x", &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, 0, NULL), UV_EINVAL);
  ck_assert_int_eq(announce_build_url(&b, NULL, &p, ANNOUNCE_EVENT_NONE, 0, 0, 0, NULL, 0, NULL), UV_EINVAL);
  ck_assert_uint_eq(b.len, 4);
  buf_free(&b);
}
END_TEST

/* ---- reply parsing ---- */

static int parse(const char *s, size_t len, struct announce_reply *r, char *err)
{
  return announce_parse_reply((const uint8_t *)s, len, r, err, SHOAL_ERRLEN);
}
#define PARSE(lit, r, err) parse((lit), sizeof(lit) - 1, (r), (err))

static void check_v4(const struct sockaddr_storage *ss, const char *ip, int port)
{
  ck_assert_int_eq(ss->ss_family, AF_INET);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
  char buf[64];
  ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
  ck_assert_str_eq(buf, ip);
  ck_assert_int_eq(ntohs(sin->sin_port), port);
}

static void check_v6(const struct sockaddr_storage *ss, const char *ip, int port)
{
  ck_assert_int_eq(ss->ss_family, AF_INET6);
  const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
  char buf[64];
  ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf));
  ck_assert_str_eq(buf, ip);
  ck_assert_int_eq(ntohs(sin6->sin6_port), port);
}

START_TEST(test_parse_compact)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  /* 10.0.0.1:6881, 192.168.1.2:80, 1.2.3.4:0 (skipped) */
  static const char body[] = "d8:completei5e10:incompletei7e8:intervali1800e"
                             "5:peers18:\x0a\x00\x00\x01\x1a\xe1\xc0\xa8\x01\x02\x00\x50\x01\x02\x03\x04\x00\x00" "e";
  ck_assert_int_eq(PARSE(body, &r, err), 0);
  ck_assert(!r.failed);
  ck_assert_int_eq(r.interval, 1800);
  ck_assert_int_eq(r.min_interval, -1);
  ck_assert_int_eq(r.complete, 5);
  ck_assert_int_eq(r.incomplete, 7);
  ck_assert_uint_eq(r.tracker_id_len, 0);
  ck_assert_str_eq(r.warning, "");
  ck_assert_uint_eq(r.npeers, 2);
  check_v4(&r.peers[0], "10.0.0.1", 6881);
  check_v4(&r.peers[1], "192.168.1.2", 80);
  announce_reply_free(&r);
  ck_assert_ptr_null(r.peers);

  /* Empty peers string and no interval: fine, nothing allocated. */
  ck_assert_int_eq(PARSE("d5:peers0:e", &r, err), 0);
  ck_assert_uint_eq(r.npeers, 0);
  ck_assert_ptr_null(r.peers);
  ck_assert_int_eq(r.interval, -1);
  ck_assert_int_eq(r.complete, -1);
  announce_reply_free(&r);

  /* No peers key at all (a reply to event=stopped). */
  ck_assert_int_eq(PARSE("de", &r, err), 0);
  ck_assert_uint_eq(r.npeers, 0);
  announce_reply_free(&r);
}
END_TEST

START_TEST(test_parse_dict_peers)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  static const char body[] =
      "d8:intervali900e5:peersl"
      "d2:ip8:10.1.2.37:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881ee"   /* good v4 */
      "d2:ip11:example.com4:porti1ee"                                 /* hostname: skipped */
      "d2:ip7:1.2.3.44:porti0ee"                                      /* port 0 */
      "d2:ip7:1.2.3.44:porti65536ee"                                  /* port too large */
      "d2:ip7:1.2.3.44:porti-1ee"                                     /* negative port */
      "d4:porti80ee"                                                  /* no ip */
      "d2:ip7:1.2.3.4e"                                               /* no port */
      "d2:ipi5e4:porti80ee"                                           /* ip not a string */
      "d2:ip7:1.2.3.44:port2:80e"                                     /* port not an int */
      "i42e"                                                          /* not a dict */
      "l2:ipe"                                                        /* not a dict */
      "d2:ip9:1.2.3.4\x00x4:porti80ee"                                /* NUL inside */
      "d2:ip60:111111111111111111111111111111111111111111111111111111111111"
      "4:porti80ee"                                                   /* too long */
      "d2:ip8:1.2.3.4 4:porti80ee"                                    /* trailing space */
      "d2:ip11:2001:db8::14:porti443ee"                               /* good v6 */
      "d2:ip15:255.255.255.2554:porti65535ee"                         /* good v4, max */
      "ee";
  ck_assert_int_eq(PARSE(body, &r, err), 0);
  ck_assert_uint_eq(r.npeers, 3);
  check_v4(&r.peers[0], "10.1.2.3", 6881);
  check_v6(&r.peers[1], "2001:db8::1", 443);
  check_v4(&r.peers[2], "255.255.255.255", 65535);
  ck_assert_int_eq(r.interval, 900);
  announce_reply_free(&r);

  /* Only bad entries: success with no peers. */
  ck_assert_int_eq(PARSE("d5:peersld2:ip1:x4:porti1eeee", &r, err), 0);
  ck_assert_uint_eq(r.npeers, 0);
  ck_assert_ptr_null(r.peers);
  announce_reply_free(&r);
}
END_TEST

START_TEST(test_parse_peers6)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  static const char body[] =
      "d5:peers6:\x7f\x00\x00\x01\x1a\xe1"
      "6:peers636:"
      "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50"
      "e";
  ck_assert_int_eq(PARSE(body, &r, err), 0);
  ck_assert_uint_eq(r.npeers, 3);
  check_v4(&r.peers[0], "127.0.0.1", 6881);
  check_v6(&r.peers[1], "2001:db8::1", 6882);
  check_v6(&r.peers[2], "::1", 80);
  announce_reply_free(&r);
}
END_TEST

START_TEST(test_parse_failure_warning)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(PARSE("d14:failure reason17:torrent not founde", &r, err), 0);
  ck_assert(r.failed);
  ck_assert_str_eq(r.failure, "torrent not found");
  ck_assert_uint_eq(r.npeers, 0);
  announce_reply_free(&r);

  /* With a failure, peers are not read (even malformed ones), intervals are. */
  ck_assert_int_eq(PARSE("d14:failure reason3:no!8:intervali60e5:peers7:1234567e", &r, err), 0);
  ck_assert(r.failed);
  ck_assert_str_eq(r.failure, "no!");
  ck_assert_int_eq(r.interval, 60);
  ck_assert_uint_eq(r.npeers, 0);
  announce_reply_free(&r);

  /* Control bytes and broken UTF-8 become '?', valid UTF-8 stays. */
  static const char body[] = "d14:failure reason11:a\nb\x01\xc3\xa9\xff\xe2\x82\xac" "ce";
  ck_assert_int_eq(PARSE(body, &r, err), 0);
  ck_assert_str_eq(r.failure, "a?b?\xc3\xa9?\xe2\x82\xac" "c");
  announce_reply_free(&r);

  /* A truncated multi-byte sequence at the end becomes '?'. */
  ck_assert_int_eq(PARSE("d14:failure reason3:x\xe2\x82" "e", &r, err), 0);
  ck_assert_str_eq(r.failure, "x??");
  announce_reply_free(&r);

  /* Long text is cut to the buffer. */
  char big[700];
  int n = snprintf(big, sizeof big, "d14:failure reason600:");
  memset(big + n, 'z', 600);
  big[n + 600] = 'e';
  ck_assert_int_eq(parse(big, (size_t)n + 601, &r, err), 0);
  ck_assert_uint_eq(strlen(r.failure), ANNOUNCE_MAX_TEXT - 1);
  announce_reply_free(&r);

  ck_assert_int_eq(PARSE("d8:intervali30e5:peers0:15:warning message9:slow downe", &r, err), 0);
  ck_assert(!r.failed);
  ck_assert_str_eq(r.warning, "slow down");
  announce_reply_free(&r);
}
END_TEST

START_TEST(test_parse_intervals_trackerid)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(PARSE("d8:intervali1200e12:min intervali300e5:peers0:10:tracker id6:abc123e", &r, err), 0);
  ck_assert_int_eq(r.interval, 1200);
  ck_assert_int_eq(r.min_interval, 300);
  ck_assert_uint_eq(r.tracker_id_len, 6);
  ck_assert(memcmp(r.tracker_id, "abc123", 6) == 0);
  announce_reply_free(&r);

  /* Zero interval is kept as 0 (the schedule treats it as absent). */
  ck_assert_int_eq(PARSE("d8:intervali0ee", &r, err), 0);
  ck_assert_int_eq(r.interval, 0);
  announce_reply_free(&r);

  /* Huge but valid int64: accepted here, clamped by the schedule. */
  ck_assert_int_eq(PARSE("d8:intervali9223372036854775807ee", &r, err), 0);
  ck_assert_int_eq(r.interval, INT64_MAX);
  announce_reply_free(&r);

  /* Tracker id too long: ignored, not an error.  Of another type: ignored. */
  char big[400];
  int n = snprintf(big, sizeof big, "d10:tracker id200:");
  memset(big + n, 't', 200);
  big[n + 200] = 'e';
  ck_assert_int_eq(parse(big, (size_t)n + 201, &r, err), 0);
  ck_assert_uint_eq(r.tracker_id_len, 0);
  announce_reply_free(&r);
  ck_assert_int_eq(PARSE("d10:tracker idi5ee", &r, err), 0);
  ck_assert_uint_eq(r.tracker_id_len, 0);
  announce_reply_free(&r);

  /* Negative or non-integer counts: unknown. */
  ck_assert_int_eq(PARSE("d8:completei-3e10:incomplete1:xe", &r, err), 0);
  ck_assert_int_eq(r.complete, -1);
  ck_assert_int_eq(r.incomplete, -1);
  announce_reply_free(&r);
}
END_TEST

START_TEST(test_parse_cap)
{
  /* 600 compact v4 peers + 10 v6: only ANNOUNCE_MAX_PEERS kept, v4 first. */
  size_t n4 = 600, n6 = 10;
  struct buf b;
  buf_init(&b, 1 << 20);
  ck_assert_int_eq(buf_printf(&b, "d5:peers%zu:", n4 * 6), 0);
  for (size_t i = 0; i < n4; i++) {
    uint8_t e[6] = { 10, 0, (uint8_t)(i >> 8), (uint8_t)i, 0x1a, 0xe1 };
    ck_assert_int_eq(buf_append(&b, e, 6), 0);
  }
  ck_assert_int_eq(buf_printf(&b, "6:peers6%zu:", n6 * 18), 0);
  for (size_t i = 0; i < n6; i++) {
    uint8_t e[18] = { 0x20, 0x01, 0x0d, 0xb8 };
    e[15] = (uint8_t)(i + 1);
    e[16] = 0x1a;
    e[17] = 0xe1;
    ck_assert_int_eq(buf_append(&b, e, 18), 0);
  }
  ck_assert_int_eq(buf_append_u8(&b, 'e'), 0);
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(announce_parse_reply(b.p, b.len, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.npeers, ANNOUNCE_MAX_PEERS);
  check_v4(&r.peers[0], "10.0.0.0", 6881);
  check_v4(&r.peers[ANNOUNCE_MAX_PEERS - 1], "10.0.1.243", 6881);
  announce_reply_free(&r);

  /* Fewer v4: v6 fills in after them. */
  struct buf c;
  buf_init(&c, 4096);
  static const char head[] = "d5:peers6:\x01\x02\x03\x04\x00\x01" "6:peers618:";
  ck_assert_int_eq(buf_append(&c, head, sizeof head - 1), 0);
  uint8_t e6[18] = { 0 };
  e6[15] = 1;
  e6[17] = 2;
  ck_assert_int_eq(buf_append(&c, e6, 18), 0);
  ck_assert_int_eq(buf_append_u8(&c, 'e'), 0);
  ck_assert_int_eq(announce_parse_reply(c.p, c.len, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.npeers, 2);
  check_v4(&r.peers[0], "1.2.3.4", 1);
  check_v6(&r.peers[1], "::1", 2);
  announce_reply_free(&r);
  buf_free(&c);

  /* Over the reply cap: refused before decoding. */
  ck_assert_int_eq(announce_parse_reply(b.p, ANNOUNCE_MAX_REPLY + 1, &r, err, sizeof err), SHOAL_ETOOBIG);
  buf_free(&b);
}
END_TEST

START_TEST(test_parse_malformed)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  struct {
    const char *body;
    size_t len;
    int want;
  } cases[] = {
#define C(lit, want) { lit, sizeof(lit) - 1, want }
    C("", SHOAL_EBENCODE),
    C("not bencode at all", SHOAL_EBENCODE),
    C("<html>502 Bad Gateway</html>", SHOAL_EBENCODE),
    C("d8:intervali1800e", SHOAL_EBENCODE),                  /* unterminated */
    C("d8:intervali1800ee5:extra", SHOAL_EBENCODE),          /* trailing data */
    C("d8:intervali99999999999999999999ee", SHOAL_EBENCODE), /* int64 overflow */
    C("d8:intervali-0ee", SHOAL_EBENCODE),
    C("d8:intervali018ee", SHOAL_EBENCODE),
    C("d5:peers9999999:abce", SHOAL_EBENCODE),              /* string longer than input */
    C("d1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ad1:ai1eeeeeeeeee", SHOAL_EBENCODE), /* depth > 8 */
    C("li1ee", SHOAL_EPROTO),                               /* not a dict */
    C("4:spam", SHOAL_EPROTO),
    C("i42e", SHOAL_EPROTO),
    C("d5:peers7:1234567e", SHOAL_EPROTO),                  /* BEP 23: not a multiple of 6 */
    C("d5:peers1:xe", SHOAL_EPROTO),
    C("d6:peers620:12345678901234567890e", SHOAL_EPROTO),   /* not a multiple of 18 */
    C("d6:peers66:123456e", SHOAL_EPROTO),
    C("d8:intervali-5ee", SHOAL_EPROTO),                    /* negative interval */
    C("d12:min intervali-1ee", SHOAL_EPROTO),
    C("d8:interval4:1800e", SHOAL_EPROTO),                  /* interval of the wrong type */
    C("d8:intervalli1eee", SHOAL_EPROTO),
    C("d5:peersi5ee", SHOAL_EPROTO),                        /* peers of the wrong type */
    C("d5:peersdee", SHOAL_EPROTO),
    C("d6:peers6lee", SHOAL_EPROTO),                        /* peers6 as a list */
    C("d14:failure reasoni1ee", SHOAL_EPROTO),
    C("d15:warning messageli1eee", SHOAL_EPROTO),
    C("d8:intervali1e8:intervali2ee", SHOAL_EBENCODE),      /* duplicate key */
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err[0] = '\0';
    int rc = parse(cases[i].body, cases[i].len, &r, err);
    if (rc != cases[i].want)
      ck_abort_msg("case %zu (%.40s): got %d, want %d (%s)", i, cases[i].body, rc, cases[i].want, err);
    ck_assert_msg(err[0] != '\0', "case %zu: no reason given", i);
    ck_assert_ptr_null(r.peers);
    ck_assert_uint_eq(r.npeers, 0);
  }

  /* Too many tokens: a list of 100001 integers. */
  struct buf b;
  buf_init(&b, 1 << 20);
  ck_assert_int_eq(buf_append_str(&b, "d5:peersl"), 0);
  for (int i = 0; i < 100001; i++)
    ck_assert_int_eq(buf_append_str(&b, "i1e"), 0);
  ck_assert_int_eq(buf_append_str(&b, "ee"), 0);
  ck_assert_int_eq(announce_parse_reply(b.p, b.len, &r, err, sizeof err), SHOAL_ETOOBIG);
  buf_free(&b);

  /* Depth 8 is still fine. */
  ck_assert_int_eq(PARSE("d1:xd1:ad1:ad1:ad1:ad1:ad1:ad1:ai1eeeeeeeee", &r, err), 0);
  announce_reply_free(&r);
}
END_TEST

/* ---- schedule ---- */

START_TEST(test_sched_success)
{
  struct announce_sched s = { 0 };
  ck_assert_uint_eq(announce_next_delay_ms(&s, 12345), ANNOUNCE_DEFAULT_INTERVAL_S * 1000ull);
  s.interval_s = 900;
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), 900000);
  ck_assert_uint_eq(announce_next_delay_ms(&s, UINT32_MAX), 900000);   /* no jitter on success */
  s.interval_s = 10;                                                   /* below the floor */
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), 30000);
  s.floor_s = 1;                                                       /* tests lower it */
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), 10000);
  s.min_interval_s = 120;                                              /* min interval wins */
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), 120000);
  s.interval_s = UINT32_MAX;                                           /* huge: clamped */
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), ANNOUNCE_MAX_INTERVAL_S * 1000ull);
  s.interval_s = 60;
  s.min_interval_s = UINT32_MAX;
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), ANNOUNCE_MAX_INTERVAL_S * 1000ull);

  struct announce_sched g = { 0 };
  ck_assert_uint_eq(announce_min_gap_ms(&g), 30000);
  g.min_interval_s = 300;
  ck_assert_uint_eq(announce_min_gap_ms(&g), 300000);
  g.min_interval_s = 0;
  g.floor_s = 2;
  ck_assert_uint_eq(announce_min_gap_ms(&g), 2000);
  g.min_interval_s = UINT32_MAX;
  ck_assert_uint_eq(announce_min_gap_ms(&g), ANNOUNCE_MAX_INTERVAL_S * 1000ull);
}
END_TEST

START_TEST(test_sched_backoff)
{
  static const uint64_t want_s[] = { 15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800 };
  struct announce_sched s = { 0 };
  s.interval_s = 900;   /* ignored while failing */
  for (uint32_t f = 1; f <= 10; f++) {
    s.failures = f;
    uint64_t base = want_s[f - 1] * 1000;
    ck_assert_uint_eq(announce_next_delay_ms(&s, 0), base);
    uint64_t hi = announce_next_delay_ms(&s, UINT32_MAX);
    ck_assert_uint_ge(hi, base);
    ck_assert_uint_le(hi, base + base / 5);
    /* The jitter is the random value modulo (a fifth + 1). */
    ck_assert_uint_eq(announce_next_delay_ms(&s, 7), base + 7);
    ck_assert_uint_eq(announce_next_delay_ms(&s, (uint32_t)(base / 5 + 1)), base);
  }
  s.failures = UINT32_MAX;
  ck_assert_uint_eq(announce_next_delay_ms(&s, 0), ANNOUNCE_BACKOFF_MAX_S * 1000ull);
  ck_assert_uint_le(announce_next_delay_ms(&s, UINT32_MAX), ANNOUNCE_BACKOFF_MAX_S * 1200ull);

  /* A floor below 15 s (tests) also starts the back-off lower. */
  struct announce_sched t = { .floor_s = 1, .failures = 1 };
  ck_assert_uint_eq(announce_next_delay_ms(&t, 0), 1000);
  t.failures = 3;
  ck_assert_uint_eq(announce_next_delay_ms(&t, 0), 4000);
  t.failures = 40;
  ck_assert_uint_eq(announce_next_delay_ms(&t, 0), ANNOUNCE_BACKOFF_MAX_S * 1000ull);
}
END_TEST

/* ---- tiers ---- */

static uint32_t seq_rnd(void *ctx)
{
  uint32_t *x = ctx;
  *x = *x * 1103515245u + 12345u;
  return *x >> 8;
}

static void tiers_of(struct announce_tiers *t, const char *const *const *spec, uint32_t n, uint32_t (*rnd)(void *), void *rctx)
{
  struct manifest_tier mt[8];
  ck_assert_uint_le(n, 8);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t c = 0;
    while (spec[i][c])
      c++;
    mt[i].urls = (char **)spec[i];
    mt[i].count = c;
  }
  ck_assert_int_eq(announce_tiers_init(t, mt, n, rnd, rctx), 0);
}

static const char *url_at(const struct announce_tiers *t, uint32_t tier, uint32_t i)
{
  struct announce_pos p = { tier, i };
  return announce_tiers_url(t, p);
}

START_TEST(test_tiers_supported)
{
  ck_assert(announce_url_supported("http://t/a"));
  ck_assert(announce_url_supported("HTTPS://t/a"));
  ck_assert(announce_url_supported("Http://t"));
  ck_assert(announce_url_supported("udp://t:80"));
  ck_assert(announce_url_supported("UDP://t:80/announce"));
  ck_assert(!announce_url_supported("wss://t"));
  ck_assert(!announce_url_supported("udp:/t:80"));
  ck_assert(!announce_url_supported("http:/t"));
  ck_assert(!announce_url_supported("ws://t"));
  ck_assert(!announce_url_supported(""));
  ck_assert(!announce_url_supported(NULL));
}
END_TEST

START_TEST(test_tiers_order_and_skip)
{
  static const char *const t0[] = { "wss://u1/", "http://a/", "udp://u2:80", "http://b/", NULL };
  static const char *const t1[] = { "wss://u3/", NULL };
  static const char *const t2[] = { "https://c/", NULL };
  static const char *const *const spec[] = { t0, t1, t2 };
  struct announce_tiers t;
  tiers_of(&t, spec, 3, NULL, NULL);   /* no shuffle: order kept */
  ck_assert_uint_eq(t.ntiers, 3);
  struct announce_pos p;
  ck_assert_int_eq(announce_tiers_first(&t, &p), 0);
  ck_assert_str_eq(announce_tiers_url(&t, p), "http://a/");
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);
  ck_assert_str_eq(announce_tiers_url(&t, p), "udp://u2:80");   /* http and udp mix in a tier */
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);
  ck_assert_str_eq(announce_tiers_url(&t, p), "http://b/");
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);   /* tier 1 holds only wss: skipped */
  ck_assert_uint_eq(p.tier, 2);
  ck_assert_str_eq(announce_tiers_url(&t, p), "https://c/");
  struct announce_pos before = p;
  ck_assert_int_eq(announce_tiers_next(&t, &p), -1);  /* round over */
  ck_assert_uint_eq(p.tier, before.tier);
  ck_assert_uint_eq(p.url, before.url);
  struct announce_pos out = { 9, 0 };
  ck_assert_ptr_null(announce_tiers_url(&t, out));
  announce_tiers_free(&t);

  static const char *const only_other[] = { "wss://x:1", "ftp://y:2", NULL };
  static const char *const *const spec2[] = { only_other };
  tiers_of(&t, spec2, 1, NULL, NULL);
  ck_assert_int_eq(announce_tiers_first(&t, &p), -1);
  announce_tiers_free(&t);

  /* No tiers at all. */
  ck_assert_int_eq(announce_tiers_init(&t, NULL, 0, NULL, NULL), 0);
  ck_assert_int_eq(announce_tiers_first(&t, &p), -1);
  announce_tiers_free(&t);
}
END_TEST

START_TEST(test_tiers_promote_bep12)
{
  /* BEP 12's example: [t1, t2, t3]; t1 fails, t2 answers -> [t2, t1, t3];
   * later t2 and t1 fail, t3 answers -> [t3, t2, t1]. */
  static const char *const t0[] = { "http://t1/", "http://t2/", "http://t3/", NULL };
  static const char *const *const spec[] = { t0 };
  struct announce_tiers t;
  tiers_of(&t, spec, 1, NULL, NULL);
  struct announce_pos p;
  ck_assert_int_eq(announce_tiers_first(&t, &p), 0);
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);     /* t1 failed */
  ck_assert_str_eq(announce_tiers_url(&t, p), "http://t2/");
  announce_tiers_promote(&t, &p);                       /* t2 answered */
  ck_assert_uint_eq(p.url, 0);
  ck_assert_str_eq(url_at(&t, 0, 0), "http://t2/");
  ck_assert_str_eq(url_at(&t, 0, 1), "http://t1/");
  ck_assert_str_eq(url_at(&t, 0, 2), "http://t3/");

  ck_assert_int_eq(announce_tiers_first(&t, &p), 0);
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);
  ck_assert_str_eq(announce_tiers_url(&t, p), "http://t3/");
  announce_tiers_promote(&t, &p);
  ck_assert_str_eq(url_at(&t, 0, 0), "http://t3/");
  ck_assert_str_eq(url_at(&t, 0, 1), "http://t2/");
  ck_assert_str_eq(url_at(&t, 0, 2), "http://t1/");

  /* Promoting the front is a no-op. */
  announce_tiers_promote(&t, &p);
  ck_assert_str_eq(url_at(&t, 0, 0), "http://t3/");
  ck_assert_str_eq(url_at(&t, 0, 1), "http://t2/");
  announce_tiers_free(&t);

  /* Promotion stays within its tier: backup tiers keep their place. */
  static const char *const a[] = { "http://a1/", NULL };
  static const char *const b[] = { "http://b1/", "http://b2/", NULL };
  static const char *const *const spec2[] = { a, b };
  tiers_of(&t, spec2, 2, NULL, NULL);
  ck_assert_int_eq(announce_tiers_first(&t, &p), 0);
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);
  ck_assert_int_eq(announce_tiers_next(&t, &p), 0);
  ck_assert_str_eq(announce_tiers_url(&t, p), "http://b2/");
  announce_tiers_promote(&t, &p);
  ck_assert_uint_eq(p.tier, 1);
  ck_assert_str_eq(url_at(&t, 0, 0), "http://a1/");
  ck_assert_str_eq(url_at(&t, 1, 0), "http://b2/");
  ck_assert_str_eq(url_at(&t, 1, 1), "http://b1/");
  /* The next round starts at tier 0 again. */
  ck_assert_int_eq(announce_tiers_first(&t, &p), 0);
  ck_assert_str_eq(announce_tiers_url(&t, p), "http://a1/");
  announce_tiers_free(&t);
}
END_TEST

START_TEST(test_tiers_shuffle_and_limits)
{
  static const char *const t0[] = { "http://1/", "http://2/", "http://3/", "http://4/", "http://5/", "http://6/", NULL };
  static const char *const t1[] = { "http://x/", NULL };
  static const char *const *const spec[] = { t0, t1 };
  int moved = 0;
  for (uint32_t seed = 1; seed <= 20; seed++) {
    uint32_t st = seed;
    struct announce_tiers t;
    tiers_of(&t, spec, 2, seq_rnd, &st);
    ck_assert_uint_eq(t.ntiers, 2);
    ck_assert_uint_eq(t.tier[0].count, 6);
    /* A permutation of the tier: every URL exactly once. */
    int seen[6] = { 0 };
    for (uint32_t i = 0; i < 6; i++) {
      int d = t.tier[0].urls[i][7] - '1';
      ck_assert(d >= 0 && d < 6);
      seen[d]++;
      moved += d != (int)i;
    }
    for (int i = 0; i < 6; i++)
      ck_assert_int_eq(seen[i], 1);
    /* Tiers are shuffled inside, never mixed. */
    ck_assert_uint_eq(t.tier[1].count, 1);
    ck_assert_str_eq(t.tier[1].urls[0], "http://x/");
    announce_tiers_free(&t);
  }
  ck_assert_int_gt(moved, 0);

  /* Empty tiers, empty URLs and over-long URLs are dropped. */
  char *longurl = malloc(ANNOUNCE_MAX_URL_LEN + 2);
  memcpy(longurl, "http://", 7);
  memset(longurl + 7, 'a', ANNOUNCE_MAX_URL_LEN - 6);
  longurl[ANNOUNCE_MAX_URL_LEN + 1] = '\0';
  char *e1[] = { "", longurl };
  char *e2[] = { "http://ok/" };
  struct manifest_tier mt[3] = { { NULL, 0 }, { e1, 2 }, { e2, 1 } };
  struct announce_tiers t;
  ck_assert_int_eq(announce_tiers_init(&t, mt, 3, NULL, NULL), 0);
  ck_assert_uint_eq(t.ntiers, 1);
  ck_assert_str_eq(t.tier[0].urls[0], "http://ok/");
  announce_tiers_free(&t);
  free(longurl);

  /* At most ANNOUNCE_MAX_URLS in all. */
  enum { N = ANNOUNCE_MAX_URLS + 50 };
  char **many = calloc(N, sizeof *many);
  for (int i = 0; i < N; i++) {
    many[i] = malloc(32);
    snprintf(many[i], 32, "http://h%d/", i);
  }
  struct manifest_tier big[2] = { { many, N }, { many, 1 } };
  ck_assert_int_eq(announce_tiers_init(&t, big, 2, NULL, NULL), 0);
  ck_assert_uint_eq(t.ntiers, 1);
  ck_assert_uint_eq(t.tier[0].count, ANNOUNCE_MAX_URLS);
  announce_tiers_free(&t);
  for (int i = 0; i < N; i++)
    free(many[i]);
  free(many);
}
END_TEST

/* ---- the client on a loop, against fake UDP trackers ---- */

enum ufake_mode { UF_NORMAL, UF_ERROR, UF_BAD_PEERS, UF_SILENT };

struct ufake {
  uv_udp_t sock;
  enum ufake_mode mode;
  unsigned got, announces;
  uint32_t last_event, last_numwant;
  uint16_t port;
};

static void ufake_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
  static char mem[2048];
  (void)h;
  (void)sz;
  b->base = mem;
  b->len = sizeof mem;
}

static void ufake_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
  struct ufake *f = h->data;
  (void)flags;
  if (nread < 16 || addr == NULL)
    return;
  const uint8_t *p = (const uint8_t *)buf->base;
  uint32_t action = get_u32be(p + 8), tid = get_u32be(p + 12);
  f->got++;
  if (f->mode == UF_SILENT)
    return;
  uint8_t out[64];
  size_t n;
  put_u32be(out + 4, tid);
  if (action == 0) {
    put_u32be(out, 0);
    put_u64be(out + 8, 0x1234);
    n = 16;
  } else if (nread >= 98) {
    f->announces++;
    f->last_event = get_u32be(p + 80);
    f->last_numwant = get_u32be(p + 92);
    if (f->mode == UF_ERROR) {
      put_u32be(out, 3);
      memcpy(out + 8, "go away\x01", 8);
      n = 16;
    } else {
      put_u32be(out, 1);
      put_u32be(out + 8, 1000);
      put_u32be(out + 12, 2);
      put_u32be(out + 16, 1);
      static const uint8_t pe[13] = { 10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2, 9 };
      memcpy(out + 20, pe, sizeof pe);
      n = f->mode == UF_BAD_PEERS ? 20 + 13 : 20 + 12;
    }
  } else {
    return;
  }
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  ck_assert_int_eq(uv_udp_try_send(h, &b, 1, addr), (int)n);
}

static void ufake_start(uv_loop_t *loop, struct ufake *f, enum ufake_mode mode)
{
  memset(f, 0, sizeof *f);
  f->mode = mode;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  ck_assert_int_eq(uv_udp_init(loop, &f->sock), 0);
  f->sock.data = f;
  ck_assert_int_eq(uv_udp_bind(&f->sock, (const struct sockaddr *)&a, 0), 0);
  ck_assert_int_eq(uv_udp_recv_start(&f->sock, ufake_alloc, ufake_recv), 0);
  struct sockaddr_in bound;
  int len = sizeof bound;
  ck_assert_int_eq(uv_udp_getsockname(&f->sock, (struct sockaddr *)&bound, &len), 0);
  f->port = ntohs(bound.sin_port);
}

struct client_log {
  char status[8][160];
  char urls[8][64];
  int nstatus;
  int npeer_calls;
  size_t npeers;
  struct sockaddr_storage first;
  int stopped;
};

static void cl_stats(void *ctx, uint64_t *up, uint64_t *down, uint64_t *left)
{
  (void)ctx;
  *up = 1;
  *down = 2;
  *left = 3;
}

static void cl_peers(void *ctx, const struct sockaddr_storage *peers, size_t n)
{
  struct client_log *l = ctx;
  l->npeer_calls++;
  l->npeers = n;
  l->first = peers[0];
}

static void cl_status(void *ctx, const char *url, const char *msg)
{
  struct client_log *l = ctx;
  if (l->nstatus < 8) {
    snprintf(l->status[l->nstatus], sizeof l->status[0], "%s", msg);
    snprintf(l->urls[l->nstatus], sizeof l->urls[0], "%s", url);
  }
  l->nstatus++;
}

static void cl_stopped(void *ctx)
{
  ((struct client_log *)ctx)->stopped++;
}

static void run_while(uv_loop_t *loop, const int *counter, int want, uint64_t max_ms)
{
  uint64_t end = uv_now(loop) + max_ms;
  while (*counter < want && uv_now(loop) < end)
    uv_run(loop, UV_RUN_ONCE);
}

static void finish_loop(uv_loop_t *loop, struct http_client *http)
{
  http_client_close(http, NULL, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(loop), 0);   /* every handle, the shared UDP client's too, closed */
}

/* A tier of a UDP tracker that answers with an error, then a tier with a
 * working one: BEP 12 order, the error as "failure: ...", the peers, the
 * stopped event to the tracker that answered. */
static void udp_tiers_case(enum ufake_mode first_mode, const char *want_status)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct http_client *http;
  ck_assert_int_eq(http_client_new(&loop, &http), 0);
  struct ufake bad, good;
  ufake_start(&loop, &bad, first_mode);
  ufake_start(&loop, &good, UF_NORMAL);
  char u1[64], u2[64];
  snprintf(u1, sizeof u1, "udp://127.0.0.1:%u", bad.port);
  snprintf(u2, sizeof u2, "udp://127.0.0.1:%u/announce", good.port);
  char *t0[] = { u1 }, *t1[] = { u2 };
  struct manifest_tier tiers[2] = { { t0, 1 }, { t1, 1 } };
  struct announce_params p = test_params();
  p.min_interval_floor_s = 1;
  struct announce_cbs cbs = { cl_stats, cl_peers, cl_status };
  struct client_log log;
  memset(&log, 0, sizeof log);
  struct announce *a;
  ck_assert_int_eq(announce_new(&loop, http, tiers, 2, &p, &cbs, &log, &a), 0);
  announce_start(a);
  run_while(&loop, &log.npeer_calls, 1, 5000);
  ck_assert_int_eq(log.npeer_calls, 1);
  ck_assert_int_ge(log.nstatus, 2);
  ck_assert_str_eq(log.urls[0], u1);
  ck_assert_str_eq(log.status[0], want_status);
  ck_assert_str_eq(log.urls[1], u2);
  ck_assert_str_eq(log.status[1], "ok");
  ck_assert_uint_eq(log.npeers, 2);
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&log.first;
  ck_assert_int_eq(sin->sin_family, AF_INET);
  ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0x0a000001);
  ck_assert_uint_eq(ntohs(sin->sin_port), 6881);
  ck_assert_uint_eq(good.last_event, 2);   /* started */
  ck_assert_uint_eq(good.last_numwant, ANNOUNCE_DEFAULT_NUMWANT);
  struct announce_info info;
  announce_get_info(a, &info);
  ck_assert_str_eq(info.working_url, u2);
  ck_assert_int_eq(info.seeders, 1);
  ck_assert_int_eq(info.leechers, 2);
  ck_assert_uint_eq(info.failures, 0);
  ck_assert_uint_gt(info.next_in_ms, 0);

  /* Stop: event=stopped (3) with num_want 0 to the tracker that answered. */
  unsigned before = good.announces;
  announce_stop(a, cl_stopped, &log);
  run_while(&loop, &log.stopped, 1, 5000);
  ck_assert_int_eq(log.stopped, 1);
  ck_assert_uint_eq(good.announces, before + 1);
  ck_assert_uint_eq(good.last_event, 3);
  ck_assert_uint_eq(good.last_numwant, 0);
  announce_free(a);
  uv_close((uv_handle_t *)&bad.sock, NULL);
  uv_close((uv_handle_t *)&good.sock, NULL);
  finish_loop(&loop, http);
}

START_TEST(test_client_udp_error_then_next_tier)
{
  udp_tiers_case(UF_ERROR, "failure: go away?");
}
END_TEST

START_TEST(test_client_udp_bad_reply_then_next_tier)
{
  udp_tiers_case(UF_BAD_PEERS, "bad reply: peer list of 13 bytes is not a multiple of 6");
}
END_TEST

/* Freed with a UDP request in flight: no callback afterwards, the loop ends. */
START_TEST(test_client_udp_free_in_flight)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct http_client *http;
  ck_assert_int_eq(http_client_new(&loop, &http), 0);
  struct ufake f;
  ufake_start(&loop, &f, UF_SILENT);
  char u[64];
  snprintf(u, sizeof u, "udp://127.0.0.1:%u", f.port);
  char *t0[] = { u };
  struct manifest_tier tiers[1] = { { t0, 1 } };
  struct announce_params p = test_params();
  struct announce_cbs cbs = { cl_stats, cl_peers, cl_status };
  struct client_log log;
  memset(&log, 0, sizeof log);
  struct announce *a, *b;
  ck_assert_int_eq(announce_new(&loop, http, tiers, 1, &p, &cbs, &log, &a), 0);
  ck_assert_int_eq(announce_new(&loop, http, tiers, 1, &p, &cbs, &log, &b), 0);
  announce_start(a);
  announce_start(b);
  int got = 0;
  uint64_t end = uv_now(&loop) + 5000;
  while ((got = (int)f.got) < 2 && uv_now(&loop) < end)
    uv_run(&loop, UV_RUN_ONCE);
  ck_assert_int_eq(got, 2);   /* both connects, through one shared client */
  announce_free(a);
  /* b still works after a's release of the shared client. */
  announce_now(b);
  announce_stop(b, cl_stopped, &log);   /* never answered: done at the next iteration */
  run_while(&loop, &log.stopped, 1, 5000);
  ck_assert_int_eq(log.stopped, 1);
  announce_free(b);
  uv_close((uv_handle_t *)&f.sock, NULL);
  finish_loop(&loop, http);
  ck_assert_int_eq(log.nstatus, 0);
  ck_assert_int_eq(log.npeer_calls, 0);
}
END_TEST

Suite *announce_suite(void)
{
  Suite *s = suite_create("announce");
  TCase *tc = tcase_create("url");
  tcase_add_test(tc, test_url_basic);
  tcase_add_test(tc, test_url_events_numwant);
  tcase_add_test(tc, test_url_existing_query);
  tcase_add_test(tc, test_url_escape_all_bytes);
  tcase_add_test(tc, test_url_trackerid_key);
  tcase_add_test(tc, test_url_errors);
  suite_add_tcase(s, tc);

  tc = tcase_create("reply");
  tcase_add_test(tc, test_parse_compact);
  tcase_add_test(tc, test_parse_dict_peers);
  tcase_add_test(tc, test_parse_peers6);
  tcase_add_test(tc, test_parse_failure_warning);
  tcase_add_test(tc, test_parse_intervals_trackerid);
  tcase_add_test(tc, test_parse_cap);
  tcase_add_test(tc, test_parse_malformed);
  suite_add_tcase(s, tc);

  tc = tcase_create("schedule");
  tcase_add_test(tc, test_sched_success);
  tcase_add_test(tc, test_sched_backoff);
  suite_add_tcase(s, tc);

  tc = tcase_create("tiers");
  tcase_add_test(tc, test_tiers_supported);
  tcase_add_test(tc, test_tiers_order_and_skip);
  tcase_add_test(tc, test_tiers_promote_bep12);
  tcase_add_test(tc, test_tiers_shuffle_and_limits);
  suite_add_tcase(s, tc);

  tc = tcase_create("client");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_client_udp_error_then_next_tier);
  tcase_add_test(tc, test_client_udp_bad_reply_then_next_tier);
  tcase_add_test(tc, test_client_udp_free_in_flight);
  suite_add_tcase(s, tc);
  return s;
}
