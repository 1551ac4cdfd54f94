/* addrbook.c -- a torrent's known peer addresses. */
#include "peer/addrbook.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int addrbook_init(struct addrbook *b, unsigned cap)
{
  memset(b, 0, sizeof *b);
  b->cap = cap < ADDRBOOK_MAX ? cap : ADDRBOOK_MAX;
  return 0;
}

void addrbook_free(struct addrbook *b)
{
  for (unsigned i = 0; i < ADDRBOOK_CHUNKS; i++)
    free(b->chunk[i]);
  memset(b, 0, sizeof *b);
}

bool addrbook_same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
  if (a->ss_family != b->sa_family)
    return false;
  if (b->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (b->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  return false;
}

struct addr_entry *addrbook_add(struct addrbook *b, const struct sockaddr *sa, bool manual, bool *added)
{
  *added = false;
  if (sa->sa_family == AF_INET) {
    if (((const struct sockaddr_in *)sa)->sin_port == 0)
      return NULL;
  } else if (sa->sa_family == AF_INET6) {
    if (((const struct sockaddr_in6 *)sa)->sin6_port == 0)
      return NULL;
  } else {
    return NULL;
  }
  for (unsigned i = 0; i < b->n; i++) {
    struct addr_entry *e = addrbook_at(b, i);
    if (addrbook_same_addr(&e->addr, sa)) {
      if (manual)
        e->manual = true;
      return e;
    }
  }
  unsigned slot = b->n;
  if (slot >= b->cap) {
    for (slot = 0; slot < b->n; slot++) {
      const struct addr_entry *e = addrbook_at(b, slot);
      if (!e->connected && !e->manual && e->fails > 0)
        break;
    }
    if (slot == b->n)
      return NULL;
  } else {
    struct addr_entry **c = &b->chunk[slot / ADDRBOOK_CHUNK];
    if (*c == NULL && (*c = malloc(ADDRBOOK_CHUNK * sizeof **c)) == NULL)
      return NULL;
    b->n++;
  }
  struct addr_entry *e = addrbook_at(b, slot);
  memset(e, 0, sizeof *e);
  memcpy(&e->addr, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  e->manual = manual;
  *added = true;
  return e;
}
