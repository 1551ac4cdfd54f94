/* test_trackerhttp.c -- announce/scrape request parsing and answers of the tracker (the pure part of tracker/http.c). */
#include <arpa/inet.h>
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/bencode.h"
#include "common/err.h"
#include "common/url.h"
#include "tracker/http.h"

static const uint8_t test_key[SWARMS_KEY_LEN] = "fedcba9876543210";

/* info_hash n: 20 bytes that need escaping (0x00, 0xff, '&', '=' ...). */
static void ih_make(uint8_t ih[20], unsigned n)
{
  for (int i = 0; i < 20; i++)
    ih[i] = (uint8_t)(i * 37 + 1);
  ih[0] = 0x00;
  ih[1] = '&';
  ih[2] = '=';
  ih[3] = 0xff;
  ih[18] = (uint8_t)(n >> 8);
  ih[19] = (uint8_t)n;
}

static void id_make(uint8_t id[20], unsigned n)
{
  memcpy(id, "-SH0001-0000000000", 18);
  id[18] = (uint8_t)(n >> 8);
  id[19] = (uint8_t)n;
}

static char *enc(const uint8_t *p, size_t n)
{
  static char out[4][128];
  static int k;
  struct buf b;
  buf_init(&b, 127);
  ck_assert_int_eq(url_encode(&b, p, n), 0);
  char *o = out[k++ % 4];
  memcpy(o, b.p, b.len);
  o[b.len] = '\0';
  buf_free(&b);
  return o;
}

/* A full announce query for torrent t, peer p, port, left; extra appended. */
static char *q_ann(unsigned t, unsigned p, unsigned port, unsigned long long left, const char *extra)
{
  static char q[1024];
  uint8_t ih[20], id[20];
  ih_make(ih, t);
  id_make(id, p);
  snprintf(q, sizeof q, "info_hash=%s&peer_id=%s&port=%u&uploaded=0&downloaded=0&left=%llu%s",
           enc(ih, 20), enc(id, 20), port, left, extra ? extra : "");
  return q;
}

static struct sockaddr_storage addr4(uint32_t ip)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(ip);
  sin->sin_port = htons(40000); /* the connection's port: never what peers see */
  return ss;
}

static struct sockaddr_storage addr6(const char *ip)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  sin6->sin6_family = AF_INET6;
  ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
  sin6->sin6_port = htons(40000);
  return ss;
}

struct answer {
  struct buf raw;
  struct bencode_doc doc;
};

static void answer_free(struct answer *a)
{
  bencode_free(&a->doc);
  buf_free(&a->raw);
}

/* Decodes a body strictly (sorted keys) into a. */
static void answer_decode(struct answer *a)
{
  char err[SHOAL_ERRLEN];
  struct bencode_limits lim = bencode_default_limits;
  lim.require_sorted = true;
  int r = bencode_decode(&a->doc, a->raw.p, a->raw.len, &lim, err, sizeof err);
  ck_assert_msg(r == 0, "answer not strict bencode (%s): %.*s", err, (int)a->raw.len, (const char *)a->raw.p);
  ck_assert_int_eq(a->doc.tok[0].type, BENCODE_DICT);
}

static void announce(struct swarms *s, const char *q, const struct sockaddr_storage *from, uint64_t now,
                     struct answer *a)
{
  struct trackerhttp_config cfg;
  trackerhttp_config_default(&cfg);
  cfg.interval = 1234;
  cfg.min_interval = 617;
  buf_init(&a->raw, TRACKERHTTP_BODY_MAX);
  ck_assert_int_eq(trackerhttp_announce(s, &cfg, q, strlen(q), (const struct sockaddr *)from, now, &a->raw), 0);
  answer_decode(a);
}

static int64_t get_int(const struct answer *a, int dict, const char *key)
{
  int64_t v;
  int i = bencode_dict_get_type(&a->doc, dict, key, BENCODE_INT);
  ck_assert_msg(i >= 0, "no integer '%s' in %.*s", key, (int)a->raw.len, (const char *)a->raw.p);
  ck_assert_int_eq(bencode_get_int(&a->doc, i, &v), 0);
  return v;
}

static size_t get_str(const struct answer *a, int dict, const char *key, const uint8_t **p)
{
  size_t n;
  int i = bencode_dict_get_type(&a->doc, dict, key, BENCODE_STR);
  ck_assert_msg(i >= 0, "no string '%s' in %.*s", key, (int)a->raw.len, (const char *)a->raw.p);
  ck_assert_int_eq(bencode_get_str(&a->doc, i, p, &n), 0);
  return n;
}

