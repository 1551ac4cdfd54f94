/* fuzz_udp_request.c -- libFuzzer target: UDP tracker requests as shoal-tracker handles them (BEP 15).
 * A valid connection id is planted in most inputs so announces and scrapes get past it. */
#include <netinet/in.h>
#include <string.h>

#include "common/buf.h"
#include "tracker/swarms.h"
#include "tracker/udp.h"
#include "tests/fuzz/fuzzutil.h"

static struct swarms *sw;
static struct trackerudp_secrets sec;
static uint64_t clock_s;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  static const uint8_t key[SWARMS_KEY_LEN] = { 1, 2, 3 };
  static const uint8_t secret[TRACKERUDP_SECRET_LEN] = { 9, 8, 7 };
  struct swarms_limits lim = { .max_swarms = 64, .max_peers_per_swarm = 64, .max_peers = 1024 };
  sw = swarms_new(&lim, key);
  trackerudp_secrets_init(&sec, secret, 0);
  return sw ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1 || size > TRACKERUDP_PACKET_MAX + 64)
    return 0;
  struct sockaddr_storage from;
  memset(&from, 0, sizeof from);
  if (data[0] & 1) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&from;
    a->sin6_family = AF_INET6;
    a->sin6_addr.s6_addr[15] = 1;
    a->sin6_port = htons((uint16_t)(1000 + data[0]));
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&from;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(0x7f000001u + (data[0] >> 4));
    a->sin_port = htons((uint16_t)(1000 + data[0]));
  }
  uint8_t *pkt = malloc(size);
  if (pkt == NULL)
    return 0;
  memcpy(pkt, data + 1, size - 1);
  size_t n = size - 1;
  if ((data[0] & 6) != 0 && n >= 8)                /* most inputs carry this client's id */
    put_u64be(pkt, trackerudp_conn_id(&sec, (struct sockaddr *)&from));
  struct trackerudp_config cfg;
  trackerudp_config_default(&cfg);
  struct buf out;
  buf_init(&out, 2048);
  int rc = trackerudp_handle(sw, &cfg, &sec, pkt, n, (struct sockaddr *)&from, clock_s++, &out);
  FUZZ_CHECK(rc == 0);
  if (out.len) {
    FUZZ_CHECK(out.len >= 8 && n >= 16);
    FUZZ_CHECK(memcmp(out.p + 4, pkt + 12, 4) == 0);      /* the transaction id comes back */
    uint32_t action = get_u32be(out.p);
    FUZZ_CHECK(action <= 3);
  }
  buf_free(&out);
  free(pkt);
  if (clock_s % 4096 == 0)
    swarms_sweep(sw, clock_s, 60);
  return 0;
}
