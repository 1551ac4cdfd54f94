/* addrbook.c -- a torrent's known peer addresses. */
#include "peer/addrbook.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int addrbook_init(struct addrbook *b, unsigned cap)
{
  b->e = calloc(cap ? cap : 1, sizeof *b->e);
  b->n = 0;
  b->cap = cap;
  return b->e ? 0 : UV_ENOMEM;
}

void addrbook_free(struct addrbook *b)
{
  free(b->e);
  b->e = NULL;
  b->n = b->cap = 0;
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
    if (addrbook_same_addr(&b->e[i].addr, sa)) {
      if (manual)
        b->e[i].manual = true;
      return &b->e[i];
    }
  }
  unsigned slot = b->n;
  if (slot >= b->cap) {
    for (slot = 0; slot < b->n; slot++)
      if (!b->e[slot].connected && !b->e[slot].manual && b->e[slot].fails > 0)
        break;
    if (slot == b->n)
      return NULL;
  } else {
    b->n++;
  }
  struct addr_entry *e = &b->e[slot];
  memset(e, 0, sizeof *e);
  memcpy(&e->addr, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  e->manual = manual;
  *added = true;
  return e;
}