static void expect_failure_answer(struct swarms *s, const char *q, const char *why)
{
  struct answer a;
  struct sockaddr_storage from = addr4(0x0a000001);
  announce(s, q, &from, 1, &a);
  const uint8_t *p;
  size_t n = get_str(&a, 0, "failure reason", &p);
  ck_assert_msg(n == strlen(why) && memcmp(p, why, n) == 0, "query '%s': failure '%.*s', want '%s'",
                q, (int)n, (const char *)p, why);
  ck_assert_int_eq(a.doc.tok[0].count, 1); /* nothing else */
  answer_free(&a);
}

/* ---- parsing ---- */

static int parse(const char *q, struct trackerhttp_announce_req *req, char *why)
{
  return trackerhttp_parse_announce(q, strlen(q), req, why);
}

static void expect_bad(const char *q, const char *why_want)
{
  struct trackerhttp_announce_req req;
  char why[TRACKERHTTP_WHY_LEN];
  int r = parse(q, &req, why);
  ck_assert_msg(r == SHOAL_EPROTO, "'%s' should fail with '%s', got %d", q, why_want, r);
  ck_assert_msg(strcmp(why, why_want) == 0, "'%s': reason '%s', want '%s'", q, why, why_want);
}

#define IH20 "%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13"
#define ID20 "-SH0001-abcdefghijkl"
#define REST "&port=6881&uploaded=1&downloaded=2&left=3"

START_TEST(test_parse_valid)
{
  struct trackerhttp_announce_req req;
  char why[TRACKERHTTP_WHY_LEN];
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST, &req, why), 0);
  for (int i = 0; i < 20; i++)
    ck_assert_int_eq(req.info_hash[i], i);
  ck_assert(memcmp(req.peer_id, ID20, 20) == 0);
  ck_assert_uint_eq(req.port, 6881);
  ck_assert_uint_eq(req.uploaded, 1);
  ck_assert_uint_eq(req.downloaded, 2);
  ck_assert_uint_eq(req.left, 3);
  ck_assert_int_eq(req.event, SWARMS_EVENT_NONE);
  ck_assert(req.compact);
  ck_assert(!req.no_peer_id);
  ck_assert_uint_eq(req.numwant, 50);

  /* Every optional key, unknown keys, any order, empty pairs, escaped digits. */
  ck_assert_int_eq(parse("&left=0&key=xyz&event=completed&numwant=7&compact=0&no_peer_id=1"
                         "&ip=1.2.3.4&trackerid=t&supportcrypto=1&peer_id=" ID20 "&port=%36%35%35%33%35"
                         "&downloaded=18446744073&uploaded=9223372036854775807&&info_hash=" IH20,
                         &req, why), 0);
  ck_assert_uint_eq(req.port, 65535);
  ck_assert_uint_eq(req.left, 0);
  ck_assert_uint_eq(req.uploaded, INT64_MAX);
  ck_assert_uint_eq(req.downloaded, 18446744073ull);
  ck_assert_int_eq(req.event, SWARMS_EVENT_COMPLETED);
  ck_assert(!req.compact);
  ck_assert(req.no_peer_id);
  ck_assert_uint_eq(req.numwant, 7);

  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&event=started&port_x=1", &req, why), 0);
  ck_assert_int_eq(req.event, SWARMS_EVENT_STARTED);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&event=stopped", &req, why), 0);
  ck_assert_int_eq(req.event, SWARMS_EVENT_STOPPED);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&event=", &req, why), 0);
  ck_assert_int_eq(req.event, SWARMS_EVENT_NONE);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&event=empty", &req, why), 0);
  ck_assert_int_eq(req.event, SWARMS_EVENT_NONE);
  /* The peer id in plain characters, port 1, leading zeros. */
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=%2DSH0001-abcdefghijkl&port=1&uploaded=00&downloaded=0&left=007",
                         &req, why), 0);
  ck_assert_uint_eq(req.port, 1);
  ck_assert_uint_eq(req.left, 7);
}
END_TEST

START_TEST(test_parse_numwant)
{
  struct trackerhttp_announce_req req;
  char why[TRACKERHTTP_WHY_LEN];
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=0", &req, why), 0);
  ck_assert_uint_eq(req.numwant, 0);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=200", &req, why), 0);
  ck_assert_uint_eq(req.numwant, 200);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=201", &req, why), 0);
  ck_assert_uint_eq(req.numwant, 200);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=18446744073709551615", &req, why), 0);
  ck_assert_uint_eq(req.numwant, 200);
  ck_assert_int_eq(parse("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=4294967346", &req, why), 0);
  ck_assert_uint_eq(req.numwant, 200); /* not truncated to 50 */
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=18446744073709551616", "invalid numwant");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=-1", "invalid numwant");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=", "invalid numwant");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&numwant=5x", "invalid numwant");
}
END_TEST

