/* test_trackerudp.c -- the tracker's UDP side: connection ids (valid, expired, wrong address), every malformed request, answers, shared swarms with HTTP, the server on loopback. */
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
#include "tracker/http.h"
#include "tracker/swarms.h"
#include "tracker/udp.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *s = (struct sockaddr_in *)&ss;
  s->sin_family = AF_INET;
  ck_assert_int_eq(inet_pton(AF_INET, ip, &s->sin_addr), 1);
  s->sin_port = htons(port);
  return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
  s->sin6_family = AF_INET6;
  ck_assert_int_eq(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
  s->sin6_port = htons(port);
  return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static const uint8_t key_a[TRACKERUDP_SECRET_LEN] = "0123456789abcdef";
static const uint8_t key_b[TRACKERUDP_SECRET_LEN] = "ghijklmnopqrstuv";
static const uint8_t key_c[TRACKERUDP_SECRET_LEN] = "wxyzABCDEFGHIJKL";

/* ---- connection ids ---- */

START_TEST(test_conn_id_valid_wrong_address)
{
  struct trackerudp_secrets s;
  trackerudp_secrets_init(&s, key_a, 1000);
  struct sockaddr_storage a = v4("10.0.0.1", 5000), b = v4("10.0.0.2", 5000), c = v4("10.0.0.1", 5001);
  struct sockaddr_storage m = v6("::ffff:10.0.0.1", 5000), six = v6("2001:db8::1", 5000);
  uint64_t id = trackerudp_conn_id(&s, SA(a));
  ck_assert(trackerudp_conn_id_ok(&s, SA(a), id));
  ck_assert(!trackerudp_conn_id_ok(&s, SA(b), id));     /* other IP */
  ck_assert(!trackerudp_conn_id_ok(&s, SA(c), id));     /* other port */
  ck_assert(!trackerudp_conn_id_ok(&s, SA(six), id));
  ck_assert(!trackerudp_conn_id_ok(&s, SA(a), id ^ 1));
  ck_assert(!trackerudp_conn_id_ok(&s, SA(a), TRACKERUDP_PROTOCOL_ID));
  ck_assert(trackerudp_conn_id_ok(&s, SA(m), id));      /* IPv4-mapped is the same client */
  ck_assert_uint_ne(trackerudp_conn_id(&s, SA(a)), trackerudp_conn_id(&s, SA(b)));
  ck_assert_uint_eq(trackerudp_conn_id(&s, SA(a)), id);  /* deterministic */
  /* Another secret gives other ids. */
  struct trackerudp_secrets s2;
  trackerudp_secrets_init(&s2, key_b, 1000);
  ck_assert(!trackerudp_conn_id_ok(&s2, SA(a), id));
  /* Not an address. */
  struct sockaddr_storage un;
  memset(&un, 0, sizeof un);
  un.ss_family = AF_UNIX;
  ck_assert_uint_eq(trackerudp_conn_id(&s, SA(un)), 0);
  ck_assert(!trackerudp_conn_id_ok(&s, SA(un), 0));
}
END_TEST

START_TEST(test_conn_id_expiry)
{
  struct trackerudp_secrets s;
  trackerudp_secrets_init(&s, key_a, 1000);
  struct sockaddr_storage a = v4("10.0.0.1", 5000);
  uint64_t id = trackerudp_conn_id(&s, SA(a));
  ck_assert(!trackerudp_secrets_due(&s, 1000));
  ck_assert(!trackerudp_secrets_due(&s, 1000 + TRACKERUDP_ROTATE_S - 1));
  ck_assert(trackerudp_secrets_due(&s, 1000 + TRACKERUDP_ROTATE_S));
  ck_assert(trackerudp_secrets_due(&s, 999));   /* clock went back */
  /* One rotation: still accepted (previous secret). */
  trackerudp_secrets_rotate(&s, key_b, 1000 + TRACKERUDP_ROTATE_S);
  ck_assert(trackerudp_conn_id_ok(&s, SA(a), id));
  uint64_t id2 = trackerudp_conn_id(&s, SA(a));
  ck_assert_uint_ne(id2, id);
  ck_assert(trackerudp_conn_id_ok(&s, SA(a), id2));
  /* Two rotations: expired. */
  trackerudp_secrets_rotate(&s, key_c, 1000 + 2 * TRACKERUDP_ROTATE_S);
  ck_assert(!trackerudp_conn_id_ok(&s, SA(a), id));
  ck_assert(trackerudp_conn_id_ok(&s, SA(a), id2));

  /* A rotation after a long quiet time drops the old secret at once. */
  trackerudp_secrets_init(&s, key_a, 1000);
  id = trackerudp_conn_id(&s, SA(a));
  trackerudp_secrets_rotate(&s, key_b, 1000 + 2 * TRACKERUDP_ROTATE_S + 5);
  ck_assert(!trackerudp_conn_id_ok(&s, SA(a), id));
  /* ... but not after less than two periods. */
  trackerudp_secrets_init(&s, key_a, 1000);
  id = trackerudp_conn_id(&s, SA(a));
  trackerudp_secrets_rotate(&s, key_b, 1000 + 2 * TRACKERUDP_ROTATE_S - 1);
  ck_assert(trackerudp_conn_id_ok(&s, SA(a), id));
}
END_TEST

/* ---- requests ---- */

struct env {
  struct swarms *sw;
  struct trackerudp_config cfg;
  struct trackerudp_secrets sec;
  struct buf out;
};

static void env_init(struct env *e)
{
  uint8_t key[SWARMS_KEY_LEN] = { 1, 2, 3 };
  e->sw = swarms_new(NULL, key);
  ck_assert_ptr_nonnull(e->sw);
  trackerudp_config_default(&e->cfg);
  e->cfg.interval = 600;
  trackerudp_secrets_init(&e->sec, key_a, 0);
  buf_init(&e->out, TRACKERUDP_REPLY_MAX);
}

static void env_free(struct env *e)
{
  swarms_free(e->sw);
  buf_free(&e->out);
}

/* Handles pkt from `from`; returns the answer length (0: none). */
static size_t handle(struct env *e, const uint8_t *pkt, size_t len, const struct sockaddr_storage *from)
{
  e->out.len = 0;
  ck_assert_int_eq(trackerudp_handle(e->sw, &e->cfg, &e->sec, pkt, len, SA(*from), 10, &e->out), 0);
  return e->out.len;
}

static size_t announce_pkt(uint8_t *p, uint64_t cid, uint32_t tid, uint8_t ih, uint32_t peer, uint64_t left,
                           uint32_t event, int32_t numwant, uint16_t port)
{
  memset(p, 0, 98);
  put_u64be(p, cid);
  put_u32be(p + 8, 1);
  put_u32be(p + 12, tid);
  memset(p + 16, ih, 20);
  memset(p + 36, 'P', 20);
  put_u32be(p + 52, peer);
  put_u64be(p + 64, left);
  put_u32be(p + 80, event);
  put_u32be(p + 84, 0x01020304);   /* an IP field the tracker must ignore */
  put_u32be(p + 92, (uint32_t)numwant);
  put_u16be(p + 96, port);
  return 98;
}

static void check_error(const struct env *e, uint32_t tid, const char *msg)
{
  ck_assert_uint_eq(e->out.len, 8 + strlen(msg));
  ck_assert_uint_eq(get_u32be(e->out.p), 3);
  ck_assert_uint_eq(get_u32be(e->out.p + 4), tid);
  ck_assert_mem_eq(e->out.p + 8, msg, strlen(msg));
}

START_TEST(test_connect)
{
  struct env e;
  env_init(&e);
  struct sockaddr_storage a = v4("127.0.0.1", 40000);
  uint8_t p[16];
  put_u64be(p, TRACKERUDP_PROTOCOL_ID);
  put_u32be(p + 8, 0);
  put_u32be(p + 12, 0xabcdef01);
  ck_assert_uint_eq(handle(&e, p, 16, &a), 16);
  ck_assert_uint_eq(get_u32be(e.out.p), 0);
  ck_assert_uint_eq(get_u32be(e.out.p + 4), 0xabcdef01);
  ck_assert_uint_eq(get_u64be(e.out.p + 8), trackerudp_conn_id(&e.sec, SA(a)));
  /* Longer connects are fine; shorter packets, of any kind, get nothing. */
  uint8_t big[40] = { 0 };
  memcpy(big, p, 16);
  ck_assert_uint_eq(handle(&e, big, sizeof big, &a), 16);
  for (size_t len = 0; len < 16; len++)
    ck_assert_uint_eq(handle(&e, p, len, &a), 0);
  /* Wrong protocol id: ignored. */
  put_u64be(p, TRACKERUDP_PROTOCOL_ID + 1);
  ck_assert_uint_eq(handle(&e, p, 16, &a), 0);
  /* A source without a port, or not IP: ignored. */
  put_u64be(p, TRACKERUDP_PROTOCOL_ID);
  struct sockaddr_storage noport = v4("127.0.0.1", 0);
  ck_assert_uint_eq(handle(&e, p, 16, &noport), 0);
  struct sockaddr_storage un;
  memset(&un, 0, sizeof un);
  un.ss_family = AF_UNIX;
  ck_assert_uint_eq(handle(&e, p, 16, &un), 0);
  /* Longer than the cap: ignored. */
  uint8_t *huge = calloc(1, TRACKERUDP_PACKET_MAX + 1);
  memcpy(huge, p, 16);
  ck_assert_uint_eq(handle(&e, huge, TRACKERUDP_PACKET_MAX + 1, &a), 0);
  ck_assert_uint_eq(handle(&e, huge, TRACKERUDP_PACKET_MAX, &a), 16);
  free(huge);
  ck_assert_uint_eq(handle(&e, NULL, 16, &a), 0);
  env_free(&e);
}
END_TEST

START_TEST(test_announce_malformed)
{
  struct env e;
  env_init(&e);
  struct sockaddr_storage a = v4("127.0.0.1", 40000);
  uint64_t cid = trackerudp_conn_id(&e.sec, SA(a));
  uint8_t p[120];
  /* Bad connection id: ignored, nothing recorded. */
  announce_pkt(p, cid ^ 0x10, 5, 1, 1, 10, 2, -1, 6881);
  ck_assert_uint_eq(handle(&e, p, 98, &a), 0);
  struct sockaddr_storage other = v4("127.0.0.2", 40000);
  announce_pkt(p, cid, 5, 1, 1, 10, 2, -1, 6881);
  ck_assert_uint_eq(handle(&e, p, 98, &other), 0);   /* someone else's id */
  ck_assert_uint_eq(swarms_count(e.sw), 0);
  /* Too short, every length from the header to 97. */
  for (size_t len = 16; len < 98; len++) {
    ck_assert_uint_gt(handle(&e, p, len, &a), 0);
    check_error(&e, 5, "announce too short");
  }
  ck_assert_uint_eq(swarms_count(e.sw), 0);
  /* Event beyond 3, port 0. */
  announce_pkt(p, cid, 6, 1, 1, 10, 4, -1, 6881);
  handle(&e, p, 98, &a);
  check_error(&e, 6, "invalid event");
  announce_pkt(p, cid, 7, 1, 1, 10, 0xffffffff, -1, 6881);
  handle(&e, p, 98, &a);
  check_error(&e, 7, "invalid event");
  announce_pkt(p, cid, 8, 1, 1, 10, 2, -1, 0);
  handle(&e, p, 98, &a);
  check_error(&e, 8, "invalid port");
  ck_assert_uint_eq(swarms_count(e.sw), 0);
  /* Unknown actions, including "error" sent to the tracker. */
  put_u32be(p + 8, 3);
  handle(&e, p, 98, &a);
  check_error(&e, 8, "unknown action");
  put_u32be(p + 8, 77);
  handle(&e, p, 16, &a);
  check_error(&e, 8, "unknown action");
  /* Options after the 98 bytes (BEP 41) are ignored. */
  announce_pkt(p, cid, 9, 1, 1, 10, 2, -1, 6881);
  p[98] = 2;
  p[99] = 3;
  memcpy(p + 100, "/x1", 3);
  p[103] = 0;
  ck_assert_uint_eq(handle(&e, p, 104, &a), 20);
  ck_assert_uint_eq(swarms_peer_count(e.sw), 1);
  /* An answer that does not fit: an error, the buffer as it was. */
  struct buf small;
  buf_init(&small, 10);
  buf_append(&small, "ab", 2);
  ck_assert_int_eq(trackerudp_handle(e.sw, &e.cfg, &e.sec, p, 98, SA(a), 10, &small), UV_E2BIG);
  ck_assert_uint_eq(small.len, 2);
  buf_free(&small);
  env_free(&e);
}
END_TEST

START_TEST(test_announce_peers)
{
  struct env e;
  env_init(&e);
  struct sockaddr_storage a = v4("127.0.0.1", 40000), b = v4("127.0.0.2", 40001);
  struct sockaddr_storage c6 = v6("2001:db8::5", 40002), m = v6("::ffff:127.0.0.3", 40003);
  uint8_t p[98];
  /* First leecher: alone. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(a)), 11, 1, 1, 500, 2, -1, 6881);
  ck_assert_uint_eq(handle(&e, p, 98, &a), 20);
  ck_assert_uint_eq(get_u32be(e.out.p), 1);
  ck_assert_uint_eq(get_u32be(e.out.p + 4), 11);
  ck_assert_uint_eq(get_u32be(e.out.p + 8), 600);   /* interval */
  ck_assert_uint_eq(get_u32be(e.out.p + 12), 1);    /* leechers */
  ck_assert_uint_eq(get_u32be(e.out.p + 16), 0);    /* seeders */
  /* A seed gets the leecher: the packet's source IP (not the IP field), its port. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(b)), 12, 1, 2, 0, 2, -1, 6882);
  ck_assert_uint_eq(handle(&e, p, 98, &b), 26);
  ck_assert_uint_eq(get_u32be(e.out.p + 12), 1);
  ck_assert_uint_eq(get_u32be(e.out.p + 16), 1);
  static const uint8_t want_a[6] = { 127, 0, 0, 1, 0x1a, 0xe1 };
  ck_assert_mem_eq(e.out.p + 20, want_a, 6);
  /* An IPv6 client: 18-byte entries, IPv6 peers only, counts over all. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(c6)), 13, 1, 3, 5, 0, -1, 6883);
  ck_assert_uint_eq(handle(&e, p, 98, &c6), 20);
  ck_assert_uint_eq(get_u32be(e.out.p + 12), 2);
  ck_assert_uint_eq(get_u32be(e.out.p + 16), 1);
  struct sockaddr_storage d6 = v6("2001:db8::6", 40004);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(d6)), 14, 1, 4, 5, 0, -1, 6884);
  ck_assert_uint_eq(handle(&e, p, 98, &d6), 20 + 18);
  uint8_t want6[18];
  inet_pton(AF_INET6, "2001:db8::5", want6);
  put_u16be(want6 + 16, 6883);
  ck_assert_mem_eq(e.out.p + 20, want6, 18);
  /* An IPv4-mapped client is an IPv4 client: 6-byte entries. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(m)), 15, 1, 5, 5, 0, -1, 6885);
  size_t n = handle(&e, p, 98, &m);
  ck_assert_uint_eq(n, 20 + 2 * 6);   /* a and b */
  /* num_want 0: counts only. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(m)), 16, 1, 5, 5, 0, 0, 6885);
  ck_assert_uint_eq(handle(&e, p, 98, &m), 20);
  /* Stopped: removed, no peers. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(b)), 17, 1, 2, 0, 3, -1, 6882);
  ck_assert_uint_eq(handle(&e, p, 98, &b), 20);
  ck_assert_uint_eq(get_u32be(e.out.p + 16), 0);
  struct swarms_stats st;
  uint8_t ih[20];
  memset(ih, 1, 20);
  ck_assert_int_eq(swarms_lookup(e.sw, ih, &st), 0);
  ck_assert_uint_eq(st.complete, 0);
  ck_assert_uint_eq(st.incomplete, 4);
  /* Completed counts in the scrape's `completed`. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(a)), 18, 1, 1, 0, 1, -1, 6881);
  handle(&e, p, 98, &a);
  ck_assert_int_eq(swarms_lookup(e.sw, ih, &st), 0);
  ck_assert_uint_eq(st.downloaded, 1);
  ck_assert_uint_eq(st.complete, 1);
  env_free(&e);
}
END_TEST

START_TEST(test_announce_numwant)
{
  struct env e;
  env_init(&e);
  uint8_t p[98];
  char ip[64];
  for (int i = 0; i < 250; i++) {
    snprintf(ip, sizeof ip, "10.0.%d.%d", i / 200, i % 200 + 1);
    struct sockaddr_storage x = v4(ip, 1000);
    announce_pkt(p, trackerudp_conn_id(&e.sec, SA(x)), 1, 2, (uint32_t)i, 5, 2, 0, 2000);
    ck_assert_uint_eq(handle(&e, p, 98, &x), 20);
  }
  for (int i = 0; i < 100; i++) {
    snprintf(ip, sizeof ip, "2001:db8::%x", i + 1);
    struct sockaddr_storage x = v6(ip, 1000);
    announce_pkt(p, trackerudp_conn_id(&e.sec, SA(x)), 1, 2, (uint32_t)(1000 + i), 5, 2, 0, 2000);
    ck_assert_uint_eq(handle(&e, p, 98, &x), 20);
  }
  struct sockaddr_storage me = v4("192.168.1.1", 1000), me6 = v6("2001:db8::ffff", 1000);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(me)), 2, 2, 9999, 5, 0, 1000, 3000);
  ck_assert_uint_eq(handle(&e, p, 98, &me), 20 + TRACKERUDP_NUMWANT_MAX * 6);
  ck_assert_uint_eq(get_u32be(e.out.p + 12), 351);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(me)), 2, 2, 9999, 5, 0, -1, 3000);
  ck_assert_uint_eq(handle(&e, p, 98, &me), 20 + TRACKERUDP_NUMWANT_DEFAULT * 6);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(me)), 2, 2, 9999, 5, 0, INT32_MIN, 3000);
  ck_assert_uint_eq(handle(&e, p, 98, &me), 20 + TRACKERUDP_NUMWANT_DEFAULT * 6);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(me)), 2, 2, 9999, 5, 0, 7, 3000);
  ck_assert_uint_eq(handle(&e, p, 98, &me), 20 + 7 * 6);
  /* IPv6: bounded by one packet (79 entries of 18 bytes). */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(me6)), 2, 2, 8888, 5, 0, 200, 3000);
  size_t n = handle(&e, p, 98, &me6);
  ck_assert_uint_eq(n, 20 + ((TRACKERUDP_REPLY_MAX - 20) / 18) * 18);
  ck_assert_uint_le(n, TRACKERUDP_REPLY_MAX);
  ck_assert_uint_eq(n, 20 + 79 * 18);
  /* Peers are distinct and never the requester. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(me)), 2, 2, 9999, 5, 0, 200, 3000);
  n = handle(&e, p, 98, &me);
  for (size_t i = 20; i < n; i += 6) {
    ck_assert(!(e.out.p[i] == 192 && e.out.p[i + 1] == 168));
    for (size_t j = i + 6; j < n; j += 6)
      ck_assert(memcmp(e.out.p + i, e.out.p + j, 6) != 0);
  }
  env_free(&e);
}
END_TEST

START_TEST(test_scrape)
{
  struct env e;
  env_init(&e);
  struct sockaddr_storage a = v4("127.0.0.1", 40000), b = v4("127.0.0.2", 40000);
  uint64_t cid = trackerudp_conn_id(&e.sec, SA(a));
  uint8_t p[16 + 20 * 80 + 7];
  announce_pkt(p, cid, 1, 0xaa, 1, 0, 2, -1, 6881);
  handle(&e, p, 98, &a);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(b)), 1, 0xaa, 2, 9, 2, -1, 6881);
  handle(&e, p, 98, &b);
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(b)), 1, 0xaa, 2, 0, 1, -1, 6881);
  handle(&e, p, 98, &b);
  announce_pkt(p, cid, 1, 0xbb, 1, 9, 2, -1, 6881);
  handle(&e, p, 98, &a);

  memset(p, 0, sizeof p);
  put_u64be(p, cid);
  put_u32be(p + 8, 2);
  put_u32be(p + 12, 0x77);
  memset(p + 16, 0xaa, 20);
  memset(p + 36, 0xcc, 20);   /* unknown */
  memset(p + 56, 0xbb, 20);
  ck_assert_uint_eq(handle(&e, p, 76, &a), 8 + 36);
  ck_assert_uint_eq(get_u32be(e.out.p), 2);
  ck_assert_uint_eq(get_u32be(e.out.p + 4), 0x77);
  uint32_t want[9] = { 2, 1, 0, 0, 0, 0, 0, 0, 1 };
  for (int i = 0; i < 9; i++)
    ck_assert_uint_eq(get_u32be(e.out.p + 8 + 4 * i), want[i]);
  /* A trailing partial hash is not read. */
  ck_assert_uint_eq(handle(&e, p, 76 + 19, &a), 8 + 36);
  /* No whole infohash. */
  ck_assert_uint_gt(handle(&e, p, 16, &a), 0);
  check_error(&e, 0x77, "scrape without info_hash");
  ck_assert_uint_gt(handle(&e, p, 35, &a), 0);
  check_error(&e, 0x77, "scrape without info_hash");
  /* At most 74 answered. */
  ck_assert_uint_eq(handle(&e, p, 16 + 20 * 80, &a), 8 + 12 * TRACKERUDP_SCRAPE_MAX);
  /* Wrong connection id: ignored. */
  put_u64be(p, cid + 1);
  ck_assert_uint_eq(handle(&e, p, 76, &a), 0);
  env_free(&e);
}
END_TEST

