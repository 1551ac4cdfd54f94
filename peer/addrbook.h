/* addrbook.h -- a torrent's known peer addresses: deduplicated, bounded, and
 * entries never move (a connection points at its entry).  Pure.  Storage
 * grows in chunks as addresses come, so an idle torrent costs almost nothing. */
#ifndef PEER_ADDRBOOK_H_
#define PEER_ADDRBOOK_H_

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDRBOOK_MAX 2000u          /* addresses kept per torrent */
#define ADDRBOOK_CHUNK 64u          /* entries allocated at a time */
#define ADDRBOOK_CHUNKS ((ADDRBOOK_MAX + ADDRBOOK_CHUNK - 1) / ADDRBOOK_CHUNK)

/* A known address of a peer: where to dial, how it went. */
struct addr_entry {
  struct sockaddr_storage addr;
  uint64_t next_try_ms;
  uint16_t fails;
  bool connected;     /* a connection for this entry exists */
  bool banned;
  bool self;
  bool manual;        /* given by hand: never forgotten */
  bool seed;          /* it had everything last time: no use dialling it while we seed */
};

struct addrbook {
  struct addr_entry *chunk[ADDRBOOK_CHUNKS];  /* entry i is chunk[i / CHUNK][i % CHUNK] */
  unsigned n, cap;
};

/* Entry i (< b->n). */
static inline struct addr_entry *addrbook_at(const struct addrbook *b, unsigned i)
{
  return &b->chunk[i / ADDRBOOK_CHUNK][i % ADDRBOOK_CHUNK];
}

/* cap entries at most (clamped to ADDRBOOK_MAX); nothing is allocated yet.
 * Returns 0 (kept for callers that check it). */
int addrbook_init(struct addrbook *b, unsigned cap);
void addrbook_free(struct addrbook *b);

/* Same family, address and port. */
bool addrbook_same_addr(const struct sockaddr_storage *a, const struct sockaddr *b);

/* Finds sa, or adds it (*added true).  A manual add marks an existing entry
 * manual too.  When the book is full, the slot of an address that keeps
 * failing (not connected, not manual) is reused; when there is none, the
 * address is not kept.  Returns the entry, or NULL for an address that is
 * neither IPv4 nor IPv6, has port 0, or finds no room (or no memory). */
struct addr_entry *addrbook_add(struct addrbook *b, const struct sockaddr *sa, bool manual, bool *added);

#endif
