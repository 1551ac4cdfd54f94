/* fuzz_magnet.c -- libFuzzer target: magnet links (magnet_parse), and build -> parse round trips. */
#include <netinet/in.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "common/magnet.h"
#include "common/utf8.h"
#include "tests/fuzz/fuzzutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > MAGNET_MAX_LEN + 16)
    return 0;
  char *uri = malloc(size + 1);
  if (uri == NULL)
    return 0;
  memcpy(uri, data, size);
  uri[size] = '\0';
  struct magnet m;
  char err[SHOAL_ERRLEN];
  int rc = magnet_parse(&m, uri, err, sizeof err);
  free(uri);
  if (rc != 0) {
    FUZZ_CHECK(rc == UV_EINVAL || rc == SHOAL_ETOOBIG || rc == UV_ENOMEM);
    FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    return 0;
  }
  if (m.name) {
    size_t n = strlen(m.name);
    FUZZ_CHECK(n <= MAGNET_MAX_NAME && utf8_valid((const uint8_t *)m.name, n));
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK((uint8_t)m.name[i] >= 0x20 && m.name[i] != 0x7f);
  }
  FUZZ_CHECK(m.ntrackers <= MAGNET_MAX_TRACKERS && m.npeers <= MAGNET_MAX_PEERS && m.nso <= MAGNET_MAX_SO);
  for (size_t i = 0; i < m.ntrackers; i++) {
    size_t n = strlen(m.trackers[i]);
    FUZZ_CHECK(n >= 1 && n <= MAGNET_MAX_TRACKER_LEN);
    for (size_t k = 0; k < i; k++)
      FUZZ_CHECK(strcmp(m.trackers[k], m.trackers[i]) != 0);   /* duplicates removed */
  }
  for (size_t i = 0; i < m.npeers; i++) {
    const struct sockaddr_storage *ss = &m.peers[i];
    FUZZ_CHECK(ss->ss_family == AF_INET || ss->ss_family == AF_INET6);
  }
  for (size_t i = 0; i < m.nso; i++)
    FUZZ_CHECK(m.so[i].first <= m.so[i].last && m.so[i].last < MAGNET_MAX_FILE_INDEX);

  /* what we build from it parses back to the same infohash, name and trackers */
  char *again = magnet_build(m.infohash, m.name, (const char *const *)m.trackers, m.ntrackers);
  FUZZ_CHECK(again != NULL);
  struct magnet m2;
  FUZZ_CHECK(magnet_parse(&m2, again, err, sizeof err) == 0);
  FUZZ_CHECK(memcmp(m.infohash, m2.infohash, 20) == 0);
  FUZZ_CHECK((m.name == NULL) == (m2.name == NULL));
  if (m.name)
    FUZZ_CHECK(strcmp(m.name, m2.name) == 0);
  FUZZ_CHECK(m.ntrackers == m2.ntrackers);
  for (size_t i = 0; i < m.ntrackers; i++)
    FUZZ_CHECK(strcmp(m.trackers[i], m2.trackers[i]) == 0);
  magnet_free(&m2);
  free(again);
  magnet_free(&m);
  return 0;
}
