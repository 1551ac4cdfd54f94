/* test_udp_tracker.c -- UDP tracker client: URLs, packets, every malformed reply, connection-id cache, transport against a fake tracker. */
#include <arpa/inet.h>
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "peer/udp_tracker.h"

/* ---- URLs ---- */

START_TEST(test_url_good)
{
  char host[300];
  uint16_t port = 0;
  ck_assert_int_eq(udp_tracker_parse_url("udp://tracker.example.org:6969/announce", host, sizeof host, &port), 0);
  ck_assert_str_eq(host, "tracker.example.org");
  ck_assert_uint_eq(port, 6969);
  ck_assert_int_eq(udp_tracker_parse_url("UDP://1.2.3.4:80", host, sizeof host, &port), 0);
  ck_assert_str_eq(host, "1.2.3.4");
  ck_assert_uint_eq(port, 80);
  ck_assert_int_eq(udp_tracker_parse_url("udp://[::1]:65535/announce?x=1#frag", host, sizeof host, &port), 0);
  ck_assert_str_eq(host, "::1");
  ck_assert_uint_eq(port, 65535);
  ck_assert_int_eq(udp_tracker_parse_url("udp://my_host-1.lan:1?q", host, sizeof host, &port), 0);
  ck_assert_str_eq(host, "my_host-1.lan");
  ck_assert_uint_eq(port, 1);
}
END_TEST

START_TEST(test_url_bad)
{
  static const char *const bad[] = {
    "http://x:1", "udp:/x:1", "udp://x", "udp://x:", "udp://x:0", "udp://x:65536", "udp://x:123456",
    "udp://x:12a", "udp://:80", "udp://user@x:80", "udp://[::1:80", "udp://[::1]80", "udp://[::1]",
    "udp://[]:80", "udp://[1.2.3.4]:80", "udp://ho st:80", "udp://a:b:80", "udp://x:-1", "udp://x:+80",
    "udp://%41:80", "udp:///announce", "", "udp://[::1]:80x",
  };
  char host[300];
  uint16_t port = 7;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = udp_tracker_parse_url(bad[i], host, sizeof host, &port);
    ck_assert_msg(rc == UV_EINVAL, "%s accepted", bad[i]);
  }
  ck_assert_uint_eq(port, 7);   /* untouched */
  ck_assert_int_eq(udp_tracker_parse_url(NULL, host, sizeof host, &port), UV_EINVAL);
  /* Host length: 255 is the limit, and it must fit the caller's buffer. */
  char url[400];
  char name[257];
  memset(name, 'a', 256);
  name[256] = '\0';
  snprintf(url, sizeof url, "udp://%s:80", name);
  ck_assert_int_eq(udp_tracker_parse_url(url, host, sizeof host, &port), UV_EINVAL);
  name[255] = '\0';
  snprintf(url, sizeof url, "udp://%s:80", name);
  ck_assert_int_eq(udp_tracker_parse_url(url, host, sizeof host, &port), 0);
  ck_assert_uint_eq(strlen(host), 255);
  ck_assert_int_eq(udp_tracker_parse_url("udp://abcdef:80", host, 6, &port), UV_EINVAL);
  ck_assert_int_eq(udp_tracker_parse_url("udp://abcde:80", host, 6, &port), 0);
  ck_assert_str_eq(host, "abcde");
}
END_TEST

/* ---- requests ---- */

START_TEST(test_put_connect)
{
  uint8_t p[UDP_TRACKER_CONNECT_LEN];
  udp_tracker_put_connect(p, 0xdeadbeef);
  static const uint8_t want[16] = { 0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0,
                                    0xde, 0xad, 0xbe, 0xef };
  ck_assert_mem_eq(p, want, 16);
}
END_TEST