START_TEST(test_parse_bad)
{
  /* Missing, in the order required. */
  expect_bad("", "missing info_hash");
  expect_bad("peer_id=" ID20 REST, "missing info_hash");
  expect_bad("info_hash=" IH20 REST, "missing peer_id");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 "&uploaded=1&downloaded=2&left=3", "missing port");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 "&port=1&downloaded=2&left=3", "missing uploaded");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 "&port=1&uploaded=2&left=3", "missing downloaded");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 "&port=1&uploaded=2&downloaded=3", "missing left");
  /* info_hash of 19 and 21 bytes, empty, bad escapes. */
  expect_bad("info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12&peer_id=" ID20 REST,
             "invalid info_hash");
  expect_bad("info_hash=" IH20 "%14&peer_id=" ID20 REST, "invalid info_hash");
  expect_bad("info_hash=" IH20 "a&peer_id=" ID20 REST, "invalid info_hash");
  expect_bad("info_hash=&peer_id=" ID20 REST, "invalid info_hash");
  expect_bad("info_hash&peer_id=" ID20 REST, "invalid info_hash");
  expect_bad("info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%1&peer_id=" ID20 REST,
             "invalid info_hash");
  expect_bad("info_hash=%zz%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13&peer_id=" ID20 REST,
             "invalid info_hash");
  expect_bad("info_hash=" IH20 "%&peer_id=" ID20 REST, "invalid info_hash");
  /* peer_id likewise. */
  expect_bad("info_hash=" IH20 "&peer_id=-SH0001-abcdefghijk" REST, "invalid peer_id");
  expect_bad("info_hash=" IH20 "&peer_id=-SH0001-abcdefghijklm" REST, "invalid peer_id");
  expect_bad("info_hash=" IH20 "&peer_id=-SH0001-abcdefghij%g1" REST, "invalid peer_id");
  /* port */
  static const char *const bad_ports[] = { "0", "70000", "65536", "12a", "", "-1", "+1", " 1", "1 ",
                                           "0x10", "1e3", "99999999999999999999999", "%", "%3" };
  for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
    char q[512];
    snprintf(q, sizeof q, "info_hash=%s&peer_id=%s&port=%s&uploaded=1&downloaded=2&left=3", IH20, ID20, bad_ports[i]);
    expect_bad(q, "invalid port");
  }
  /* uploaded / downloaded / left: sign, junk, overflow, above INT64_MAX. */
  static const char *const bad_nums[] = { "-1", "-0", "+5", "1.5", "1,5", "", "abc", "9223372036854775808",
                                          "18446744073709551615", "18446744073709551616",
                                          "99999999999999999999999999", "1%00", "%2D1" };
  static const char *const keys[] = { "uploaded", "downloaded", "left" };
  for (size_t k = 0; k < 3; k++) {
    for (size_t i = 0; i < sizeof bad_nums / sizeof bad_nums[0]; i++) {
      char q[512], want[64];
      snprintf(q, sizeof q, "info_hash=%s&peer_id=%s&port=1&uploaded=1&downloaded=1&left=1&%s=%s",
               IH20, ID20, keys[k], bad_nums[i]);
      /* The key is now given twice: the duplicate is reported first. */
      snprintf(want, sizeof want, "duplicate %s", keys[k]);
      expect_bad(q, want);
      const char *order[3] = { "uploaded", "downloaded", "left" };
      char rest[256] = "";
      for (size_t j = 0; j < 3; j++) {
        char part[96];
        snprintf(part, sizeof part, "&%s=%s", order[j], j == k ? bad_nums[i] : "1");
        strcat(rest, part);
      }
      snprintf(q, sizeof q, "info_hash=%s&peer_id=%s&port=1%s", IH20, ID20, rest);
      snprintf(want, sizeof want, "invalid %s", keys[k]);
      expect_bad(q, want);
    }
  }
  /* event, compact, no_peer_id */
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&event=paused", "invalid event");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&event=Started", "invalid event");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&event=started%00", "invalid event");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&compact=2", "invalid compact");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&compact=01", "invalid compact");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&compact=", "invalid compact");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&no_peer_id=yes", "invalid no_peer_id");
  /* Duplicates. */
  expect_bad("info_hash=" IH20 "&info_hash=" IH20 "&peer_id=" ID20 REST, "duplicate info_hash");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&port=6881", "duplicate port");
  expect_bad("info_hash=" IH20 "&peer_id=" ID20 REST "&event=started&event=started", "duplicate event");
  /* An error is reported where it occurs, before any later missing key. */
  expect_bad("port=0", "invalid port");
}
END_TEST

/* ---- announce answers ---- */

