/* fuzz_tracker_request.c -- libFuzzer target: the tracker's request handling (route, announce, scrape) over a fresh, small swarms table. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/bencode.h"
#include "common/compact.h"
#include "common/err.h"
#include "peer/announce.h"
#include "tests/fuzz/fuzzutil.h"
#include "tracker/http.h"
#include "tracker/swarms.h"

/* Input: up to MAX_REQS requests separated by '\n', each against the same
 * table (a fresh one per input, with small caps so they are reached).  A
 * request is one op byte, then its text:
 *   bits 0-2  the connection's address (addrs[] below)
 *   bits 3-4  0, 1: trackerhttp_route(text as the request target)
 *             2: trackerhttp_announce(text as the query)
 *             3: trackerhttp_scrape(text as the query)
 *   bit 5     swarms_sweep(now, 30) first
 *   bits 6-7  how far the clock moves first: 0, 1, 60 or 1000 seconds */
#define MAX_REQS 64
static const struct swarms_limits small = { .max_swarms = 8, .max_peers_per_swarm = 16, .max_peers = 64 };
static const uint8_t key[SWARMS_KEY_LEN] = "fuzz-swarms-key";
static const uint64_t steps[4] = { 0, 1, 60, 1000 };

static struct sockaddr_storage addrs[8];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  static const char *const v4[] = { "127.0.0.1", "10.0.0.2", "192.0.2.7" };
  static const char *const v6[] = { "::1", "2001:db8::7", "::ffff:10.0.0.2", "fe80::1" };
  memset(addrs, 0, sizeof addrs);
  for (int i = 0; i < 3; i++) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&addrs[i];
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)(40000 + i));
    FUZZ_CHECK(inet_pton(AF_INET, v4[i], &sin->sin_addr) == 1);
  }
  for (int i = 0; i < 4; i++) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addrs[3 + i];
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)(50000 + i));
    FUZZ_CHECK(inet_pton(AF_INET6, v6[i], &sin6->sin6_addr) == 1);
  }
  ((struct sockaddr_un *)&addrs[7])->sun_family = AF_UNIX;   /* unsupported */
  return 0;
}

/* The peer as the tracker records it: the connection's IP (v4-mapped made
 * IPv4) with the announced port. */
static void self_addr(const struct sockaddr_storage *remote, uint16_t port, struct sockaddr_storage *out)
{
  memset(out, 0, sizeof *out);
  if (remote->ss_family == AF_INET) {
    *out = *remote;
    ((struct sockaddr_in *)out)->sin_port = htons(port);
  } else if (remote->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)remote;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      struct sockaddr_in *sin = (struct sockaddr_in *)out;
      sin->sin_family = AF_INET;
      memcpy(&sin->sin_addr, in6->sin6_addr.s6_addr + 12, 4);
      sin->sin_port = htons(port);
    } else {
      *out = *remote;
      ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
    }
  }
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* Every answer is canonical bencode: a dict with sorted, unique keys. */
static void decode_answer(const struct buf *body, struct bencode_doc *d)
{
  static const struct bencode_limits lim = {
    .max_tokens = 1u << 20, .max_depth = 8, .allow_trailing = false, .require_sorted = true,
  };
  char err[SHOAL_ERRLEN];
  int r = bencode_decode(d, body->p ? body->p : (const uint8_t *)"", body->len, &lim, err, sizeof err);
  if (r)
    fprintf(stderr, "answer is not canonical bencode: %s\n", err);
  FUZZ_CHECK(r == 0);
  FUZZ_CHECK(d->tok[0].type == BENCODE_DICT);
}

static bool is_failure(const struct bencode_doc *d)
{
  if (bencode_dict_get_type(d, 0, "failure reason", BENCODE_STR) < 0)
    return false;
  FUZZ_CHECK(d->tok[0].count == 1);
  return true;
}

static void check_uint_key(const struct bencode_doc *d, int dict, const char *k, int64_t max)
{
  int64_t v;
  FUZZ_CHECK(bencode_get_int(d, bencode_dict_get(d, dict, k), &v) == 0);
  FUZZ_CHECK(v >= 0 && v <= max);
}