START_TEST(test_put_announce)
{
  struct udp_tracker_announce_args a;
  memset(&a, 0, sizeof a);
  for (int i = 0; i < 20; i++) {
    a.infohash[i] = (uint8_t)i;
    a.peer_id[i] = (uint8_t)(0xa0 + i);
  }
  a.downloaded = 0x0102030405060708ull;
  a.left = 5;
  a.uploaded = 1ull << 40;
  a.event = UDP_TRACKER_EVENT_STARTED;
  a.key = 0xcafef00d;
  a.num_want = -1;
  a.port = 6881;
  uint8_t p[UDP_TRACKER_ANNOUNCE_LEN];
  memset(p, 0x55, sizeof p);
  udp_tracker_put_announce(p, 0x1122334455667788ull, 77, &a);
  ck_assert_uint_eq(get_u64be(p), 0x1122334455667788ull);
  ck_assert_uint_eq(get_u32be(p + 8), 1);
  ck_assert_uint_eq(get_u32be(p + 12), 77);
  ck_assert_mem_eq(p + 16, a.infohash, 20);
  ck_assert_mem_eq(p + 36, a.peer_id, 20);
  ck_assert_uint_eq(get_u64be(p + 56), 0x0102030405060708ull);
  ck_assert_uint_eq(get_u64be(p + 64), 5);
  ck_assert_uint_eq(get_u64be(p + 72), 1ull << 40);
  ck_assert_uint_eq(get_u32be(p + 80), 2);              /* started is 2 on the wire */
  ck_assert_uint_eq(get_u32be(p + 84), 0);              /* IP: default */
  ck_assert_uint_eq(get_u32be(p + 88), 0xcafef00d);
  ck_assert_uint_eq(get_u32be(p + 92), 0xffffffff);     /* -1 */
  ck_assert_uint_eq(get_u16be(p + 96), 6881);
  ck_assert_int_eq(UDP_TRACKER_EVENT_COMPLETED, 1);
  ck_assert_int_eq(UDP_TRACKER_EVENT_STOPPED, 3);
}
END_TEST

START_TEST(test_put_scrape)
{
  uint8_t hashes[75][20];
  for (int i = 0; i < 75; i++)
    memset(hashes[i], i, 20);
  uint8_t p[16 + 20 * 75];
  ck_assert_int_eq(udp_tracker_put_scrape(p, sizeof p, 9, 3, (const uint8_t (*)[20])hashes, 2), 56);
  ck_assert_uint_eq(get_u64be(p), 9);
  ck_assert_uint_eq(get_u32be(p + 8), 2);
  ck_assert_uint_eq(get_u32be(p + 12), 3);
  ck_assert_mem_eq(p + 16, hashes[0], 20);
  ck_assert_mem_eq(p + 36, hashes[1], 20);
  ck_assert_int_eq(udp_tracker_put_scrape(p, sizeof p, 9, 3, (const uint8_t (*)[20])hashes, 74), 16 + 20 * 74);
  ck_assert_int_eq(udp_tracker_put_scrape(p, sizeof p, 9, 3, (const uint8_t (*)[20])hashes, 75), UV_EINVAL);
  ck_assert_int_eq(udp_tracker_put_scrape(p, sizeof p, 9, 3, (const uint8_t (*)[20])hashes, 0), UV_EINVAL);
  memset(p, 0x77, sizeof p);
  ck_assert_int_eq(udp_tracker_put_scrape(p, 55, 9, 3, (const uint8_t (*)[20])hashes, 2), UV_ENOBUFS);
  ck_assert_uint_eq(p[0], 0x77);   /* nothing written */
}
END_TEST

/* ---- replies ---- */

static size_t mk(uint8_t *p, uint32_t action, uint32_t tid)
{
  put_u32be(p, action);
  put_u32be(p + 4, tid);
  return 8;
}

