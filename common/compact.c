/* compact.c -- compact peer lists (BEP 23, BEP 7) and numeric "host:port" text forms. */
#include "common/compact.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

int compact_parse(int family, const uint8_t *p, size_t len,
                  struct sockaddr_storage *out, size_t max)
{
  size_t esz;
  if (family == AF_INET)
    esz = COMPACT_V4_LEN;
  else if (family == AF_INET6)
    esz = COMPACT_V6_LEN;
  else
    return -1;
  if (len % esz != 0)
    return -1;
  size_t n = 0;
  for (size_t off = 0; off < len && n < max && n < (size_t)INT32_MAX; off += esz) {
    const uint8_t *e = p + off;
    uint16_t port = get_u16be(e + esz - 2);
    if (port == 0)
      continue;
    memset(&out[n], 0, sizeof out[n]);
    if (family == AF_INET) {
      struct sockaddr_in *sin = (struct sockaddr_in *)&out[n];
      sin->sin_family = AF_INET;
      memcpy(&sin->sin_addr, e, 4);
      sin->sin_port = htons(port);
    } else {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out[n];
      sin6->sin6_family = AF_INET6;
      memcpy(&sin6->sin6_addr, e, 16);
      sin6->sin6_port = htons(port);
    }
    n++;
  }
  return (int)n;
}

int compact_put(struct buf *b, const struct sockaddr *sa)
{
  uint8_t e[COMPACT_V6_LEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    memcpy(e, &sin->sin_addr, 4);
    memcpy(e + 4, &sin->sin_port, 2); /* already network order */
    return buf_append(b, e, COMPACT_V4_LEN);
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    memcpy(e, &sin6->sin6_addr, 16);
    memcpy(e + 16, &sin6->sin6_port, 2);
    return buf_append(b, e, COMPACT_V6_LEN);
  }
  return UV_EAFNOSUPPORT;
}

void compact_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
  char ip[INET6_ADDRSTRLEN];
  if (outlen == 0)
    return;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip) == NULL)
      ip[0] = '\0';
    snprintf(out, outlen, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip) == NULL)
      ip[0] = '\0';
    snprintf(out, outlen, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
  } else {
    snprintf(out, outlen, "(unknown address family %d)", (int)sa->sa_family);
  }
}

/* Strict decimal port: 1 to 5 digits, at most 65535. */
static int compact_parse_port(const char *s, uint16_t *port)
{
  size_t n = strlen(s);
  if (n == 0 || n > 5)
    return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v > 65535)
    return -1;
  *port = (uint16_t)v;
  return 0;
}

int compact_addr_parse(const char *s, struct sockaddr_storage *out)
{
  char host[INET6_ADDRSTRLEN + 1];
  const char *port_s;
  size_t hlen;
  int family;
  if (s == NULL)
    return UV_EINVAL;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':')
      return UV_EINVAL;
    hlen = (size_t)(close - (s + 1));
    if (hlen == 0 || hlen >= sizeof host)
      return UV_EINVAL;
    memcpy(host, s + 1, hlen);
    port_s = close + 2;
    family = AF_INET6;
  } else {
    const char *colon = strchr(s, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL)
      return UV_EINVAL; /* no port, or an unbracketed IPv6 address */
    hlen = (size_t)(colon - s);
    if (hlen == 0 || hlen >= sizeof host)
      return UV_EINVAL;
    memcpy(host, s, hlen);
    port_s = colon + 1;
    family = AF_INET;
  }
  host[hlen] = '\0';
  uint16_t port;
  if (compact_parse_port(port_s, &port))
    return UV_EINVAL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
      return UV_EINVAL;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
      return UV_EINVAL;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
  }
  *out = ss;
  return 0;
}

int compact_addr_split(const struct sockaddr *sa, uint8_t *family, uint8_t ip[16], uint16_t *port)
{
  memset(ip, 0, 16);
  if (sa == NULL)
    return UV_EINVAL;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    memcpy(ip, &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
    *family = AF_INET;
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    *port = ntohs(sin6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      memcpy(ip, sin6->sin6_addr.s6_addr + 12, 4);
      *family = AF_INET;
    } else {
      memcpy(ip, &sin6->sin6_addr, 16);
      *family = AF_INET6;
    }
    return 0;
  }
  return UV_EINVAL;
}