/* A peer announced over UDP is seen by HTTP announcers, and the other way. */
START_TEST(test_shared_with_http)
{
  struct env e;
  env_init(&e);
  struct trackerhttp_config hcfg;
  trackerhttp_config_default(&hcfg);
  struct sockaddr_storage u = v4("127.0.0.5", 40000), h = v4("127.0.0.6", 50000);
  uint8_t p[98];
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(u)), 1, 0x42, 1, 100, 2, -1, 7001);
  handle(&e, p, 98, &u);
  char q[400];
  snprintf(q, sizeof q, "info_hash=%s&peer_id=%s&port=7002&uploaded=0&downloaded=0&left=0",
           "BBBBBBBBBBBBBBBBBBBB", "-XX0001-abcdefghijkl");
  memset(p, 0, sizeof p);
  /* infohash 0x42 is 'B' */
  struct buf body;
  buf_init(&body, 1 << 16);
  ck_assert_int_eq(trackerhttp_announce(e.sw, &hcfg, q, strlen(q), SA(h), 10, &body), 0);
  static const uint8_t udp_peer[6] = { 127, 0, 0, 5, 0x1b, 0x59 };
  ck_assert_ptr_nonnull(memmem(body.p, body.len, "5:peers6:", 9));
  ck_assert_ptr_nonnull(memmem(body.p, body.len, udp_peer, 6));
  buf_free(&body);
  /* The UDP leecher now gets the HTTP seed. */
  announce_pkt(p, trackerudp_conn_id(&e.sec, SA(u)), 2, 0x42, 1, 100, 0, -1, 7001);
  ck_assert_uint_eq(handle(&e, p, 98, &u), 26);
  static const uint8_t http_peer[6] = { 127, 0, 0, 6, 0x1b, 0x5a };
  ck_assert_mem_eq(e.out.p + 20, http_peer, 6);
  ck_assert_uint_eq(get_u32be(e.out.p + 16), 1);
  env_free(&e);
}
END_TEST