START_TEST(test_reply_connect)
{
  uint8_t p[32];
  struct udp_tracker_reply r;
  char err[SHOAL_ERRLEN];
  size_t n = mk(p, 0, 42);
  put_u64be(p + n, 0xabcdef0123456789ull);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 16, 0, 42, AF_INET, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.action, 0);
  ck_assert_uint_eq(r.conn_id, 0xabcdef0123456789ull);
  /* Longer packets are fine (future extensions). */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 20, 0, 42, AF_INET6, &r, err, sizeof err), 0);
  /* 15 bytes: short. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 15, 0, 42, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "shorter than 16"));
  /* Below the 8-byte header, whatever the action. */
  for (size_t len = 0; len < 8; len++) {
    ck_assert_int_eq(udp_tracker_parse_reply(p, len, 0, 42, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "shorter than 8"));
  }
  /* Another transaction. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 16, 0, 43, AF_INET, &r, err, sizeof err), UDP_TRACKER_OTHER_TID);
  /* An announce reply to a connect request. */
  mk(p, 1, 42);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 20, 0, 42, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "announce reply"));
  mk(p, 9, 42);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 16, 0, 42, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  /* Bad arguments. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 16, 0, 42, AF_UNIX, &r, err, sizeof err), UV_EINVAL);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 16, 3, 42, AF_INET, &r, err, sizeof err), UV_EINVAL);
  ck_assert_int_eq(udp_tracker_parse_reply(NULL, 16, 0, 42, AF_INET, &r, err, sizeof err), UV_EINVAL);
}
END_TEST

START_TEST(test_reply_error)
{
  uint8_t p[64];
  struct udp_tracker_reply r;
  char err[SHOAL_ERRLEN];
  size_t n = mk(p, 3, 5);
  memcpy(p + n, "go away", 7);
  for (uint32_t expect = 0; expect <= 2; expect++) {
    ck_assert_int_eq(udp_tracker_parse_reply(p, n + 7, expect, 5, AF_INET, &r, err, sizeof err), 0);
    ck_assert_uint_eq(r.action, UDP_TRACKER_ERROR);
    ck_assert_uint_eq(r.message_len, 7);
    ck_assert_mem_eq(r.message, "go away", 7);
  }
  /* An empty message is still an error reply; a wrong tid is not ours. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 8, 1, 5, AF_INET, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.action, UDP_TRACKER_ERROR);
  ck_assert_uint_eq(r.message_len, 0);
  ck_assert_int_eq(udp_tracker_parse_reply(p, n + 7, 1, 6, AF_INET, &r, err, sizeof err), UDP_TRACKER_OTHER_TID);
}
END_TEST

START_TEST(test_reply_announce)
{
  uint8_t p[64];
  struct udp_tracker_reply r;
  char err[SHOAL_ERRLEN];
  size_t n = mk(p, 1, 7);
  put_u32be(p + n, 1800);
  put_u32be(p + n + 4, 3);
  put_u32be(p + n + 8, 4);
  static const uint8_t peers[12] = { 127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80 };
  memcpy(p + 20, peers, sizeof peers);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 1, 7, AF_INET, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.action, 1);
  ck_assert_uint_eq(r.interval, 1800);
  ck_assert_uint_eq(r.leechers, 3);
  ck_assert_uint_eq(r.seeders, 4);
  ck_assert_uint_eq(r.npeers, 2);
  ck_assert_uint_eq(r.entry_len, 6);
  ck_assert_ptr_eq(r.peers, p + 20);
  /* No peers. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 20, 1, 7, AF_INET, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.npeers, 0);
  ck_assert_ptr_null(r.peers);
  /* Peers of 7 bytes, and every other length that is not a multiple of 6. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 27, 1, 7, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "7 bytes is not a multiple of 6"));
  for (size_t len = 21; len < 26; len++)
    ck_assert_int_eq(udp_tracker_parse_reply(p, len, 1, 7, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  /* Over IPv6 the entries are 18 bytes: 12 is not a whole one, 18 is. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 1, 7, AF_INET6, &r, err, sizeof err), SHOAL_EPROTO);
  ck_assert_ptr_nonnull(strstr(err, "multiple of 18"));
  uint8_t q[20 + 18];
  memcpy(q, p, 20);
  memset(q + 20, 0, 16);
  q[35] = 1;
  put_u16be(q + 36, 6881);
  ck_assert_int_eq(udp_tracker_parse_reply(q, sizeof q, 1, 7, AF_INET6, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.npeers, 1);
  ck_assert_uint_eq(r.entry_len, 18);
  /* Shorter than 20. */
  for (size_t len = 8; len < 20; len++) {
    ck_assert_int_eq(udp_tracker_parse_reply(p, len, 1, 7, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "shorter than 20"));
  }
  /* Wrong transaction id, wrong action. */
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 1, 8, AF_INET, &r, err, sizeof err), UDP_TRACKER_OTHER_TID);
  mk(p, 0, 7);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 1, 7, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  mk(p, 2, 7);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 1, 7, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
}
END_TEST

START_TEST(test_reply_scrape)
{
  uint8_t p[8 + 24 + 1];
  struct udp_tracker_reply r;
  char err[SHOAL_ERRLEN];
  mk(p, 2, 99);
  for (int i = 0; i < 6; i++)
    put_u32be(p + 8 + 4 * i, (uint32_t)(10 + i));
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 2, 99, AF_INET, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.nscrape, 2);
  uint32_t s, c, l;
  udp_tracker_scrape_entry(&r, 1, &s, &c, &l);
  ck_assert_uint_eq(s, 13);
  ck_assert_uint_eq(c, 14);
  ck_assert_uint_eq(l, 15);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 8, 2, 99, AF_INET, &r, err, sizeof err), 0);
  ck_assert_uint_eq(r.nscrape, 0);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 33, 2, 99, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 19, 2, 99, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
  ck_assert_int_eq(udp_tracker_parse_reply(p, 32, 1, 99, AF_INET, &r, err, sizeof err), SHOAL_EPROTO);
}
END_TEST

