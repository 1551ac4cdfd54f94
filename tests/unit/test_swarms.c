/* test_swarms.c -- the tracker's swarm bookkeeping: announces, events, selection, caps, expiry. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "tracker/swarms.h"

static const uint8_t test_key[SWARMS_KEY_LEN] = "0123456789abcdef";

static void ih_make(uint8_t ih[20], unsigned n)
{
  memset(ih, 0, 20);
  ih[0] = 'I';
  ih[16] = (uint8_t)(n >> 24);
  ih[17] = (uint8_t)(n >> 16);
  ih[18] = (uint8_t)(n >> 8);
  ih[19] = (uint8_t)n;
}

static void id_make(uint8_t id[20], unsigned n)
{
  memset(id, 0, 20);
  memcpy(id, "-SH0001-", 8);
  id[16] = (uint8_t)(n >> 24);
  id[17] = (uint8_t)(n >> 16);
  id[18] = (uint8_t)(n >> 8);
  id[19] = (uint8_t)n;
}

static struct sockaddr_storage addr4(uint32_t ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(ip);
  sin->sin_port = htons(port);
  return ss;
}

static struct sockaddr_storage addr6(const char *ip, uint16_t port)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  sin6->sin6_family = AF_INET6;
  ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
  sin6->sin6_port = htons(port);
  return ss;
}

/* Announce of torrent t by peer p at 10.0.x.y:port. */
static int ann(struct swarms *s, unsigned t, unsigned p, uint32_t ip, uint16_t port, uint64_t left,
               enum swarms_event ev, uint64_t now, struct swarms_stats *st)
{
  uint8_t ih[20], id[20];
  ih_make(ih, t);
  id_make(id, p);
  struct sockaddr_storage a = addr4(ip, port);
  struct swarms_announce an = { ih, id, (struct sockaddr *)&a, left, ev };
  return swarms_announce(s, &an, now, st);
}

static void expect_stats(struct swarms *s, unsigned t, uint32_t complete, uint32_t incomplete, uint64_t downloaded)
{
  uint8_t ih[20];
  struct swarms_stats st;
  ih_make(ih, t);
  int r = swarms_lookup(s, ih, &st);
  if (complete + incomplete == 0) {
    ck_assert_int_eq(r, SHOAL_ENOTFOUND);
  } else {
    ck_assert_int_eq(r, 0);
  }
  ck_assert_uint_eq(st.complete, complete);
  ck_assert_uint_eq(st.incomplete, incomplete);
  ck_assert_uint_eq(st.downloaded, downloaded);
}

START_TEST(test_announce_counts)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct swarms_stats st;
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 100, SWARMS_EVENT_STARTED, 10, &st), 0);
  ck_assert_uint_eq(st.complete, 0);
  ck_assert_uint_eq(st.incomplete, 1);
  ck_assert_int_eq(ann(s, 1, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_STARTED, 10, &st), 0);
  ck_assert_uint_eq(st.complete, 1);
  ck_assert_uint_eq(st.incomplete, 1);
  /* Re-announcing does not add a peer. */
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 50, SWARMS_EVENT_NONE, 20, &st), 0);
  ck_assert_uint_eq(st.incomplete, 1);
  ck_assert_uint_eq(swarms_peer_count(s), 2);
  /* The same peer id from another IP is another peer. */
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000009, 6881, 50, SWARMS_EVENT_NONE, 20, &st), 0);
  ck_assert_uint_eq(st.incomplete, 2);
  /* Another torrent is another swarm. */
  ck_assert_int_eq(ann(s, 2, 1, 0x0a000001, 6881, 0, SWARMS_EVENT_NONE, 20, &st), 0);
  ck_assert_uint_eq(st.complete, 1);
  ck_assert_uint_eq(st.incomplete, 0);
  ck_assert_uint_eq(swarms_count(s), 2);
  ck_assert_uint_eq(swarms_peer_count(s), 4);
  expect_stats(s, 1, 1, 2, 0);
  expect_stats(s, 2, 1, 0, 0);
  expect_stats(s, 3, 0, 0, 0);
  /* A leecher turning seed (and back) moves between the counts. */
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 0, SWARMS_EVENT_NONE, 30, &st), 0);
  expect_stats(s, 1, 2, 1, 0);
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 5, SWARMS_EVENT_NONE, 30, &st), 0);
  expect_stats(s, 1, 1, 2, 0);
  swarms_free(s);
}
END_TEST

