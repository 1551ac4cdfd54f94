/* fuzz_udp_reply.c -- libFuzzer target: UDP tracker replies as the client parses them (BEP 15). */
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/err.h"
#include "peer/udp_tracker.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  /* first byte: which request the reply answers, and the tracker's family */
  uint32_t expect = data[0] % 3;                 /* connect, announce, scrape */
  int family = data[0] & 0x80 ? AF_INET6 : AF_INET;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  uint32_t tid = n >= 8 ? get_u32be(p + 4) : 0;  /* usually the right one */
  if (data[0] & 0x40)
    tid ^= 1;
  struct udp_tracker_reply r;
  char err[SHOAL_ERRLEN];
  int rc = udp_tracker_parse_reply(p, n, expect, tid, family, &r, err, sizeof err);
  if (rc == UDP_TRACKER_OTHER_TID || rc != 0) {
    FUZZ_CHECK(rc == UDP_TRACKER_OTHER_TID || rc == SHOAL_EPROTO);
    return 0;
  }
  FUZZ_CHECK(r.tid == tid);
  FUZZ_CHECK(r.action == expect || r.action == 3);
  if (r.action == 3) {
    FUZZ_CHECK(r.message_len == 0 || (r.message >= p && r.message + r.message_len <= p + n));
    return 0;
  }
  if (expect == 1) {
    FUZZ_CHECK(r.entry_len == (family == AF_INET ? 6u : 18u));
    FUZZ_CHECK(r.npeers == 0 || (r.peers >= p && r.peers + r.npeers * r.entry_len <= p + n));
  }
  if (expect == 2) {
    FUZZ_CHECK(r.nscrape == 0 || (r.scrape >= p && r.scrape + r.nscrape * 12 <= p + n));
    for (size_t i = 0; i < r.nscrape; i++) {
      uint32_t s, c, l;
      udp_tracker_scrape_entry(&r, i, &s, &c, &l);
    }
  }
  return 0;
}