/* ---- connection-id cache ---- */

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *s = (struct sockaddr_in *)&ss;
  s->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &s->sin_addr);
  s->sin_port = htons(port);
  return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
  s->sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &s->sin6_addr);
  s->sin6_port = htons(port);
  return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

START_TEST(test_cache)
{
  struct udp_tracker_cache *c = malloc(sizeof *c);
  udp_tracker_cache_init(c);
  struct sockaddr_storage a = v4("10.0.0.1", 6969), b = v4("10.0.0.1", 6970), d = v6("::1", 6969);
  uint64_t id = 0;
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(a), 1000, &id), -1);
  udp_tracker_cache_put(c, SA(a), 111, 1000);
  udp_tracker_cache_put(c, SA(d), 333, 1000);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(a), 1000, &id), 0);
  ck_assert_uint_eq(id, 111);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(a), 1000 + UDP_TRACKER_CONN_TTL_MS - 1, &id), 0);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(d), 2000, &id), 0);
  ck_assert_uint_eq(id, 333);
  /* Another port is another tracker. */
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(b), 1000, &id), -1);
  /* Expired after a minute, and gone for good. */
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(a), 1000 + UDP_TRACKER_CONN_TTL_MS, &id), -1);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(a), 1000, &id), -1);
  /* A clock that went back does not make an id fresh. */
  udp_tracker_cache_put(c, SA(a), 112, 5000);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(a), 4999, &id), -1);
  /* Replacing and dropping. */
  udp_tracker_cache_put(c, SA(b), 222, 1000);
  udp_tracker_cache_put(c, SA(b), 223, 1500);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(b), 1500, &id), 0);
  ck_assert_uint_eq(id, 223);
  udp_tracker_cache_drop(c, SA(b));
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(b), 1500, &id), -1);
  /* Full: the oldest entry makes room. */
  udp_tracker_cache_init(c);
  for (uint16_t i = 0; i < UDP_TRACKER_CACHE_SIZE; i++) {
    struct sockaddr_storage x = v4("10.1.1.1", (uint16_t)(1000 + i));
    udp_tracker_cache_put(c, SA(x), i, 100 + (uint64_t)(i == 5 ? 0 : 10 + i));
  }
  struct sockaddr_storage extra = v4("10.2.2.2", 1);
  udp_tracker_cache_put(c, SA(extra), 999, 200);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(extra), 200, &id), 0);
  struct sockaddr_storage x5 = v4("10.1.1.1", 1005), x6 = v4("10.1.1.1", 1006);
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(x5), 200, &id), -1);   /* the oldest went */
  ck_assert_int_eq(udp_tracker_cache_get(c, SA(x6), 200, &id), 0);
  ck_assert_uint_eq(id, 6);
  free(c);
}
END_TEST

/* ---- transport against a fake tracker on the same loop ---- */

enum fake_mode {
  FAKE_NORMAL,        /* answers everything */
  FAKE_DROP_FIRST,    /* drops the first packet, then normal */
  FAKE_SILENT,        /* never answers */
  FAKE_WRONG_TID,     /* first answers with another tid, then the right one */
  FAKE_SPOOF,         /* first answers from another socket, then normally */
  FAKE_BAD_PEERS,     /* announce reply with 7 bytes of peers */
  FAKE_ERROR,         /* error packet to the announce */
  FAKE_NO_ANNOUNCE,   /* answers connects only */
};

struct fake {
  uv_udp_t sock, other;
  enum fake_mode mode;
  unsigned got, connects, announces, bad_conn_ids;
  uint32_t last_event, last_numwant, last_key;
  uint16_t last_port;
  uint64_t conn_id;
  int family;
};

struct outcome {
  int calls;
  int status;
  uint32_t action;
  char msg[128];
  size_t npeers;
  uint32_t interval, seeders, leechers;
  uint8_t first_peer[18];
};

static void fake_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
  static char mem[4096];
  (void)h;
  (void)sz;
  b->base = mem;
  b->len = sizeof mem;
}