/* An announce answer, knowing the query. */
static void check_announce(const struct buf *body, const char *q, size_t qlen,
                           const struct sockaddr_storage *remote)
{
  struct bencode_doc d;
  decode_answer(body, &d);
  struct trackerhttp_announce_req req;
  char why[TRACKERHTTP_WHY_LEN];
  bool valid = trackerhttp_parse_announce(q, qlen, &req, why) == 0;
  if (!valid || remote->ss_family == AF_UNIX) {
    FUZZ_CHECK(is_failure(&d));
    bencode_free(&d);
    return;
  }
  FUZZ_CHECK(!is_failure(&d));
  check_uint_key(&d, 0, "complete", small.max_peers_per_swarm);
  check_uint_key(&d, 0, "incomplete", small.max_peers_per_swarm);
  check_uint_key(&d, 0, "interval", UINT32_MAX);
  check_uint_key(&d, 0, "min interval", UINT32_MAX);

  struct sockaddr_storage self;
  self_addr(remote, req.port, &self);
  size_t npeers = 0;
  int p = bencode_dict_get(&d, 0, "peers");
  FUZZ_CHECK(p > 0);
  if (req.compact) {
    const uint8_t *s;
    size_t n;
    FUZZ_CHECK(bencode_get_str(&d, p, &s, &n) == 0 && n % COMPACT_V4_LEN == 0);
    struct sockaddr_storage got[TRACKERHTTP_NUMWANT_MAX];
    FUZZ_CHECK(n / COMPACT_V4_LEN <= TRACKERHTTP_NUMWANT_MAX);
    int k = compact_parse(AF_INET, s, n, got, TRACKERHTTP_NUMWANT_MAX);
    FUZZ_CHECK(k >= 0 && (size_t)k == n / COMPACT_V4_LEN);   /* ports are never 0 */
    for (int i = 0; i < k; i++)
      FUZZ_CHECK(!same_endpoint(&got[i], &self));            /* never the requester */
    npeers += (size_t)k;
    int p6 = bencode_dict_get(&d, 0, "peers6");
    if (p6 >= 0) {
      FUZZ_CHECK(bencode_get_str(&d, p6, &s, &n) == 0 && n > 0 && n % COMPACT_V6_LEN == 0);
      FUZZ_CHECK(n / COMPACT_V6_LEN <= TRACKERHTTP_NUMWANT_MAX);
      k = compact_parse(AF_INET6, s, n, got, TRACKERHTTP_NUMWANT_MAX);
      FUZZ_CHECK(k >= 0 && (size_t)k == n / COMPACT_V6_LEN);
      for (int i = 0; i < k; i++)
        FUZZ_CHECK(!same_endpoint(&got[i], &self));
      npeers += (size_t)k;
    }
  } else {
    FUZZ_CHECK(d.tok[p].type == BENCODE_LIST);
    for (int e = bencode_first(&d, p); e >= 0; e = bencode_next(&d, p, e)) {
      FUZZ_CHECK(d.tok[e].type == BENCODE_DICT);
      const uint8_t *ip, *id;
      size_t iplen, idlen;
      FUZZ_CHECK(bencode_get_str(&d, bencode_dict_get(&d, e, "ip"), &ip, &iplen) == 0);
      check_uint_key(&d, e, "port", 65535);
      int idx = bencode_dict_get(&d, e, "peer id");
      if (req.no_peer_id) {
        FUZZ_CHECK(idx < 0);
      } else {
        FUZZ_CHECK(bencode_get_str(&d, idx, &id, &idlen) == 0 && idlen == SWARMS_ID_LEN);
      }
      npeers++;
    }
  }
  FUZZ_CHECK(npeers <= req.numwant);
  if (req.event == SWARMS_EVENT_STOPPED)
    FUZZ_CHECK(npeers == 0);
  bencode_free(&d);

  /* The client's parser takes every answer the tracker gives. */
  struct announce_reply rep;
  char err[SHOAL_ERRLEN];
  int r = announce_parse_reply(body->p, body->len, &rep, err, sizeof err);
  if (r)
    fprintf(stderr, "client refuses the answer: %s\n", err);
  FUZZ_CHECK(r == 0 && !rep.failed);
  FUZZ_CHECK(rep.npeers == (npeers < ANNOUNCE_MAX_PEERS ? npeers : ANNOUNCE_MAX_PEERS));
  announce_reply_free(&rep);
}