START_TEST(test_stopped_removes)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct swarms_stats st;
  ann(s, 1, 1, 0x0a000001, 6881, 100, SWARMS_EVENT_STARTED, 10, &st);
  ann(s, 1, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_STARTED, 10, &st);
  /* A stop from the right id but another IP changes nothing. */
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000003, 6881, 100, SWARMS_EVENT_STOPPED, 11, &st), 0);
  expect_stats(s, 1, 1, 1, 0);
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 100, SWARMS_EVENT_STOPPED, 11, &st), 0);
  ck_assert_uint_eq(st.complete, 1);
  ck_assert_uint_eq(st.incomplete, 0);
  expect_stats(s, 1, 1, 0, 0);
  /* Stopping twice is harmless. */
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 100, SWARMS_EVENT_STOPPED, 11, &st), 0);
  expect_stats(s, 1, 1, 0, 0);
  /* The last peer leaving removes the swarm. */
  ck_assert_int_eq(ann(s, 1, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_STOPPED, 12, &st), 0);
  ck_assert_uint_eq(st.complete, 0);
  ck_assert_uint_eq(swarms_count(s), 0);
  ck_assert_uint_eq(swarms_peer_count(s), 0);
  expect_stats(s, 1, 0, 0, 0);
  /* A stop for an unknown torrent creates nothing. */
  ck_assert_int_eq(ann(s, 7, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_STOPPED, 12, &st), 0);
  ck_assert_uint_eq(swarms_count(s), 0);
  swarms_free(s);
}
END_TEST

START_TEST(test_completed_counts)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct swarms_stats st;
  ann(s, 1, 1, 0x0a000001, 6881, 100, SWARMS_EVENT_STARTED, 10, &st);
  ck_assert_uint_eq(st.downloaded, 0);
  ck_assert_int_eq(ann(s, 1, 1, 0x0a000001, 6881, 0, SWARMS_EVENT_COMPLETED, 20, &st), 0);
  ck_assert_uint_eq(st.downloaded, 1);
  ck_assert_uint_eq(st.complete, 1);
  ck_assert_uint_eq(st.incomplete, 0);
  /* Once per peer. */
  ann(s, 1, 1, 0x0a000001, 6881, 0, SWARMS_EVENT_COMPLETED, 21, &st);
  ck_assert_uint_eq(st.downloaded, 1);
  /* A peer first seen with `completed` counts too. */
  ann(s, 1, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_COMPLETED, 22, &st);
  ck_assert_uint_eq(st.downloaded, 2);
  ck_assert_uint_eq(st.complete, 2);
  /* Regular announces and stops do not count. */
  ann(s, 1, 3, 0x0a000003, 6881, 0, SWARMS_EVENT_NONE, 22, &st);
  ann(s, 1, 3, 0x0a000003, 6881, 0, SWARMS_EVENT_STOPPED, 22, &st);
  expect_stats(s, 1, 2, 0, 2);
  swarms_free(s);
}
END_TEST

static bool contains_id(const struct swarms_peer *p, size_t n, unsigned id)
{
  uint8_t want[20];
  id_make(want, id);
  for (size_t i = 0; i < n; i++)
    if (memcmp(p[i].id, want, 20) == 0)
      return true;
  return false;
}