static void fake_send(uv_udp_t *s, const uint8_t *p, size_t n, const struct sockaddr *to)
{
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  ck_assert_int_eq(uv_udp_try_send(s, &b, 1, to), (int)n);
}

static void fake_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
  struct fake *f = h->data;
  (void)flags;
  if (nread < 16 || addr == NULL)
    return;
  const uint8_t *p = (const uint8_t *)buf->base;
  uint64_t cid = get_u64be(p);
  uint32_t action = get_u32be(p + 8), tid = get_u32be(p + 12);
  f->got++;
  if (f->mode == FAKE_SILENT)
    return;
  if (f->mode == FAKE_DROP_FIRST && f->got == 1) {
    if (action == 0)
      f->connects++;
    return;
  }
  uint8_t out[64];
  if (action == 0) {
    ck_assert_uint_eq(cid, UDP_TRACKER_PROTOCOL_ID);
    ck_assert_int_eq((int)nread, 16);
    f->connects++;
    f->conn_id = 0x5eed000000000000ull + f->connects;
    put_u32be(out, 0);
    put_u32be(out + 4, tid);
    put_u64be(out + 8, f->conn_id);
    if (f->mode == FAKE_WRONG_TID && f->connects == 1) {
      put_u32be(out + 4, tid ^ 1);
      fake_send(h, out, 16, addr);
      put_u32be(out + 4, tid);
    }
    if (f->mode == FAKE_SPOOF && f->connects == 1) {
      /* Same transaction, another source, another id: must not be used. */
      put_u64be(out + 8, 0xbadbadbadull);
      fake_send(&f->other, out, 16, addr);
      put_u64be(out + 8, f->conn_id);
    }
    fake_send(h, out, 16, addr);
    return;
  }
  ck_assert_uint_eq(action, 1);
  ck_assert_int_eq((int)nread, UDP_TRACKER_ANNOUNCE_LEN);
  f->announces++;
  if (cid != f->conn_id)
    f->bad_conn_ids++;
  f->last_event = get_u32be(p + 80);
  f->last_key = get_u32be(p + 88);
  f->last_numwant = get_u32be(p + 92);
  f->last_port = get_u16be(p + 96);
  if (f->mode == FAKE_NO_ANNOUNCE)
    return;
  put_u32be(out + 4, tid);
  if (f->mode == FAKE_ERROR) {
    put_u32be(out, 3);
    memcpy(out + 8, "not here", 8);
    fake_send(h, out, 16, addr);
    return;
  }
  put_u32be(out, 1);
  put_u32be(out + 8, 900);
  put_u32be(out + 12, 2);
  put_u32be(out + 16, 1);
  size_t n = 20;
  if (f->mode == FAKE_BAD_PEERS) {
    memset(out + 20, 1, 7);
    n = 27;
  } else if (f->family == AF_INET) {
    static const uint8_t pe[12] = { 10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2 };
    memcpy(out + 20, pe, sizeof pe);
    n = 32;
  } else {
    memset(out + 20, 0, 18);
    out[20] = 0x20;
    out[21] = 0x01;
    out[35] = 7;
    put_u16be(out + 36, 6881);
    n = 38;
  }
  fake_send(h, out, n, addr);
}

/* Starts a fake tracker on the loopback of family; returns its port (0 when
 * the family is not available). */
static uint16_t fake_start(uv_loop_t *loop, struct fake *f, enum fake_mode mode, int family)
{
  memset(f, 0, sizeof *f);
  f->mode = mode;
  f->family = family;
  struct sockaddr_storage any = family == AF_INET ? v4("127.0.0.1", 0) : v6("::1", 0);
  ck_assert_int_eq(uv_udp_init(loop, &f->sock), 0);
  ck_assert_int_eq(uv_udp_init(loop, &f->other), 0);
  f->sock.data = f->other.data = f;
  if (uv_udp_bind(&f->sock, SA(any), 0) != 0 || uv_udp_bind(&f->other, SA(any), 0) != 0)
    return 0;
  ck_assert_int_eq(uv_udp_recv_start(&f->sock, fake_alloc, fake_recv), 0);
  struct sockaddr_storage bound;
  int len = sizeof bound;
  ck_assert_int_eq(uv_udp_getsockname(&f->sock, (struct sockaddr *)&bound, &len), 0);
  return family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                           : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
}

static void fake_stop(struct fake *f)
{
  uv_close((uv_handle_t *)&f->sock, NULL);
  uv_close((uv_handle_t *)&f->other, NULL);
}