START_TEST(test_announce_answer)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  struct sockaddr_storage f1 = addr4(0x0a000001), f2 = addr4(0x0a000002);

  announce(s, q_ann(1, 1, 6881, 100, "&event=started"), &f1, 10, &a);
  ck_assert_int_eq(get_int(&a, 0, "complete"), 0);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 1);
  ck_assert_int_eq(get_int(&a, 0, "interval"), 1234);
  ck_assert_int_eq(get_int(&a, 0, "min interval"), 617);
  const uint8_t *p;
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 0); /* alone: not even itself */
  ck_assert_int_lt(bencode_dict_get(&a.doc, 0, "peers6"), 0);
  ck_assert_int_lt(bencode_dict_get(&a.doc, 0, "failure reason"), 0);
  ck_assert_int_lt(bencode_dict_get(&a.doc, 0, "warning message"), 0);
  answer_free(&a);

  /* A seed joins: it gets the leecher, compact, with the announced port. */
  announce(s, q_ann(1, 2, 51413, 0, NULL), &f2, 11, &a);
  ck_assert_int_eq(get_int(&a, 0, "complete"), 1);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 1);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 6);
  const uint8_t want1[6] = { 10, 0, 0, 1, 0x1a, 0xe1 };
  ck_assert(memcmp(p, want1, 6) == 0);
  answer_free(&a);

  /* The leecher again, compact=0: one dict with ip, peer id, port. */
  announce(s, q_ann(1, 1, 6881, 50, "&compact=0"), &f1, 12, &a);
  int pl = bencode_dict_get_type(&a.doc, 0, "peers", BENCODE_LIST);
  ck_assert_int_ge(pl, 0);
  ck_assert_uint_eq(a.doc.tok[pl].count, 1);
  int d = bencode_first(&a.doc, pl);
  ck_assert_int_eq(a.doc.tok[d].type, BENCODE_DICT);
  ck_assert_uint_eq(get_str(&a, d, "ip", &p), 8);
  ck_assert(memcmp(p, "10.0.0.2", 8) == 0);
  ck_assert_int_eq(get_int(&a, d, "port"), 51413);
  uint8_t id2[20];
  id_make(id2, 2);
  ck_assert_uint_eq(get_str(&a, d, "peer id", &p), 20);
  ck_assert(memcmp(p, id2, 20) == 0);
  answer_free(&a);

  /* no_peer_id=1 drops the ids. */
  announce(s, q_ann(1, 1, 6881, 50, "&compact=0&no_peer_id=1"), &f1, 12, &a);
  pl = bencode_dict_get_type(&a.doc, 0, "peers", BENCODE_LIST);
  d = bencode_first(&a.doc, pl);
  ck_assert_int_lt(bencode_dict_get(&a.doc, d, "peer id"), 0);
  ck_assert_int_eq(get_int(&a, d, "port"), 51413);
  answer_free(&a);

  /* numwant=0: counts, no peers. */
  announce(s, q_ann(1, 1, 6881, 50, "&numwant=0"), &f1, 12, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 0);
  ck_assert_int_eq(get_int(&a, 0, "complete"), 1);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_announce_self_excluded)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  struct sockaddr_storage f1 = addr4(0x0a000001);
  /* Many announces from the same peer: it never sees itself. */
  for (int i = 0; i < 5; i++) {
    announce(s, q_ann(1, 1, 6881, 100, NULL), &f1, 10, &a);
    const uint8_t *p;
    ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 0);
    ck_assert_int_eq(get_int(&a, 0, "incomplete"), 1);
    answer_free(&a);
  }
  /* The same client restarted with a new peer id on the same IP and port. */
  announce(s, q_ann(1, 9, 6881, 100, NULL), &f1, 10, &a);
  const uint8_t *p;
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 0);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 2);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_announce_numwant_clamp)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  for (unsigned i = 0; i < 260; i++) {
    struct sockaddr_storage f = addr4(0x0a000100 + i);
    announce(s, q_ann(1, i, 6881, 1, "&numwant=0"), &f, 10, &a);
    answer_free(&a);
  }
  struct sockaddr_storage me = addr4(0x0b000001);
  const uint8_t *p;
  announce(s, q_ann(1, 999, 6881, 1, "&numwant=1000"), &me, 10, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 200 * 6);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 261);
  /* Distinct peers. */
  for (int i = 0; i < 200; i++)
    for (int j = i + 1; j < 200; j++)
      ck_assert(memcmp(p + 6 * i, p + 6 * j, 6) != 0);
  answer_free(&a);
  announce(s, q_ann(1, 999, 6881, 1, NULL), &me, 10, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 50 * 6);
  answer_free(&a);
  announce(s, q_ann(1, 999, 6881, 1, "&numwant=3"), &me, 10, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 3 * 6);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