START_TEST(test_select_small)
{
  struct swarms *s = swarms_new(NULL, test_key);
  struct swarms_peer out[16];
  uint8_t ih[20], me[20];
  ih_make(ih, 1);
  id_make(me, 1);
  struct sockaddr_storage self = addr4(0x0a000001, 6881);
  /* Unknown torrent. */
  ck_assert_uint_eq(swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, 16), 0);
  ann(s, 1, 1, 0x0a000001, 6881, 100, SWARMS_EVENT_STARTED, 10, NULL);
  /* Alone in the swarm: nobody to hand out. */
  ck_assert_uint_eq(swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, 16), 0);
  ann(s, 1, 2, 0x0a000002, 7000, 0, SWARMS_EVENT_STARTED, 10, NULL);
  ann(s, 1, 3, 0x0a000003, 7001, 5, SWARMS_EVENT_STARTED, 10, NULL);
  /* Same IP and port as the requester under another id (a restarted client): excluded. */
  ann(s, 1, 4, 0x0a000001, 6881, 5, SWARMS_EVENT_STARTED, 10, NULL);
  /* Same IP, other port, other id (another client behind the same NAT): included. */
  ann(s, 1, 5, 0x0a000001, 6882, 5, SWARMS_EVENT_STARTED, 10, NULL);
  size_t n = swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, 16);
  ck_assert_uint_eq(n, 3);
  ck_assert(!contains_id(out, n, 1));
  ck_assert(!contains_id(out, n, 4));
  ck_assert(contains_id(out, n, 2));
  ck_assert(contains_id(out, n, 3));
  ck_assert(contains_id(out, n, 5));
  for (size_t i = 0; i < n; i++) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&out[i].addr;
    ck_assert_int_eq(sin->sin_family, AF_INET);
    if (out[i].id[19] == 2) {
      ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0x0a000002);
      ck_assert_uint_eq(ntohs(sin->sin_port), 7000);
      ck_assert(out[i].seed);
    } else {
      ck_assert(!out[i].seed);
    }
  }
  /* want honoured. */
  ck_assert_uint_eq(swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, 2), 2);
  ck_assert_uint_eq(swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, 0), 0);
  /* A seed gets only leechers. */
  n = swarms_select(s, ih, me, (struct sockaddr *)&self, true, out, 16);
  ck_assert_uint_eq(n, 2);
  ck_assert(!contains_id(out, n, 2));
  /* A peer's port change is what the others see next. */
  ann(s, 1, 2, 0x0a000002, 7777, 0, SWARMS_EVENT_NONE, 11, NULL);
  n = swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, 16);
  for (size_t i = 0; i < n; i++)
    if (out[i].id[19] == 2)
      ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&out[i].addr)->sin_port), 7777);
  swarms_free(s);
}
END_TEST

START_TEST(test_select_random)
{
  struct swarms *s = swarms_new(NULL, test_key);
  enum { PEERS = 100, WANT = 10, ROUNDS = 2000 };
  for (unsigned p = 0; p < PEERS; p++)
    ann(s, 1, p, 0x0a000000 + p, 6881, 1, SWARMS_EVENT_NONE, 10, NULL);
  uint8_t ih[20], me[20];
  ih_make(ih, 1);
  id_make(me, 0);
  struct sockaddr_storage self = addr4(0x0a000000, 6881);
  unsigned hits[PEERS] = { 0 };
  struct swarms_peer out[WANT];
  for (int r = 0; r < ROUNDS; r++) {
    size_t n = swarms_select(s, ih, me, (struct sockaddr *)&self, false, out, WANT);
    ck_assert_uint_eq(n, WANT);
    bool seen[PEERS] = { false };
    for (size_t i = 0; i < n; i++) {
      unsigned p = out[i].id[19];
      ck_assert_uint_lt(p, PEERS);
      ck_assert_msg(!seen[p], "peer %u twice in one answer", p);
      seen[p] = true;
      hits[p]++;
    }
  }
  /* Never self; everyone else about ROUNDS*WANT/99 = 202 times. */
  ck_assert_uint_eq(hits[0], 0);
  for (unsigned p = 1; p < PEERS; p++)
    ck_assert_msg(hits[p] > 120 && hits[p] < 300, "peer %u picked %u times", p, hits[p]);
  swarms_free(s);
}
END_TEST

