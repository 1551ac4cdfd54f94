/* fuzz_announce_reply.c -- libFuzzer target: tracker replies as the client parses them (announce_parse_reply). */
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "common/bencode.h"
#include "common/err.h"
#include "peer/announce.h"
#include "tests/fuzz/fuzzutil.h"

/* Text kept for people: NUL-terminated within its array, valid UTF-8, no control bytes. */
static void check_text(const char *s, size_t cap)
{
  const uint8_t *p = (const uint8_t *)s;
  const uint8_t *nul = memchr(p, '\0', cap);
  FUZZ_CHECK(nul != NULL);
  size_t n = (size_t)(nul - p);
  size_t i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      FUZZ_CHECK(c >= 0x20 && c != 0x7f);
      i++;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0)
      len = 2, cp = c & 0x1fu, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
      len = 3, cp = c & 0x0fu, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
      len = 4, cp = c & 0x07u, min = 0x10000;
    else
      len = 0, cp = 0, min = 0;
    FUZZ_CHECK(len != 0 && n - i >= len);
    for (size_t k = 1; k < len; k++) {
      FUZZ_CHECK((p[i + k] & 0xc0) == 0x80);
      cp = cp << 6 | (p[i + k] & 0x3fu);
    }
    FUZZ_CHECK(cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff));
    i += len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct announce_reply r;
  char err[SHOAL_ERRLEN];
  memset(err, 'x', sizeof err);
  int rc = announce_parse_reply(data, size, &r, err, sizeof err);
  if (rc != 0) {
    FUZZ_CHECK(rc == SHOAL_ETOOBIG || rc == SHOAL_EBENCODE || rc == SHOAL_EPROTO);
    FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    return 0;
  }
  check_text(r.failure, sizeof r.failure);
  check_text(r.warning, sizeof r.warning);
  if (!r.failed)
    FUZZ_CHECK(r.failure[0] == '\0');
  FUZZ_CHECK(r.interval >= -1 && r.min_interval >= -1);
  FUZZ_CHECK(r.complete >= -1 && r.incomplete >= -1);
  FUZZ_CHECK(r.tracker_id_len <= ANNOUNCE_MAX_TRACKERID);
  FUZZ_CHECK(r.npeers <= ANNOUNCE_MAX_PEERS);
  FUZZ_CHECK((r.peers == NULL) == (r.npeers == 0));
  if (r.failed)
    FUZZ_CHECK(r.npeers == 0);

  /* Peers: IPv4 or IPv6, never port 0. */
  for (size_t i = 0; i < r.npeers; i++) {
    const struct sockaddr_storage *ss = &r.peers[i];
    if (ss->ss_family == AF_INET) {
      FUZZ_CHECK(((const struct sockaddr_in *)ss)->sin_port != 0);
    } else {
      FUZZ_CHECK(ss->ss_family == AF_INET6);
      FUZZ_CHECK(((const struct sockaddr_in6 *)ss)->sin6_port != 0);
    }
  }

  /* A reply the client accepts is a bencoded dict, and the fields it kept
   * are the dict's own. */
  struct bencode_doc d;
  FUZZ_CHECK(bencode_decode(&d, data, size, NULL, err, sizeof err) == 0);
  FUZZ_CHECK(d.tok[0].type == BENCODE_DICT);
  int64_t v;
  if (r.interval >= 0)
    FUZZ_CHECK(bencode_get_int(&d, bencode_dict_get(&d, 0, "interval"), &v) == 0 && v == r.interval);
  else
    FUZZ_CHECK(bencode_dict_get(&d, 0, "interval") < 0);
  if (r.complete >= 0)
    FUZZ_CHECK(bencode_get_int(&d, bencode_dict_get(&d, 0, "complete"), &v) == 0 && v == r.complete);
  if (r.tracker_id_len > 0) {
    const uint8_t *p;
    size_t n;
    FUZZ_CHECK(bencode_get_str(&d, bencode_dict_get(&d, 0, "tracker id"), &p, &n) == 0);
    FUZZ_CHECK(n == r.tracker_id_len && memcmp(p, r.tracker_id, n) == 0);
  }
  /* Compact IPv4 peers come out in order, port 0 skipped. */
  int p4 = bencode_dict_get(&d, 0, "peers");
  if (!r.failed && p4 >= 0 && d.tok[p4].type == BENCODE_STR) {
    const uint8_t *p = data + d.tok[p4].str_off;
    size_t k = 0;
    for (size_t off = 0; off < d.tok[p4].str_len && k < r.npeers; off += 6) {
      uint16_t port = get_u16be(p + off + 4);
      if (port == 0)
        continue;
      const struct sockaddr_in *sin = (const struct sockaddr_in *)&r.peers[k++];
      FUZZ_CHECK(sin->sin_family == AF_INET && memcmp(&sin->sin_addr, p + off, 4) == 0 &&
                 ntohs(sin->sin_port) == port);
    }
  }
  bencode_free(&d);
  announce_reply_free(&r);
  return 0;
}