/* ---- the server, with the client of peer/ ---- */

struct rt {
  int calls, status;
  uint32_t action, leechers, seeders;
  size_t npeers;
  uint8_t peer[18];
};

static void rt_done(void *ctx, int status, const struct udp_tracker_reply *r, const char *msg)
{
  struct rt *o = ctx;
  (void)msg;
  o->calls++;
  o->status = status;
  if (r) {
    o->action = r->action;
    o->leechers = r->leechers;
    o->seeders = r->seeders;
    o->npeers = r->npeers;
    if (r->npeers)
      memcpy(o->peer, r->peers, r->entry_len);
  }
}

static void server_roundtrip(int family)
{
  ck_assert_int_ge(sodium_init(), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  uint8_t key[SWARMS_KEY_LEN] = { 9 };
  struct swarms *sw = swarms_new(NULL, key);
  struct trackerudp_server *srv = NULL;
  struct sockaddr_storage bind = family == AF_INET ? v4("127.0.0.1", 0) : v6("::1", 0);
  int rc = trackerudp_server_new(&loop, sw, NULL, SA(bind), &srv);
  if (rc != 0 && family == AF_INET6) {   /* no IPv6 loopback here */
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    swarms_free(sw);
    return;
  }
  ck_assert_int_eq(rc, 0);
  struct sockaddr_storage bound;
  ck_assert_int_eq(trackerudp_server_addr(srv, &bound), 0);
  uint16_t port = family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                                    : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
  char url[64];
  snprintf(url, sizeof url, family == AF_INET ? "udp://127.0.0.1:%u/announce" : "udp://[::1]:%u", port);
  struct udp_tracker_client *c;
  ck_assert_int_eq(udp_tracker_client_new(&loop, &c), 0);
  struct udp_tracker_announce_args a;
  memset(&a, 0, sizeof a);
  memset(a.infohash, 0x33, 20);
  memset(a.peer_id, 'A', 20);
  a.left = 10;
  a.event = UDP_TRACKER_EVENT_STARTED;
  a.num_want = -1;
  a.port = 6001;
  struct rt o = { 0 };
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 2000, 3, rt_done, &o, NULL), 0);
  uint64_t end = uv_now(&loop) + 5000;
  while (o.calls < 1 && uv_now(&loop) < end)
    uv_run(&loop, UV_RUN_ONCE);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(o.action, UDP_TRACKER_ANNOUNCE);
  ck_assert_uint_eq(o.leechers, 1);
  ck_assert_uint_eq(o.npeers, 0);
  /* A second peer (another id, same host) gets the first. */
  memset(a.peer_id, 'B', 20);
  a.left = 0;
  a.port = 6002;
  ck_assert_int_eq(udp_tracker_announce(c, url, &a, 2000, 3, rt_done, &o, NULL), 0);
  end = uv_now(&loop) + 5000;
  while (o.calls < 2 && uv_now(&loop) < end)
    uv_run(&loop, UV_RUN_ONCE);
  ck_assert_int_eq(o.status, 0);
  ck_assert_uint_eq(o.seeders, 1);
  ck_assert_uint_eq(o.npeers, 1);
  size_t esz = family == AF_INET ? 6 : 18;
  ck_assert_uint_eq(get_u16be(o.peer + esz - 2), 6001);
  ck_assert_uint_eq(trackerudp_server_received(srv), 3);   /* connect, announce, announce */
  ck_assert_uint_eq(trackerudp_server_answered(srv), 3);
  udp_tracker_client_close(c);
  trackerudp_server_close(srv);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  swarms_free(sw);
}