static void scrape(const struct swarms *s, const char *q, struct answer *a)
{
  buf_init(&a->raw, TRACKERHTTP_BODY_MAX);
  ck_assert_int_eq(trackerhttp_scrape(s, q, strlen(q), &a->raw), 0);
  answer_decode(a);
}

/* Counts of torrent t in a scrape answer; false when absent. */
static bool scrape_entry(const struct answer *a, unsigned t, int64_t *c, int64_t *dl, int64_t *inc)
{
  uint8_t ih[20];
  ih_make(ih, t);
  int files = bencode_dict_get_type(&a->doc, 0, "files", BENCODE_DICT);
  ck_assert_int_ge(files, 0);
  for (int k = bencode_first(&a->doc, files); k >= 0; k = bencode_next(&a->doc, files, k + 1)) {
    const uint8_t *p;
    size_t n;
    ck_assert_int_eq(bencode_get_str(&a->doc, k, &p, &n), 0);
    ck_assert_uint_eq(n, 20);
    if (memcmp(p, ih, 20) != 0)
      continue;
    *c = get_int(a, k + 1, "complete");
    *dl = get_int(a, k + 1, "downloaded");
    *inc = get_int(a, k + 1, "incomplete");
    return true;
  }
  return false;
}

START_TEST(test_stopped_and_completed)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  struct sockaddr_storage f1 = addr4(0x0a000001), f2 = addr4(0x0a000002);
  announce(s, q_ann(1, 1, 6881, 100, "&event=started"), &f1, 10, &a);
  answer_free(&a);
  announce(s, q_ann(1, 2, 6882, 100, "&event=started"), &f2, 10, &a);
  answer_free(&a);
  /* completed: seed, counted in downloaded (scrape). */
  announce(s, q_ann(1, 1, 6881, 0, "&event=completed"), &f1, 20, &a);
  ck_assert_int_eq(get_int(&a, 0, "complete"), 1);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 1);
  answer_free(&a);
  uint8_t ih[20];
  ih_make(ih, 1);
  char q[128];
  snprintf(q, sizeof q, "info_hash=%s", enc(ih, 20));
  int64_t c, dl, inc;
  scrape(s, q, &a);
  ck_assert(scrape_entry(&a, 1, &c, &dl, &inc));
  ck_assert_int_eq(c, 1);
  ck_assert_int_eq(dl, 1);
  ck_assert_int_eq(inc, 1);
  answer_free(&a);
  /* stopped: gone from the counts and from others' peer lists; no peers for it. */
  announce(s, q_ann(1, 2, 6882, 100, "&event=stopped"), &f2, 30, &a);
  const uint8_t *p;
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 0);
  ck_assert_int_eq(get_int(&a, 0, "complete"), 1);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 0);
  answer_free(&a);
  announce(s, q_ann(1, 1, 6881, 0, NULL), &f1, 31, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 0);
  answer_free(&a);
  scrape(s, q, &a);
  ck_assert(scrape_entry(&a, 1, &c, &dl, &inc));
  ck_assert_int_eq(c, 1);
  ck_assert_int_eq(dl, 1);
  ck_assert_int_eq(inc, 0);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_ipv6_peers6)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  struct sockaddr_storage v6 = addr6("2001:db8::5"), v4 = addr4(0x0a000001);
  struct sockaddr_storage mapped = addr6("::ffff:10.0.0.9");
  announce(s, q_ann(1, 1, 6881, 1, NULL), &v6, 10, &a);
  answer_free(&a);
  announce(s, q_ann(1, 2, 6882, 1, NULL), &v4, 10, &a);
  answer_free(&a);
  /* An IPv4 client of a dual-stack socket: listed as IPv4. */
  announce(s, q_ann(1, 3, 6883, 1, NULL), &mapped, 10, &a);
  const uint8_t *p;
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 6);
  const uint8_t want4[6] = { 10, 0, 0, 1, 0x1a, 0xe2 };
  ck_assert(memcmp(p, want4, 6) == 0);
  ck_assert_uint_eq(get_str(&a, 0, "peers6", &p), 18);
  ck_assert_int_eq(p[0], 0x20);
  ck_assert_int_eq(p[1], 0x01);
  ck_assert_int_eq(p[15], 5);
  ck_assert_int_eq(p[16], 0x1a);
  ck_assert_int_eq(p[17], 0xe1);
  answer_free(&a);
  /* The IPv6 peer sees both IPv4 peers and not itself. */
  announce(s, q_ann(1, 1, 6881, 1, NULL), &v6, 11, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 12);
  ck_assert_int_lt(bencode_dict_get(&a.doc, 0, "peers6"), 0);
  answer_free(&a);
  /* compact=0 writes the IPv6 address as text. */
  announce(s, q_ann(1, 2, 6882, 1, "&compact=0"), &v4, 11, &a);
  int pl = bencode_dict_get_type(&a.doc, 0, "peers", BENCODE_LIST);
  ck_assert_uint_eq(a.doc.tok[pl].count, 2);
  bool seen6 = false;
  for (int d = bencode_first(&a.doc, pl); d >= 0; d = bencode_next(&a.doc, pl, d)) {
    size_t n = get_str(&a, d, "ip", &p);
    if (n == 11 && memcmp(p, "2001:db8::5", 11) == 0) {
      seen6 = true;
      ck_assert_int_eq(get_int(&a, d, "port"), 6881);
    }
  }
  ck_assert(seen6);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_announce_failures)
{
  struct swarms *s = swarms_new(NULL, test_key);
  expect_failure_answer(s, "", "missing info_hash");
  expect_failure_answer(s, "info_hash=abc", "invalid info_hash");
  expect_failure_answer(s, q_ann(1, 1, 0, 1, NULL), "invalid port");
  expect_failure_answer(s, q_ann(1, 1, 70000, 1, NULL), "invalid port");
  expect_failure_answer(s, q_ann(1, 1, 6881, 1, "&event=paused"), "invalid event");
  /* Nothing was recorded. */
  ck_assert_uint_eq(swarms_count(s), 0);
  /* A remote that is neither IPv4 nor IPv6. */
  struct sockaddr_storage un;
  memset(&un, 0, sizeof un);
  un.ss_family = AF_UNIX;
  struct answer a;
  announce(s, q_ann(1, 1, 6881, 1, NULL), &un, 1, &a);
  const uint8_t *p;
  ck_assert_uint_eq(get_str(&a, 0, "failure reason", &p), strlen("unsupported address family"));
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_announce_full)
{
  struct swarms_limits lim = { .max_swarms = 1, .max_peers_per_swarm = 2, .max_peers = 10 };
  struct swarms *s = swarms_new(&lim, test_key);
  struct answer a;
  const uint8_t *p;
  for (unsigned i = 0; i < 2; i++) {
    struct sockaddr_storage f = addr4(0x0a000001 + i);
    announce(s, q_ann(1, i, 6881, 1, NULL), &f, 1, &a);
    ck_assert_int_lt(bencode_dict_get(&a.doc, 0, "warning message"), 0);
    answer_free(&a);
  }
  /* A third peer: answered with peers and a warning, but not recorded. */
  struct sockaddr_storage f3 = addr4(0x0a000003);
  announce(s, q_ann(1, 3, 6881, 1, NULL), &f3, 1, &a);
  ck_assert_uint_eq(get_str(&a, 0, "peers", &p), 12);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 2);
  ck_assert_uint_gt(get_str(&a, 0, "warning message", &p), 0);
  answer_free(&a);
  /* Another torrent when the torrent table is full. */
  announce(s, q_ann(2, 3, 6881, 1, NULL), &f3, 1, &a);
  ck_assert_uint_gt(get_str(&a, 0, "warning message", &p), 0);
  ck_assert_int_eq(get_int(&a, 0, "incomplete"), 0);
  answer_free(&a);
  ck_assert_uint_eq(swarms_count(s), 1);
  ck_assert_uint_eq(swarms_peer_count(s), 2);
  swarms_free(s);
}
END_TEST

