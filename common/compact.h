/* compact.h -- compact peer lists: 6 bytes per IPv4 peer (BEP 23), 18 per IPv6 peer (BEP 7). */
#ifndef COMMON_COMPACT_H_
#define COMMON_COMPACT_H_

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/buf.h"

#define COMPACT_V4_LEN 6
#define COMPACT_V6_LEN 18

/* Parses a compact list of the given family (AF_INET: 6-byte entries,
 * AF_INET6: 18-byte entries).  A length that is not a multiple of the entry
 * size is an error (-1, nothing written).  Writes at most max entries to out
 * and returns how many; entries with port 0 are skipped. */
int compact_parse(int family, const uint8_t *p, size_t len,
                  struct sockaddr_storage *out, size_t max);

/* Appends one peer in compact form (6 or 18 bytes by its family). */
int compact_put(struct buf *b, const struct sockaddr *sa);

/* "1.2.3.4:6881" / "[::1]:6881" into out (at least 64 bytes). */
void compact_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

/* Family (AF_INET or AF_INET6), IP (4 or 16 bytes used, the rest zeroed)
 * and port of an address; an IPv4-mapped IPv6 address counts as IPv4.
 * 0, or UV_EINVAL for NULL or another family. */
int compact_addr_split(const struct sockaddr *sa, uint8_t *family, uint8_t ip[16], uint16_t *port);

/* Parses "HOST:PORT", "[V6]:PORT" with a numeric host; 0 or UV_EINVAL. */
int compact_addr_parse(const char *s, struct sockaddr_storage *out);

#endif