static void check_scrape(const struct buf *body, const struct swarms *s)
{
  struct bencode_doc d;
  decode_answer(body, &d);
  if (!is_failure(&d)) {
    FUZZ_CHECK(d.tok[0].count == 1);
    int files = bencode_dict_get_type(&d, 0, "files", BENCODE_DICT);
    FUZZ_CHECK(files > 0);
    for (int k = bencode_first(&d, files); k >= 0; k = bencode_next(&d, files, k + 1)) {
      const uint8_t *h;
      size_t hl;
      FUZZ_CHECK(bencode_get_str(&d, k, &h, &hl) == 0 && hl == SWARMS_ID_LEN);
      FUZZ_CHECK(d.tok[k + 1].type == BENCODE_DICT && d.tok[k + 1].count == 3);
      check_uint_key(&d, k + 1, "complete", small.max_peers_per_swarm);
      check_uint_key(&d, k + 1, "incomplete", small.max_peers_per_swarm);
      check_uint_key(&d, k + 1, "downloaded", INT64_MAX);
      struct swarms_stats st;
      int64_t c;
      swarms_lookup(s, h, &st);
      bencode_get_int(&d, bencode_dict_get(&d, k + 1, "complete"), &c);
      FUZZ_CHECK((uint64_t)c == st.complete);
    }
  }
  bencode_free(&d);
}

/* The table stays within its caps and its counts agree. */
static void check_table(const struct swarms *s)
{
  size_t n = swarms_count(s), peers = 0;
  FUZZ_CHECK(n <= small.max_swarms && swarms_peer_count(s) <= small.max_peers);
  for (size_t i = 0; i < n; i++) {
    uint8_t h[SWARMS_ID_LEN];
    struct swarms_stats st, st2;
    FUZZ_CHECK(swarms_at(s, i, h, &st) == 0);
    FUZZ_CHECK(st.complete + st.incomplete >= 1 && st.complete + st.incomplete <= small.max_peers_per_swarm);
    FUZZ_CHECK(swarms_lookup(s, h, &st2) == 0 && st2.complete == st.complete &&
               st2.incomplete == st.incomplete && st2.downloaded == st.downloaded);
    peers += st.complete + st.incomplete;
  }
  FUZZ_CHECK(peers == swarms_peer_count(s));
  FUZZ_CHECK(swarms_at(s, n, NULL, NULL) == UV_EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct swarms *s = swarms_new(&small, key);
  FUZZ_CHECK(s != NULL);
  struct trackerhttp_config cfg;
  trackerhttp_config_default(&cfg);
  uint64_t now = 1000;
  size_t off = 0;
  for (int req = 0; req < MAX_REQS && off < size; req++) {
    const uint8_t *end = memchr(data + off, '\n', size - off);
    size_t len = end ? (size_t)(end - (data + off)) : size - off;
    const uint8_t *rec = data + off;
    off += len + 1;
    if (len == 0)
      continue;
    uint8_t op = rec[0];
    const struct sockaddr_storage *remote = &addrs[op & 7];
    /* The text in a buffer of its own exact size. */
    size_t tlen = len - 1;
    char *text = malloc(tlen ? tlen : 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, rec + 1, tlen);
    now += steps[op >> 6];
    if (op & 0x20)
      swarms_sweep(s, now, 30);

    struct buf body;
    buf_init(&body, TRACKERHTTP_BODY_MAX);
    switch ((op >> 3) & 3) {
    case 0:
    case 1: {
      int status = trackerhttp_route(s, &cfg, text, tlen, (const struct sockaddr *)remote, now, &body);
      FUZZ_CHECK(status == 200 || status == 400 || status == 404 || status == 500);
      FUZZ_CHECK(body.len > 0);
      if (status == 200) {
        struct bencode_doc d;
        decode_answer(&body, &d);
        bencode_free(&d);
      }
      break;
    }
    case 2:
      FUZZ_CHECK(trackerhttp_announce(s, &cfg, text, tlen, (const struct sockaddr *)remote, now, &body) == 0);
      check_announce(&body, text, tlen, remote);
      break;
    case 3:
      FUZZ_CHECK(trackerhttp_scrape(s, text, tlen, &body) == 0);
      check_scrape(&body, s);
      break;
    }
    buf_free(&body);
    free(text);
    check_table(s);
  }
  swarms_free(s);
  return 0;
}