START_TEST(test_server_v4)
{
  server_roundtrip(AF_INET);
}
END_TEST

START_TEST(test_server_v6)
{
  server_roundtrip(AF_INET6);
}
END_TEST

START_TEST(test_server_bind_in_use)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  uint8_t key[SWARMS_KEY_LEN] = { 9 };
  struct swarms *sw = swarms_new(NULL, key);
  struct trackerudp_server *a = NULL, *b = NULL;
  struct sockaddr_storage bind = v4("127.0.0.1", 0);
  ck_assert_int_eq(trackerudp_server_new(&loop, sw, NULL, SA(bind), &a), 0);
  struct sockaddr_storage bound;
  ck_assert_int_eq(trackerudp_server_addr(a, &bound), 0);
  ck_assert_int_eq(trackerudp_server_new(&loop, sw, NULL, SA(bound), &b), UV_EADDRINUSE);
  ck_assert_ptr_null(b);
  trackerudp_server_close(a);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  swarms_free(sw);
}
END_TEST

Suite *trackerudp_suite(void)
{
  Suite *s = suite_create("trackerudp");
  TCase *tc = tcase_create("conn_id");
  tcase_add_test(tc, test_conn_id_valid_wrong_address);
  tcase_add_test(tc, test_conn_id_expiry);
  suite_add_tcase(s, tc);
  tc = tcase_create("requests");
  tcase_add_test(tc, test_connect);
  tcase_add_test(tc, test_announce_malformed);
  tcase_add_test(tc, test_announce_peers);
  tcase_add_test(tc, test_announce_numwant);
  tcase_add_test(tc, test_scrape);
  tcase_add_test(tc, test_shared_with_http);
  suite_add_tcase(s, tc);
  tc = tcase_create("server");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_server_v4);
  tcase_add_test(tc, test_server_v6);
  tcase_add_test(tc, test_server_bind_in_use);
  suite_add_tcase(s, tc);
  return s;
}