static void on_done(void *ctx, int status, const struct udp_tracker_reply *r, const char *msg)
{
  struct outcome *o = ctx;
  o->calls++;
  o->status = status;
  snprintf(o->msg, sizeof o->msg, "%s", msg);
  if (status == 0) {
    ck_assert_ptr_nonnull(r);
    o->action = r->action;
    if (r->action == UDP_TRACKER_ERROR)
      snprintf(o->msg, sizeof o->msg, "%.*s", (int)r->message_len, (const char *)r->message);
    o->npeers = r->npeers;
    o->interval = r->interval;
    o->seeders = r->seeders;
    o->leechers = r->leechers;
    if (r->npeers)
      memcpy(o->first_peer, r->peers, r->entry_len);
  } else {
    ck_assert_ptr_null(r);
  }
}

static struct udp_tracker_announce_args test_args(void)
{
  struct udp_tracker_announce_args a;
  memset(&a, 0, sizeof a);
  memset(a.infohash, 0x11, 20);
  memset(a.peer_id, 0x22, 20);
  a.left = 100;
  a.event = UDP_TRACKER_EVENT_STARTED;
  a.key = 0x01020304;
  a.num_want = 50;
  a.port = 7000;
  return a;
}

/* Runs the loop until o->calls or the deadline (ms). */
static void run_until(uv_loop_t *loop, const struct outcome *o, int calls, uint64_t max_ms)
{
  uint64_t end = uv_now(loop) + max_ms;
  while (o->calls < calls && uv_now(loop) < end)
    uv_run(loop, UV_RUN_ONCE);
}

static void drain(uv_loop_t *loop)
{
  for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
    ;
  uv_run(loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(loop), 0);
}

static void url_of(char *url, size_t n, int family, uint16_t port)
{
  snprintf(url, n, family == AF_INET ? "udp://127.0.0.1:%u/announce" : "udp://[::1]:%u/announce", (unsigned)port);
}

/* A loop, a fake tracker in a mode, a client and the URL of the fake. */
struct rig {
  uv_loop_t loop;
  struct fake *f;
  struct udp_tracker_client *c;
  char url[64];
  struct udp_tracker_announce_args a;
};

/* Sets r up around the caller's fake f; returns the fake's port, or 0 when
 * the family is not available here (then no client is made). */
static uint16_t rig_open(struct rig *r, struct fake *f, enum fake_mode mode, int family)
{
  ck_assert_int_ge(sodium_init(), 0);
  uv_loop_init(&r->loop);
  r->f = f;
  r->c = NULL;
  uint16_t port = fake_start(&r->loop, f, mode, family);
  if (port == 0)
    return 0;
  ck_assert_int_eq(udp_tracker_client_new(&r->loop, &r->c), 0);
  url_of(r->url, sizeof r->url, family, port);
  r->a = test_args();
  return port;
}

static void rig_close(struct rig *r)
{
  if (r->c)
    udp_tracker_client_close(r->c);
  fake_stop(r->f);
  drain(&r->loop);
}

START_TEST(test_transport_normal_and_reuse)
{
  struct rig g;
  struct fake f;
  ck_assert_uint_ne(rig_open(&g, &f, FAKE_NORMAL, AF_INET), 0);
  struct udp_tracker_client *c = g.c;
  struct outcome o = { 0 };
  struct udp_tracker_req *req = NULL;
  ck_assert_int_eq(udp_tracker_announce(c, g.url, &g.a, 2000, 3, on_done, &o, &req), 0);
  ck_assert_ptr_nonnull(req);
  ck_assert_int_eq(o.calls, 0);   /* never from inside the call */
  ck_assert_uint_eq(udp_tracker_pending(c), 1);
  run_until(&g.loop, &o, 1, 5000);
  ck_assert_int_eq(o.calls, 1);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(o.action, UDP_TRACKER_ANNOUNCE);
  ck_assert_uint_eq(o.interval, 900);
  ck_assert_uint_eq(o.leechers, 2);
  ck_assert_uint_eq(o.seeders, 1);
  ck_assert_uint_eq(o.npeers, 2);
  static const uint8_t first[6] = { 10, 0, 0, 1, 0x1a, 0xe1 };
  ck_assert_mem_eq(o.first_peer, first, 6);
  ck_assert_uint_eq(f.connects, 1);
  ck_assert_uint_eq(f.announces, 1);
  ck_assert_uint_eq(f.bad_conn_ids, 0);
  ck_assert_uint_eq(f.last_event, 2);
  ck_assert_uint_eq(f.last_key, 0x01020304);
  ck_assert_uint_eq(f.last_numwant, 50);
  ck_assert_uint_eq(f.last_port, 7000);
  ck_assert_uint_eq(udp_tracker_pending(c), 0);

  /* A second announce within the minute reuses the connection id. */
  g.a.event = UDP_TRACKER_EVENT_NONE;
  ck_assert_int_eq(udp_tracker_announce(c, g.url, &g.a, 2000, 3, on_done, &o, NULL), 0);
  run_until(&g.loop, &o, 2, 5000);
  ck_assert_int_eq(o.calls, 2);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(f.connects, 1);
  ck_assert_uint_eq(f.announces, 2);
  ck_assert_uint_eq(f.bad_conn_ids, 0);
  ck_assert_uint_eq(f.last_event, 0);
  rig_close(&g);
}
END_TEST