START_TEST(test_announce_out_full)
{
  /* An answer that does not fit the output buffer is an error, not a crash. */
  struct swarms *s = swarms_new(NULL, test_key);
  struct trackerhttp_config cfg;
  trackerhttp_config_default(&cfg);
  struct sockaddr_storage f = addr4(0x0a000001);
  struct buf out;
  buf_init(&out, 16);
  const char *q = q_ann(1, 1, 6881, 1, NULL);
  ck_assert_int_eq(trackerhttp_announce(s, &cfg, q, strlen(q), (struct sockaddr *)&f, 1, &out), UV_E2BIG);
  buf_free(&out);
  swarms_free(s);
}
END_TEST

/* ---- scrape ---- */

START_TEST(test_scrape)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  int64_t c, dl, inc;
  /* Nothing known: an empty files dict. */
  scrape(s, "", &a);
  ck_assert_uint_eq(a.raw.len, strlen("d5:filesdee"));
  ck_assert(memcmp(a.raw.p, "d5:filesdee", a.raw.len) == 0);
  answer_free(&a);

  for (unsigned t = 1; t <= 3; t++) {
    for (unsigned p = 0; p < t; p++) {
      struct sockaddr_storage f = addr4(0x0a000001 + p);
      struct answer x;
      announce(s, q_ann(t, p, 6881, p == 0 ? 0 : 1, NULL), &f, 1, &x);
      answer_free(&x);
    }
  }
  /* One. */
  uint8_t ih[20];
  char q[1024];
  ih_make(ih, 2);
  snprintf(q, sizeof q, "info_hash=%s", enc(ih, 20));
  scrape(s, q, &a);
  int files = bencode_dict_get_type(&a.doc, 0, "files", BENCODE_DICT);
  ck_assert_uint_eq(a.doc.tok[files].count, 1);
  ck_assert(scrape_entry(&a, 2, &c, &dl, &inc));
  ck_assert_int_eq(c, 1);
  ck_assert_int_eq(inc, 1);
  ck_assert_int_eq(dl, 0);
  answer_free(&a);

  /* Many, unsorted, repeated, with an unknown one (zeros) and other keys. */
  uint8_t i1[20], i3[20], i9[20];
  ih_make(i1, 1);
  ih_make(i3, 3);
  ih_make(i9, 9);
  snprintf(q, sizeof q, "info_hash=%s&x=1&info_hash=%s&info_hash=%s&info_hash=%s&info_hash=%s",
           enc(i3, 20), enc(i1, 20), enc(i9, 20), enc(ih, 20), enc(i3, 20));
  scrape(s, q, &a); /* answer_decode insists on sorted, unique keys */
  files = bencode_dict_get_type(&a.doc, 0, "files", BENCODE_DICT);
  ck_assert_uint_eq(a.doc.tok[files].count, 4);
  ck_assert(scrape_entry(&a, 3, &c, &dl, &inc));
  ck_assert_int_eq(c, 1);
  ck_assert_int_eq(inc, 2);
  ck_assert(scrape_entry(&a, 9, &c, &dl, &inc));
  ck_assert_int_eq(c + dl + inc, 0);
  answer_free(&a);

  /* All. */
  scrape(s, "", &a);
  files = bencode_dict_get_type(&a.doc, 0, "files", BENCODE_DICT);
  ck_assert_uint_eq(a.doc.tok[files].count, 3);
  ck_assert(scrape_entry(&a, 1, &c, &dl, &inc));
  ck_assert_int_eq(c, 1);
  ck_assert_int_eq(inc, 0);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_scrape_bad)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct answer a;
  const uint8_t *p;
  static const char *const bad[] = {
    "info_hash=abc", "info_hash=", "info_hash",
    "info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%1",
    "info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13%14",
    "info_hash=" IH20 "&info_hash=%zz",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    scrape(s, bad[i], &a);
    size_t n = get_str(&a, 0, "failure reason", &p);
    ck_assert_msg(n == strlen("invalid info_hash") && memcmp(p, "invalid info_hash", n) == 0, "'%s'", bad[i]);
    answer_free(&a);
  }
  /* TRACKERHTTP_SCRAPE_MAX is fine, one more is refused. */
  static char q[(TRACKERHTTP_SCRAPE_MAX + 1) * 80];
  q[0] = '\0';
  for (int i = 0; i < TRACKERHTTP_SCRAPE_MAX; i++)
    strcat(q, "info_hash=" IH20 "&");
  scrape(s, q, &a);
  ck_assert_int_lt(bencode_dict_get(&a.doc, 0, "failure reason"), 0);
  answer_free(&a);
  strcat(q, "info_hash=" IH20);
  scrape(s, q, &a);
  size_t n = get_str(&a, 0, "failure reason", &p);
  ck_assert(n == strlen("too many info_hash") && memcmp(p, "too many info_hash", n) == 0);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