START_TEST(test_ipv6)
{
  struct swarms *s = swarms_new(NULL, test_key);
  uint8_t ih[20], id1[20], id2[20], id3[20];
  ih_make(ih, 1);
  id_make(id1, 1);
  id_make(id2, 2);
  id_make(id3, 3);
  struct sockaddr_storage a1 = addr6("2001:db8::1", 6881);
  struct sockaddr_storage a2 = addr4(0x7f000001, 6882);
  struct sockaddr_storage a3 = addr6("::ffff:10.1.2.3", 6883); /* v4-mapped: stored as IPv4 */
  struct swarms_announce an1 = { ih, id1, (struct sockaddr *)&a1, 1, SWARMS_EVENT_STARTED };
  struct swarms_announce an2 = { ih, id2, (struct sockaddr *)&a2, 1, SWARMS_EVENT_STARTED };
  struct swarms_announce an3 = { ih, id3, (struct sockaddr *)&a3, 1, SWARMS_EVENT_STARTED };
  ck_assert_int_eq(swarms_announce(s, &an1, 1, NULL), 0);
  ck_assert_int_eq(swarms_announce(s, &an2, 1, NULL), 0);
  ck_assert_int_eq(swarms_announce(s, &an3, 1, NULL), 0);
  struct swarms_peer out[4];
  size_t n = swarms_select(s, ih, id2, (struct sockaddr *)&a2, false, out, 4);
  ck_assert_uint_eq(n, 2);
  for (size_t i = 0; i < n; i++) {
    if (out[i].id[19] == 1) {
      const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&out[i].addr;
      ck_assert_int_eq(sin6->sin6_family, AF_INET6);
      ck_assert_int_eq(sin6->sin6_addr.s6_addr[0], 0x20);
      ck_assert_int_eq(sin6->sin6_addr.s6_addr[15], 1);
      ck_assert_uint_eq(ntohs(sin6->sin6_port), 6881);
    } else {
      ck_assert_int_eq(out[i].id[19], 3);
      const struct sockaddr_in *sin = (const struct sockaddr_in *)&out[i].addr;
      ck_assert_int_eq(sin->sin_family, AF_INET);
      ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0x0a010203);
    }
  }
  /* The v6 peer is not handed itself. */
  n = swarms_select(s, ih, id1, (struct sockaddr *)&a1, false, out, 4);
  ck_assert_uint_eq(n, 2);
  ck_assert(!contains_id(out, n, 1));
  /* Neither IPv4 nor IPv6. */
  struct sockaddr_storage bad;
  memset(&bad, 0, sizeof bad);
  bad.ss_family = AF_UNIX;
  struct swarms_announce anb = { ih, id1, (struct sockaddr *)&bad, 1, SWARMS_EVENT_STARTED };
  ck_assert_int_eq(swarms_announce(s, &anb, 1, NULL), UV_EINVAL);
  ck_assert_uint_eq(swarms_peer_count(s), 3);
  swarms_free(s);
}
END_TEST