START_TEST(test_transport_ipv6)
{
  struct rig g;
  struct fake f;
  if (rig_open(&g, &f, FAKE_NORMAL, AF_INET6) == 0) {   /* no IPv6 loopback here */
    rig_close(&g);
    return;
  }
  struct outcome o = { 0 };
  ck_assert_int_eq(udp_tracker_announce(g.c, g.url, &g.a, 2000, 3, on_done, &o, NULL), 0);
  run_until(&g.loop, &o, 1, 5000);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(o.npeers, 1);   /* one 18-byte entry */
  ck_assert_uint_eq(o.first_peer[0], 0x20);
  ck_assert_uint_eq(get_u16be(o.first_peer + 16), 6881);
  rig_close(&g);
}
END_TEST

/* One request in a given mode; returns the outcome and the fake's counters. */
static void one(enum fake_mode mode, unsigned base_ms, unsigned tries, struct outcome *o, struct fake *f,
                uint64_t *elapsed_ms)
{
  struct rig g;
  ck_assert_uint_ne(rig_open(&g, f, mode, AF_INET), 0);
  memset(o, 0, sizeof *o);
  uv_update_time(&g.loop);
  uint64_t t0 = uv_now(&g.loop);
  ck_assert_int_eq(udp_tracker_announce(g.c, g.url, &g.a, base_ms, tries, on_done, o, NULL), 0);
  run_until(&g.loop, o, 1, 10000);
  if (elapsed_ms)
    *elapsed_ms = uv_now(&g.loop) - t0;
  ck_assert_int_eq(o->calls, 1);
  rig_close(&g);
}

/* A request in a mode where stray or spoofed packets must change nothing:
 * one connect, one announce with the right id, success. */
static void one_clean_exchange(enum fake_mode mode)
{
  struct outcome o;
  struct fake f;
  one(mode, 2000, 3, &o, &f, NULL);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(f.connects, 1);
  ck_assert_uint_eq(f.announces, 1);
  ck_assert_uint_eq(f.bad_conn_ids, 0);
}

START_TEST(test_transport_retransmit)
{
  struct outcome o;
  struct fake f;
  uint64_t ms;
  one(FAKE_DROP_FIRST, 100, 3, &o, &f, &ms);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(f.connects, 2);     /* the first was lost, the retransmission answered */
  ck_assert_uint_eq(f.announces, 1);
  ck_assert_uint_ge(ms, 90);
}
END_TEST

START_TEST(test_transport_timeout)
{
  struct outcome o;
  struct fake f;
  uint64_t ms;
  one(FAKE_SILENT, 50, 3, &o, &f, &ms);
  ck_assert_int_eq(o.status, UV_ETIMEDOUT);
  ck_assert_uint_eq(f.got, 3);          /* sent at 0, 50, 150; given up at 350 */
  ck_assert_uint_ge(ms, 340);
  ck_assert_uint_lt(ms, 3000);
  ck_assert_ptr_nonnull(strstr(o.msg, "no answer"));
}
END_TEST

START_TEST(test_transport_wrong_tid_ignored)
{
  one_clean_exchange(FAKE_WRONG_TID);   /* the stray reply neither failed nor restarted anything */
}
END_TEST

START_TEST(test_transport_spoofed_source_ignored)
{
  one_clean_exchange(FAKE_SPOOF);       /* the other source's id is never used */
}
END_TEST