START_TEST(test_scrape_all_bounded)
{
  struct swarms *s = swarms_new(NULL, test_key);
  for (unsigned t = 0; t < TRACKERHTTP_SCRAPE_ALL_MAX + 5; t++) {
    uint8_t ih[20], id[20];
    ih_make(ih, t);
    id_make(id, 1);
    struct sockaddr_storage f = addr4(0x0a000001);
    struct swarms_announce an = { ih, id, (struct sockaddr *)&f, 1, SWARMS_EVENT_NONE };
    ck_assert_int_eq(swarms_announce(s, &an, 1, NULL), 0);
  }
  struct answer a;
  scrape(s, "", &a);
  int files = bencode_dict_get_type(&a.doc, 0, "files", BENCODE_DICT);
  ck_assert_uint_eq(a.doc.tok[files].count, TRACKERHTTP_SCRAPE_ALL_MAX);
  answer_free(&a);
  swarms_free(s);
}
END_TEST

/* ---- routing and responses ---- */

static int route(struct swarms *s, const char *target, struct buf *body)
{
  struct trackerhttp_config cfg;
  trackerhttp_config_default(&cfg);
  struct sockaddr_storage f = addr4(0x0a000001);
  buf_init(body, TRACKERHTTP_BODY_MAX);
  return trackerhttp_route(s, &cfg, target, strlen(target), (struct sockaddr *)&f, 1, body);
}