START_TEST(test_select_family)
{
  struct swarms *s = swarms_new(NULL, test_key);
  uint8_t ih[20], me[20], id[20];
  ih_make(ih, 1);
  id_make(me, 999);
  char ip[64];
  for (unsigned i = 0; i < 10; i++) {
    ck_assert_int_eq(ann(s, 1, i, 0x0a000001 + i, 6881, 1, SWARMS_EVENT_STARTED, 1, NULL), 0);
    snprintf(ip, sizeof ip, "2001:db8::%x", i + 1);
    struct sockaddr_storage a6 = addr6(ip, 6881);
    id_make(id, 100 + i);
    struct swarms_announce an = { ih, id, (struct sockaddr *)&a6, i % 2, SWARMS_EVENT_STARTED };
    ck_assert_int_eq(swarms_announce(s, &an, 1, NULL), 0);
  }
  /* The requester is at the address and port of the first IPv6 peer. */
  struct sockaddr_storage self = addr6("2001:db8::1", 6881);
  struct swarms_peer out[32];
  size_t n = swarms_select_family(s, ih, me, (struct sockaddr *)&self, false, AF_INET6, out, 32);
  ck_assert_uint_eq(n, 9);   /* ten IPv6 peers but the one at the requester's address */
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(out[i].addr.ss_family, AF_INET6);
  n = swarms_select_family(s, ih, me, (struct sockaddr *)&self, false, AF_INET, out, 32);
  ck_assert_uint_eq(n, 10);
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(out[i].addr.ss_family, AF_INET);
  n = swarms_select_family(s, ih, me, (struct sockaddr *)&self, false, AF_INET, out, 3);
  ck_assert_uint_eq(n, 3);
  n = swarms_select_family(s, ih, me, (struct sockaddr *)&self, true, AF_INET6, out, 32);
  ck_assert_uint_eq(n, 5);   /* a seed gets only the IPv6 leechers (odd i) */
  n = swarms_select_family(s, ih, me, (struct sockaddr *)&self, false, 0, out, 32);
  ck_assert_uint_eq(n, 19);
  swarms_free(s);
}
END_TEST

START_TEST(test_expiry)
{
  struct swarms *s = swarms_new(NULL, test_key);
  ann(s, 1, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_STARTED, 100, NULL);
  ann(s, 1, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_STARTED, 150, NULL);
  ann(s, 2, 3, 0x0a000003, 6881, 0, SWARMS_EVENT_STARTED, 100, NULL);
  /* Exactly max_age old is still alive. */
  ck_assert_uint_eq(swarms_sweep(s, 200, 100), 0);
  ck_assert_uint_eq(swarms_peer_count(s), 3);
  ck_assert_uint_eq(swarms_sweep(s, 201, 100), 2);
  ck_assert_uint_eq(swarms_peer_count(s), 1);
  ck_assert_uint_eq(swarms_count(s), 1);
  expect_stats(s, 1, 1, 0, 0);
  expect_stats(s, 2, 0, 0, 0);
  /* A re-announce refreshes. */
  ann(s, 1, 2, 0x0a000002, 6881, 0, SWARMS_EVENT_NONE, 240, NULL);
  ck_assert_uint_eq(swarms_sweep(s, 300, 100), 0);
  ck_assert_uint_eq(swarms_sweep(s, 341, 100), 1);
  ck_assert_uint_eq(swarms_count(s), 0);
  /* A clock that went backwards expires nothing. */
  ann(s, 1, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_STARTED, 1000, NULL);
  ck_assert_uint_eq(swarms_sweep(s, 10, 5), 0);
  ck_assert_uint_eq(swarms_peer_count(s), 1);
  swarms_free(s);
}
END_TEST