START_TEST(test_transport_bad_peers)
{
  struct outcome o;
  struct fake f;
  one(FAKE_BAD_PEERS, 2000, 3, &o, &f, NULL);
  ck_assert_int_eq(o.status, SHOAL_EPROTO);
  ck_assert_ptr_nonnull(strstr(o.msg, "bad reply"));
  ck_assert_ptr_nonnull(strstr(o.msg, "multiple of 6"));
}
END_TEST

START_TEST(test_transport_error_packet)
{
  struct outcome o;
  struct fake f;
  one(FAKE_ERROR, 2000, 3, &o, &f, NULL);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(o.action, UDP_TRACKER_ERROR);
  ck_assert_str_eq(o.msg, "not here");
}
END_TEST

START_TEST(test_transport_announce_timeout_reconnects)
{
  struct outcome o;
  struct fake f;
  one(FAKE_NO_ANNOUNCE, 50, 3, &o, &f, NULL);
  ck_assert_int_eq(o.status, UV_ETIMEDOUT);
  /* connect, announce (lost), connect again (id forgotten), announce, ... */
  ck_assert_uint_eq(f.connects, 3);
  ck_assert_uint_eq(f.announces, 3);
  ck_assert_uint_eq(f.bad_conn_ids, 0);
}
END_TEST

START_TEST(test_transport_cancel_and_close)
{
  struct rig g;
  struct fake f;
  ck_assert_uint_ne(rig_open(&g, &f, FAKE_SILENT, AF_INET), 0);
  struct udp_tracker_client *c = g.c;
  const char *url = g.url;
  struct udp_tracker_announce_args a = g.a;
  struct outcome o = { 0 };
  struct udp_tracker_req *r1, *r2;
  /* Bad arguments: an error, no callback. */
  ck_assert_int_eq(udp_tracker_announce(c, "udp://nowhere", &a, 100, 3, on_done, &o, NULL), UV_EINVAL);
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 0, 3, on_done, &o, NULL), UV_EINVAL);
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 100, 0, on_done, &o, NULL), UV_EINVAL);
  /* Cancelled while resolving. */
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 100, 3, on_done, &o, &r1), 0);
  udp_tracker_cancel(r1);
  ck_assert_uint_eq(udp_tracker_pending(c), 0);
  /* Cancelled while waiting for an answer. */
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 5000, 3, on_done, &o, &r2), 0);
  uint64_t end = uv_now(&g.loop) + 3000;
  while (f.got == 0 && uv_now(&g.loop) < end)
    uv_run(&g.loop, UV_RUN_ONCE);
  ck_assert_uint_eq(f.got, 1);
  udp_tracker_cancel(r2);
  /* Pending requests when the client closes: no callback either. */
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 5000, 3, on_done, &o, NULL), 0);
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 5000, 3, on_done, &o, NULL), 0);
  end = uv_now(&g.loop) + 3000;
  while (f.got < 3 && uv_now(&g.loop) < end)
    uv_run(&g.loop, UV_RUN_ONCE);
  rig_close(&g);
  ck_assert_int_eq(o.calls, 0);
}
END_TEST

Suite *udp_tracker_suite(void)
{
  Suite *s = suite_create("udp_tracker");
  TCase *tc = tcase_create("codec");
  tcase_add_test(tc, test_url_good);
  tcase_add_test(tc, test_url_bad);
  tcase_add_test(tc, test_put_connect);
  tcase_add_test(tc, test_put_announce);
  tcase_add_test(tc, test_put_scrape);
  tcase_add_test(tc, test_reply_connect);
  tcase_add_test(tc, test_reply_error);
  tcase_add_test(tc, test_reply_announce);
  tcase_add_test(tc, test_reply_scrape);
  tcase_add_test(tc, test_cache);
  suite_add_tcase(s, tc);
  tc = tcase_create("transport");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_transport_normal_and_reuse);
  tcase_add_test(tc, test_transport_ipv6);
  tcase_add_test(tc, test_transport_retransmit);
  tcase_add_test(tc, test_transport_timeout);
  tcase_add_test(tc, test_transport_wrong_tid_ignored);
  tcase_add_test(tc, test_transport_spoofed_source_ignored);
  tcase_add_test(tc, test_transport_bad_peers);
  tcase_add_test(tc, test_transport_error_packet);
  tcase_add_test(tc, test_transport_announce_timeout_reconnects);
  tcase_add_test(tc, test_transport_cancel_and_close);
  suite_add_tcase(s, tc);
  return s;
}