static bool body_has(const struct buf *b, const char *s)
{
  return memmem(b->p, b->len, s, strlen(s)) != NULL;
}

START_TEST(test_route)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct buf b;
  ck_assert_int_eq(route(s, "/", &b), 404);
  buf_free(&b);
  ck_assert_int_eq(route(s, "/announce.php", &b), 404);
  buf_free(&b);
  ck_assert_int_eq(route(s, "/announce/", &b), 404);
  buf_free(&b);
  ck_assert_int_eq(route(s, "/Announce", &b), 404);
  buf_free(&b);
  ck_assert_int_eq(route(s, "/favicon.ico", &b), 404);
  buf_free(&b);
  ck_assert_int_eq(route(s, "", &b), 400);
  buf_free(&b);
  ck_assert_int_eq(route(s, "/announce", &b), 200);
  ck_assert(body_has(&b, "14:failure reason17:missing info_hash"));
  buf_free(&b);
  ck_assert_int_eq(route(s, "/announce?", &b), 200);
  ck_assert(body_has(&b, "missing info_hash"));
  buf_free(&b);
  char t[1200];
  snprintf(t, sizeof t, "/announce?%s", q_ann(1, 1, 6881, 1, NULL));
  ck_assert_int_eq(route(s, t, &b), 200);
  ck_assert(body_has(&b, "8:intervali1800e"));
  buf_free(&b);
  snprintf(t, sizeof t, "http://tracker.example:6969/announce?%s", q_ann(1, 2, 6881, 1, NULL));
  ck_assert_int_eq(route(s, t, &b), 200);
  ck_assert(body_has(&b, "10:incompletei2e"));
  buf_free(&b);
  ck_assert_int_eq(route(s, "/scrape", &b), 200);
  ck_assert(body_has(&b, "d5:filesd20:"));
  buf_free(&b);
  ck_assert_int_eq(route(s, "/scrape?info_hash=x", &b), 200);
  ck_assert(body_has(&b, "invalid info_hash"));
  buf_free(&b);
  swarms_free(s);
}
END_TEST

START_TEST(test_response)
{
  struct buf b;
  buf_init(&b, 1024);
  ck_assert_int_eq(trackerhttp_response(&b, 200, "d1:ai1ee", 8, true), 0);
  const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
                     "Connection: keep-alive\r\n\r\nd1:ai1ee";
  ck_assert_uint_eq(b.len, strlen(want));
  ck_assert(memcmp(b.p, want, b.len) == 0);
  b.len = 0;
  ck_assert_int_eq(trackerhttp_response(&b, 431, "", 0, false), 0);
  want = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
         "Content-Length: 0\r\nConnection: close\r\n\r\n";
  ck_assert_uint_eq(b.len, strlen(want));
  ck_assert(memcmp(b.p, want, b.len) == 0);
  buf_free(&b);
  /* Too small a buffer. */
  buf_init(&b, 20);
  ck_assert_int_eq(trackerhttp_response(&b, 404, "not found\n", 10, true), UV_E2BIG);
  buf_free(&b);
}
END_TEST

START_TEST(test_config_default)
{
  struct trackerhttp_config cfg;
  memset(&cfg, 0xff, sizeof cfg);
  trackerhttp_config_default(&cfg);
  ck_assert_uint_eq(cfg.interval, 1800);
  ck_assert_uint_eq(cfg.min_interval, 900);
  ck_assert_uint_eq(cfg.max_conns, 1024);
  ck_assert_uint_eq(cfg.idle_timeout_ms, 15000);
  ck_assert_uint_eq(cfg.max_requests, 100);
}
END_TEST

Suite *trackerhttp_suite(void)
{
  Suite *s = suite_create("trackerhttp");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_parse_valid);
  tcase_add_test(tc, test_parse_numwant);
  tcase_add_test(tc, test_parse_bad);
  tcase_add_test(tc, test_announce_answer);
  tcase_add_test(tc, test_announce_self_excluded);
  tcase_add_test(tc, test_announce_numwant_clamp);
  tcase_add_test(tc, test_stopped_and_completed);
  tcase_add_test(tc, test_ipv6_peers6);
  tcase_add_test(tc, test_announce_failures);
  tcase_add_test(tc, test_announce_full);
  tcase_add_test(tc, test_announce_out_full);
  tcase_add_test(tc, test_scrape);
  tcase_add_test(tc, test_scrape_bad);
  tcase_add_test(tc, test_scrape_all_bounded);
  tcase_add_test(tc, test_route);
  tcase_add_test(tc, test_response);
  tcase_add_test(tc, test_config_default);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