START_TEST(test_caps)
{
  struct swarms_limits lim = { .max_swarms = 3, .max_peers_per_swarm = 4, .max_peers = 6 };
  struct swarms *s = swarms_new(&lim, test_key);
  struct swarms_stats st;
  for (unsigned p = 0; p < 4; p++)
    ck_assert_int_eq(ann(s, 1, p, 0x0a000000 + p, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), 0);
  /* Swarm full: answered, not stored; a known peer still updates. */
  ck_assert_int_eq(ann(s, 1, 9, 0x0a000009, 6881, 1, SWARMS_EVENT_NONE, 1, &st), SWARMS_NOT_STORED);
  ck_assert_uint_eq(st.incomplete, 4);
  ck_assert_int_eq(ann(s, 1, 0, 0x0a000000, 6881, 0, SWARMS_EVENT_COMPLETED, 2, &st), 0);
  ck_assert_uint_eq(st.complete, 1);
  ck_assert_uint_eq(st.downloaded, 1);
  /* Swarm table full. */
  ck_assert_int_eq(ann(s, 2, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), 0);
  ck_assert_int_eq(ann(s, 3, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), 0);
  ck_assert_int_eq(ann(s, 4, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_NONE, 1, &st), SWARMS_NOT_STORED);
  ck_assert_uint_eq(st.complete + st.incomplete, 0);
  ck_assert_uint_eq(swarms_count(s), 3);
  /* All peers: 6 stored; a 7th anywhere is refused. */
  ck_assert_uint_eq(swarms_peer_count(s), 6);
  ck_assert_int_eq(ann(s, 2, 2, 0x0a000002, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), SWARMS_NOT_STORED);
  /* Room again after a stop. */
  ck_assert_int_eq(ann(s, 3, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_STOPPED, 1, NULL), 0);
  ck_assert_int_eq(ann(s, 4, 1, 0x0a000001, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), 0);
  ck_assert_uint_eq(swarms_count(s), 3);
  ck_assert_uint_eq(swarms_peer_count(s), 6);
  swarms_free(s);
}
END_TEST

START_TEST(test_at_iterates_all)
{
  struct swarms *s = swarms_new(NULL, test_key);
  enum { N = 300 };
  for (unsigned t = 0; t < N; t++)
    ann(s, t, 1, 0x0a000001, 6881, t % 2, SWARMS_EVENT_NONE, 1, NULL);
  ck_assert_uint_eq(swarms_count(s), N);
  bool seen[N] = { false };
  uint8_t ih[20];
  struct swarms_stats st;
  for (size_t i = 0; i < N; i++) {
    ck_assert_int_eq(swarms_at(s, i, ih, &st), 0);
    unsigned t = (unsigned)ih[18] << 8 | ih[19];
    ck_assert_uint_lt(t, N);
    ck_assert(!seen[t]);
    seen[t] = true;
    ck_assert_uint_eq(st.complete, t % 2 == 0);
  }
  ck_assert_int_eq(swarms_at(s, N, ih, &st), UV_EINVAL);
  swarms_free(s);
}
END_TEST

/* Random announces, stops and sweeps against a plain array model, enough to
 * exercise growth, shrinking and deletion in the hash indexes. */
struct model_peer { bool live; bool seed; uint16_t port; uint64_t seen; };

START_TEST(test_against_model)
{
  enum { T = 7, P = 400 };
  static struct model_peer m[T][P];
  memset(m, 0, sizeof m);
  struct swarms *s = swarms_new(NULL, test_key);
  uint64_t rng = 12345;
  uint64_t now = 1000;
  for (int step = 0; step < 60000; step++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    unsigned r = (unsigned)(rng >> 33);
    unsigned t = r % T, p = (r / T) % P, op = (r / (T * P)) % 16;
    /* Peer p lives at a fixed IP; ids collide across IPs only for p and p+P/2. */
    uint32_t ip = 0x0a000000 + (p % (P / 2)) * 2 + (p >= P / 2);
    unsigned id = p % (P / 2);
    if (op < 9) {
      uint16_t port = (uint16_t)(1000 + op);
      uint64_t left = op % 3 == 0 ? 0 : 1;
      ck_assert_int_eq(ann(s, t, id, ip, port, left, SWARMS_EVENT_NONE, now, NULL), 0);
      m[t][p] = (struct model_peer){ true, left == 0, port, now };
    } else if (op < 14) {
      ck_assert_int_eq(ann(s, t, id, ip, 1, 1, SWARMS_EVENT_STOPPED, now, NULL), 0);
      m[t][p].live = false;
    } else if (op == 14) {
      now += 1;
    } else if (step % 50 == 0) {
      size_t want_removed = 0;
      for (unsigned a = 0; a < T; a++)
        for (unsigned b = 0; b < P; b++)
          if (m[a][b].live && now - m[a][b].seen > 3) {
            m[a][b].live = false;
            want_removed++;
          }
      ck_assert_uint_eq(swarms_sweep(s, now, 3), want_removed);
    }
    if (step % 997 == 0 || step == 59999) {
      size_t total = 0;
      for (unsigned a = 0; a < T; a++) {
        uint32_t seeds = 0, leech = 0;
        for (unsigned b = 0; b < P; b++)
          if (m[a][b].live)
            *(m[a][b].seed ? &seeds : &leech) += 1;
        expect_stats(s, a, seeds, leech, 0);
        total += seeds + leech;
      }
      ck_assert_uint_eq(swarms_peer_count(s), total);
    }
  }
  /* Every live peer is selectable with its latest port. */
  for (unsigned a = 0; a < T; a++) {
    static struct swarms_peer out[P];
    uint8_t ih[20], nobody[20];
    ih_make(ih, a);
    memset(nobody, 0xee, 20);
    struct sockaddr_storage self = addr4(0x01010101, 1);
    size_t n = swarms_select(s, ih, nobody, (struct sockaddr *)&self, false, out, P);
    size_t live = 0;
    for (unsigned b = 0; b < P; b++)
      live += m[a][b].live;
    ck_assert_uint_eq(n, live);
    for (size_t i = 0; i < n; i++) {
      const struct sockaddr_in *sin = (const struct sockaddr_in *)&out[i].addr;
      uint32_t ip = ntohl(sin->sin_addr.s_addr) - 0x0a000000;
      unsigned b = ip / 2 + (ip % 2) * (P / 2);
      ck_assert(m[a][b].live);
      ck_assert_uint_eq(ntohs(sin->sin_port), m[a][b].port);
      ck_assert_int_eq(out[i].seed, m[a][b].seed);
    }
  }
  swarms_free(s);
}
END_TEST

START_TEST(test_many_swarms_and_peers)
{
  struct swarms *s = swarms_new(NULL, test_key);
  for (unsigned t = 0; t < 5000; t++)
    ck_assert_int_eq(ann(s, t, t, 0x0a000000 + t, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), 0);
  for (unsigned p = 0; p < 10000; p++)
    ck_assert_int_eq(ann(s, 99999, p, 0x0b000000 + p, 6881, p % 2, SWARMS_EVENT_NONE, 1, NULL), 0);
  /* The per-swarm default cap is 10000. */
  ck_assert_int_eq(ann(s, 99999, 10000, 0x0c000000, 6881, 1, SWARMS_EVENT_NONE, 1, NULL), SWARMS_NOT_STORED);
  expect_stats(s, 99999, 5000, 5000, 0);
  for (unsigned t = 0; t < 5000; t += 2)
    ann(s, t, t, 0x0a000000 + t, 6881, 1, SWARMS_EVENT_STOPPED, 2, NULL);
  ck_assert_uint_eq(swarms_count(s), 2501);
  for (unsigned t = 1; t < 5000; t += 2)
    expect_stats(s, t, 0, 1, 0);
  ck_assert_uint_eq(swarms_sweep(s, 100, 10), 12500);
  ck_assert_uint_eq(swarms_count(s), 0);
  swarms_free(s);
}
END_TEST

Suite *swarms_suite(void)
{
  Suite *s = suite_create("swarms");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_announce_counts);
  tcase_add_test(tc, test_stopped_removes);
  tcase_add_test(tc, test_completed_counts);
  tcase_add_test(tc, test_select_small);
  tcase_add_test(tc, test_select_random);
  tcase_add_test(tc, test_ipv6);
  tcase_add_test(tc, test_select_family);
  tcase_add_test(tc, test_expiry);
  tcase_add_test(tc, test_caps);
  tcase_add_test(tc, test_at_iterates_all);
  tcase_add_test(tc, test_against_model);
  tcase_add_test(tc, test_many_swarms_and_peers);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}
