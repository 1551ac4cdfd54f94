/* test_ext.c -- extension codecs: BEP 10 handshake, BEP 9 metadata messages and assembler, BEP 11 PEX, BEP 6 Fast Extension. */
#include <arpa/inet.h>
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "peer/ext.h"
#include "peer/wire.h"

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static void rng_fill(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(rng_next() >> 32);
}

/* A heap copy of exactly n bytes, so that ASan sees any read past the end. */
static uint8_t *exact(const void *p, size_t n)
{
  uint8_t *q = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(q);
  if (n)
    memcpy(q, p, n);
  return q;
}

/* Checks the framing of one EXTENDED message that fills b from offset off,
 * and returns its payload (after the ext id). */
static const uint8_t *ext_payload(const struct buf *b, size_t off, uint8_t want_id, size_t *len)
{
  ck_assert_uint_ge(b->len - off, 6);
  ck_assert_uint_eq(get_u32be(b->p + off), b->len - off - 4);
  ck_assert_uint_eq(b->p[off + 4], WIRE_EXTENDED);
  ck_assert_uint_eq(b->p[off + 5], want_id);
  /* The wire layer must accept it as a whole message. */
  size_t total = 0;
  ck_assert_int_eq(wire_frame(b->p + off, b->len - off, 1, &total), 1);
  ck_assert_uint_eq(total, b->len - off);
  struct wire_msg m;
  ck_assert_int_eq(wire_parse(b->p + off, total, 1, &m), 0);
  ck_assert_int_eq(m.id, WIRE_EXTENDED);
  ck_assert_uint_eq(m.ext_id, want_id);
  ck_assert_uint_eq(m.payload_len, b->len - off - 6);
  *len = b->len - off - 6;
  return b->p + off + 6;
}

static int hs_parse_str(struct ext_handshake *h, const char *s, size_t n, char *err)
{
  uint8_t *p = exact(s, n);
  int r = ext_handshake_parse(h, p, n, err, SHOAL_ERRLEN);
  free(p);
  return r;
}
#define HS(h, lit, err) hs_parse_str((h), (lit), sizeof(lit) - 1, (err))

static int hs_eq(const struct ext_handshake *a, const struct ext_handshake *b)
{
  return a->ut_metadata == b->ut_metadata && a->ut_pex == b->ut_pex && strcmp(a->v, b->v) == 0 &&
         a->port == b->port && a->reqq == b->reqq && a->metadata_size == b->metadata_size &&
         a->has_yourip == b->has_yourip;
}

static void sin4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *s = (struct sockaddr_in *)ss;
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  ck_assert_int_eq(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

static void sin6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  ck_assert_int_eq(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* ---- reserved bits ----------------------------------------------------- */

START_TEST(test_reserved)
{
  uint8_t r[8] = { 0 };
  ck_assert(!ext_supports_extended(r));
  ck_assert(!ext_supports_fast(r));
  ext_reserved_set(r);
  const uint8_t want[8] = { 0, 0, 0, 0, 0, 0x10, 0, 0x04 };
  ck_assert_mem_eq(r, want, 8);
  ck_assert(ext_supports_extended(r));
  ck_assert(ext_supports_fast(r));
  /* Other bits survive (DHT bit 0x01 of byte 7). */
  uint8_t r2[8] = { 0xff, 0, 0, 0, 0, 0x01, 0, 0x01 };
  ext_reserved_set(r2);
  ck_assert_uint_eq(r2[0], 0xff);
  ck_assert_uint_eq(r2[5], 0x11);
  ck_assert_uint_eq(r2[7], 0x05);
  uint8_t only_fast[8] = { 0, 0, 0, 0, 0, 0xef, 0, 0x04 };
  ck_assert(!ext_supports_extended(only_fast));
  ck_assert(ext_supports_fast(only_fast));
  uint8_t only_ext[8] = { 0, 0, 0, 0, 0, 0x10, 0, 0xfb };
  ck_assert(ext_supports_extended(only_ext));
  ck_assert(!ext_supports_fast(only_ext));
}
END_TEST

/* ---- BEP 10 handshake -------------------------------------------------- */

START_TEST(test_hs_build_exact)
{
  struct buf b;
  buf_init(&b, 4096);
  struct sockaddr_storage you;
  sin4(&you, "1.2.3.4", 999);
  struct ext_handshake_opts o = { .port = 6881, .reqq = 500, .metadata_size = 31235,
                                  .yourip = (struct sockaddr *)&you };
  ck_assert_int_eq(ext_handshake_build(&b, &o), 0);
  size_t n;
  const uint8_t *p = ext_payload(&b, 0, 0, &n);
  static const char want[] = "d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e"
                             "1:pi6881e4:reqqi500e1:v9:shoal 0.16:yourip4:\x01\x02\x03\x04" "e";
  ck_assert_uint_eq(n, sizeof want - 1);
  ck_assert_mem_eq(p, want, n);

  /* Minimal: nothing optional, no pex; appended after the first message. */
  size_t off = b.len;
  struct ext_handshake_opts o2 = { .no_pex = true };
  ck_assert_int_eq(ext_handshake_build(&b, &o2), 0);
  p = ext_payload(&b, off, 0, &n);
  static const char want2[] = "d1:md11:ut_metadatai1ee1:v9:shoal 0.1e";
  ck_assert_uint_eq(n, sizeof want2 - 1);
  ck_assert_mem_eq(p, want2, n);
  buf_free(&b);
}
END_TEST

START_TEST(test_hs_build_errors)
{
  struct buf b;
  buf_init(&b, 4096);
  ck_assert_int_eq(buf_append_str(&b, "keep"), 0);
  struct ext_handshake_opts o = { .metadata_size = EXT_MAX_METADATA + 1 };
  ck_assert_int_eq(ext_handshake_build(&b, &o), UV_EINVAL);
  ck_assert_uint_eq(b.len, 4);
  struct sockaddr_storage un;
  memset(&un, 0, sizeof un);
  un.ss_family = AF_UNIX;
  struct ext_handshake_opts o2 = { .yourip = (struct sockaddr *)&un };
  ck_assert_int_eq(ext_handshake_build(&b, &o2), UV_EINVAL);
  ck_assert_uint_eq(b.len, 4);
  /* A buffer too small: E2BIG and the earlier contents untouched. */
  struct buf s;
  buf_init(&s, 20);
  ck_assert_int_eq(buf_append_str(&s, "abc"), 0);
  struct ext_handshake_opts o3 = { .port = 1 };
  ck_assert_int_eq(ext_handshake_build(&s, &o3), UV_E2BIG);
  ck_assert_uint_eq(s.len, 3);
  ck_assert_mem_eq(s.p, "abc", 3);
  buf_free(&s);
  buf_free(&b);
}
END_TEST

START_TEST(test_hs_roundtrip)
{
  struct buf b;
  buf_init(&b, 4096);
  struct sockaddr_storage you;
  sin6(&you, "2001:db8::7", 1);
  struct ext_handshake_opts o = { .port = 51413, .reqq = 1000, .metadata_size = EXT_MAX_METADATA,
                                  .yourip = (struct sockaddr *)&you };
  ck_assert_int_eq(ext_handshake_build(&b, &o), 0);
  size_t n;
  const uint8_t *p = ext_payload(&b, 0, 0, &n);
  struct ext_handshake h;
  ext_handshake_init(&h);
  char err[SHOAL_ERRLEN];
  uint8_t *q = exact(p, n);
  ck_assert_int_eq(ext_handshake_parse(&h, q, n, err, sizeof err), 0);
  free(q);
  ck_assert_uint_eq(h.ut_metadata, EXT_ID_UT_METADATA);
  ck_assert_uint_eq(h.ut_pex, EXT_ID_UT_PEX);
  ck_assert_str_eq(h.v, "shoal 0.1");
  ck_assert_uint_eq(h.port, 51413);
  ck_assert_uint_eq(h.reqq, 1000);
  ck_assert_uint_eq(h.metadata_size, EXT_MAX_METADATA);
  ck_assert(h.has_yourip);
  struct sockaddr_storage want;
  sin6(&want, "2001:db8::7", 0);
  ck_assert(same_addr(&h.yourip, &want));
  buf_free(&b);
}
END_TEST

START_TEST(test_hs_defaults_and_errors)
{
  struct ext_handshake h;
  char err[SHOAL_ERRLEN];
  ext_handshake_init(&h);
  ck_assert_uint_eq(h.reqq, EXT_REQQ_DEFAULT);
  ck_assert_int_eq(HS(&h, "de", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 0);
  ck_assert_uint_eq(h.ut_pex, 0);
  ck_assert_str_eq(h.v, "");
  ck_assert_uint_eq(h.port, 0);
  ck_assert_uint_eq(h.reqq, EXT_REQQ_DEFAULT);
  ck_assert_uint_eq(h.metadata_size, 0);
  ck_assert(!h.has_yourip);

  /* Errors leave h as it was. */
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai5eee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 5);
  struct ext_handshake before = h;
  err[0] = '\0';
  ck_assert_int_eq(HS(&h, "i1e", err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "extension handshake is not a dictionary");
  ck_assert_int_eq(HS(&h, "l1:me", err), SHOAL_EPROTO);
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai9eee", err) , 0); /* sanity: valid works */
  h = before;
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai9ee", err), SHOAL_EBENCODE); /* truncated */
  ck_assert(strstr(err, "extension handshake:") == err);
  ck_assert_int_eq(hs_eq(&h, &before), 1);
  ck_assert_int_eq(HS(&h, "", err), SHOAL_EBENCODE);
  ck_assert_int_eq(HS(&h, "d1:pi1e1:pi2ee", err), SHOAL_EBENCODE);   /* duplicate key */
  ck_assert_int_eq(HS(&h, "d1:pi99999999999999999999ee", err), SHOAL_EBENCODE); /* int overflow */
  ck_assert_int_eq(HS(&h, "d1:pi1ee", err), 0);
  h = before;
  ck_assert_int_eq(HS(&h, "d1:pi1eexx", err), SHOAL_EBENCODE);  /* trailing bytes */
  /* Depth: 4 levels accepted, 5 refused. */
  ck_assert_int_eq(HS(&h, "d1:xd1:xd1:xleeee", err), 0);
  ck_assert_int_eq(HS(&h, "d1:xd1:xd1:xd1:xleeeee", err), SHOAL_EBENCODE);
  ck_assert_int_eq(hs_eq(&h, &before), 1);
  /* Token count: a list of 1000 ints is 1003 tokens: too many. */
  struct buf big;
  buf_init(&big, 1 << 16);
  ck_assert_int_eq(buf_append_str(&big, "d1:xl"), 0);
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(buf_append_str(&big, "i0e"), 0);
  ck_assert_int_eq(buf_append_str(&big, "ee"), 0);
  uint8_t *q = exact(big.p, big.len);
  ck_assert_int_eq(ext_handshake_parse(&h, q, big.len, err, sizeof err), SHOAL_ETOOBIG);
  ck_assert_int_eq(ext_handshake_parse(&h, q, big.len, NULL, 0), SHOAL_ETOOBIG);
  free(q);
  buf_free(&big);
  ck_assert_int_eq(hs_eq(&h, &before), 1);
}
END_TEST

START_TEST(test_hs_hostile_values)
{
  struct ext_handshake h;
  char err[SHOAL_ERRLEN];

  /* m of the wrong type: ignored; ids of the wrong type: ignored. */
  ext_handshake_init(&h);
  ck_assert_int_eq(HS(&h, "d1:mi7ee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 0);
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadata1:36:ut_pexli2eeee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 0);
  ck_assert_uint_eq(h.ut_pex, 0);
  /* Ids: 255 kept, 256 / negative / huge disable. */
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai255e6:ut_pexi1eee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 255);
  ck_assert_uint_eq(h.ut_pex, 1);
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai256e6:ut_pexi-1eee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 0);
  ck_assert_uint_eq(h.ut_pex, 0);
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai9223372036854775807e6:ut_pexi-9223372036854775808eee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 0);
  ck_assert_uint_eq(h.ut_pex, 0);
  /* Unknown extensions and keys ignored; case matters. */
  ck_assert_int_eq(HS(&h, "d1:ei1e1:md11:UT_METADATAi3e11:lt_donthavei7e12:ut_holepunchi4ee"
                          "4:zzzzd1:ali1ei2eeee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 0);

  /* p */
  ext_handshake_init(&h);
  ck_assert_int_eq(HS(&h, "d1:pi0ee", err), 0);
  ck_assert_uint_eq(h.port, 0);
  ck_assert_int_eq(HS(&h, "d1:pi65536ee", err), 0);
  ck_assert_uint_eq(h.port, 0);
  ck_assert_int_eq(HS(&h, "d1:pi-80ee", err), 0);
  ck_assert_uint_eq(h.port, 0);
  ck_assert_int_eq(HS(&h, "d1:p4:6881e", err), 0);
  ck_assert_uint_eq(h.port, 0);
  ck_assert_int_eq(HS(&h, "d1:pi65535ee", err), 0);
  ck_assert_uint_eq(h.port, 65535);

  /* reqq clamped */
  ck_assert_int_eq(HS(&h, "d4:reqqi0ee", err), 0);
  ck_assert_uint_eq(h.reqq, 1);
  ck_assert_int_eq(HS(&h, "d4:reqqi-5ee", err), 0);
  ck_assert_uint_eq(h.reqq, 1);
  ck_assert_int_eq(HS(&h, "d4:reqqi1000000000000000000ee", err), 0);
  ck_assert_uint_eq(h.reqq, EXT_REQQ_MAX);
  ck_assert_int_eq(HS(&h, "d4:reqqi2001ee", err), 0);
  ck_assert_uint_eq(h.reqq, 2000);
  ck_assert_int_eq(HS(&h, "d4:reqqi100ee", err), 0);
  ck_assert_uint_eq(h.reqq, 100);
  ck_assert_int_eq(HS(&h, "d4:reqq3:100e", err), 0);   /* wrong type: unchanged */
  ck_assert_uint_eq(h.reqq, 100);

  /* metadata_size: 0, negative, too large -> 0 (unknown); limits accepted. */
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei1ee", err), 0);
  ck_assert_uint_eq(h.metadata_size, 1);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei0ee", err), 0);
  ck_assert_uint_eq(h.metadata_size, 0);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei16777216ee", err), 0);
  ck_assert_uint_eq(h.metadata_size, 16777216);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei16777217ee", err), 0);
  ck_assert_uint_eq(h.metadata_size, 0);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei31235ee", err), 0);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei-31235ee", err), 0);
  ck_assert_uint_eq(h.metadata_size, 0);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei9223372036854775807ee", err), 0);
  ck_assert_uint_eq(h.metadata_size, 0);
  ck_assert_int_eq(HS(&h, "d13:metadata_sizei4294967296ee", err), 0);  /* 2^32: no wrap */
  ck_assert_uint_eq(h.metadata_size, 0);

  /* yourip: only 4 or 16 bytes. */
  ck_assert_int_eq(HS(&h, "d6:yourip5:abcdee", err), 0);
  ck_assert(!h.has_yourip);
  ck_assert_int_eq(HS(&h, "d6:yourip0:e", err), 0);
  ck_assert(!h.has_yourip);
  ck_assert_int_eq(HS(&h, "d6:youripi1ee", err), 0);
  ck_assert(!h.has_yourip);
  ck_assert_int_eq(HS(&h, "d6:yourip4:\x7f\x00\x00\x01" "e", err), 0);
  ck_assert(h.has_yourip);
  ck_assert_int_eq(h.yourip.ss_family, AF_INET);
  ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&h.yourip)->sin_addr.s_addr), 0x7f000001u);
}
END_TEST

START_TEST(test_hs_client_name)
{
  struct ext_handshake h;
  char err[SHOAL_ERRLEN];
  ext_handshake_init(&h);
  /* UTF-8 kept (the BEP's example), controls and bad bytes become '?'. */
  ck_assert_int_eq(HS(&h, "d1:v13:\xc2\xb5Torrent 1.2e", err), 0);
  ck_assert_str_eq(h.v, "\xc2\xb5Torrent 1.2");
  ck_assert_int_eq(HS(&h, "d1:v8:a\nb\x1b[2J\x7f" "e", err), 0);
  ck_assert_str_eq(h.v, "a?b?[2J?");
  ck_assert_int_eq(HS(&h, "d1:v6:x\xff\xc0\x80y\x00" "e", err), 0);  /* invalid, overlong, NUL */
  ck_assert_str_eq(h.v, "x???y?");
  ck_assert_int_eq(HS(&h, "d1:v5:\xc2\x85\xe2\x80\xae" "e", err), 0); /* C1 NEL, RTL override */
  ck_assert_str_eq(h.v, "?????");
  ck_assert_int_eq(HS(&h, "d1:v4:\xed\xa0\x80z" "e", err), 0);  /* surrogate */
  ck_assert_str_eq(h.v, "???z");
  ck_assert_int_eq(HS(&h, "d1:vi5ee", err), 0);               /* wrong type: unchanged */
  ck_assert_str_eq(h.v, "???z");
  ck_assert_int_eq(HS(&h, "d1:v0:e", err), 0);
  ck_assert_str_eq(h.v, "");
  /* Cap: 100 'A' -> 64; a multi-byte character is never cut. */
  char msg[256], as[101];
  memset(as, 'A', 100);
  as[100] = '\0';
  int n = snprintf(msg, sizeof msg, "d1:v100:%se", as);
  ck_assert_int_eq(hs_parse_str(&h, msg, (size_t)n, err), 0);
  ck_assert_uint_eq(strlen(h.v), EXT_CLIENT_NAME_MAX);
  char v[80];
  memset(v, 'B', 63);
  memcpy(v + 63, "\xc3\xa9zz", 4);                   /* 63 + 2 > 64: the é is dropped */
  n = snprintf(msg, sizeof msg, "d1:v67:%.67se", v);
  ck_assert_int_eq(hs_parse_str(&h, msg, (size_t)n, err), 0);
  ck_assert_uint_eq(strlen(h.v), 63);
  ck_assert_int_eq(h.v[62], 'B');
}
END_TEST

START_TEST(test_hs_additive)
{
  struct ext_handshake h;
  char err[SHOAL_ERRLEN];
  ext_handshake_init(&h);
  ck_assert_int_eq(HS(&h, "d1:md11:ut_metadatai3e6:ut_pexi4ee1:pi7e4:reqqi9e1:v1:xe", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 3);
  ck_assert_uint_eq(h.ut_pex, 4);
  /* A later handshake disables ut_pex only. */
  ck_assert_int_eq(HS(&h, "d1:md6:ut_pexi0eee", err), 0);
  ck_assert_uint_eq(h.ut_metadata, 3);
  ck_assert_uint_eq(h.ut_pex, 0);
  ck_assert_uint_eq(h.port, 7);
  ck_assert_uint_eq(h.reqq, 9);
  ck_assert_str_eq(h.v, "x");
}
END_TEST

/* ---- BEP 9 messages ---------------------------------------------------- */

START_TEST(test_md_pieces)
{
  ck_assert_uint_eq(ext_md_pieces(0), 0);
  ck_assert_uint_eq(ext_md_pieces(1), 1);
  ck_assert_uint_eq(ext_md_pieces(16384), 1);
  ck_assert_uint_eq(ext_md_pieces(16385), 2);
  ck_assert_uint_eq(ext_md_pieces(EXT_MAX_METADATA), 1024);
  ck_assert_uint_eq(ext_md_piece_len(16385, 0), 16384);
  ck_assert_uint_eq(ext_md_piece_len(16385, 1), 1);
  ck_assert_uint_eq(ext_md_piece_len(16385, 2), 0);
  ck_assert_uint_eq(ext_md_piece_len(32768, 1), 16384);
  ck_assert_uint_eq(ext_md_piece_len(0, 0), 0);
  ck_assert_uint_eq(ext_md_piece_len(100, UINT32_MAX), 0);
}
END_TEST

START_TEST(test_md_build)
{
  struct buf b;
  buf_init(&b, 64 * 1024);
  size_t n;
  const uint8_t *p;
  ck_assert_int_eq(ext_md_build_request(&b, 3, 7), 0);
  p = ext_payload(&b, 0, 3, &n);
  ck_assert_uint_eq(n, strlen("d8:msg_typei0e5:piecei7ee"));
  ck_assert_mem_eq(p, "d8:msg_typei0e5:piecei7ee", n);
  b.len = 0;
  ck_assert_int_eq(ext_md_build_reject(&b, 200, 0), 0);
  p = ext_payload(&b, 0, 200, &n);
  ck_assert_mem_eq(p, "d8:msg_typei2e5:piecei0ee", n);
  b.len = 0;

  /* Data: 40000 bytes = 16384 + 16384 + 7232. */
  uint8_t *md = malloc(40000);
  rng_fill(md, 40000);
  static const char hd[] = "d8:msg_typei1e5:piecei2e10:total_sizei40000ee";
  ck_assert_int_eq(ext_md_build_data(&b, 9, 2, md, 40000), 0);
  p = ext_payload(&b, 0, 9, &n);
  ck_assert_uint_eq(n, strlen(hd) + 7232);
  ck_assert_mem_eq(p, hd, strlen(hd));
  ck_assert_mem_eq(p + strlen(hd), md + 32768, 7232);
  b.len = 0;
  ck_assert_int_eq(ext_md_build_data(&b, 9, 0, md, 40000), 0);
  p = ext_payload(&b, 0, 9, &n);
  ck_assert_uint_eq(n, strlen("d8:msg_typei1e5:piecei0e10:total_sizei40000ee") + 16384);
  /* And it parses back to the same bytes. */
  struct ext_md_msg m;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(ext_md_parse(p, n, 40000, &m, err, sizeof err), 0);
  ck_assert_int_eq(m.type, EXT_MD_DATA);
  ck_assert_uint_eq(m.piece, 0);
  ck_assert_uint_eq(m.total_size, 40000);
  ck_assert_uint_eq(m.data_len, 16384);
  ck_assert_mem_eq(m.data, md, 16384);

  /* Errors: b unchanged. */
  b.len = 0;
  ck_assert_int_eq(ext_md_build_data(&b, 9, 3, md, 40000), UV_EINVAL);
  ck_assert_int_eq(ext_md_build_data(&b, 0, 0, md, 40000), UV_EINVAL);
  ck_assert_int_eq(ext_md_build_data(&b, 9, 0, md, 0), UV_EINVAL);
  ck_assert_int_eq(ext_md_build_data(&b, 9, 0, md, EXT_MAX_METADATA + 1), UV_EINVAL);
  ck_assert_int_eq(ext_md_build_request(&b, 0, 0), UV_EINVAL);
  ck_assert_int_eq(ext_md_build_request(&b, 1, EXT_MD_MAX_PIECES), UV_EINVAL);
  ck_assert_int_eq(ext_md_build_reject(&b, 1, EXT_MD_MAX_PIECES), UV_EINVAL);
  ck_assert_uint_eq(b.len, 0);
  struct buf s;
  buf_init(&s, 1000);                  /* too small for a 16 KiB block */
  ck_assert_int_eq(ext_md_build_data(&s, 9, 0, md, 40000), UV_E2BIG);
  ck_assert_uint_eq(s.len, 0);
  buf_free(&s);
  free(md);
  buf_free(&b);
}
END_TEST

static int md_parse_str(const char *s, size_t n, uint32_t known, struct ext_md_msg *m, char *err)
{
  uint8_t *p = exact(s, n);
  int r = ext_md_parse(p, n, known, m, err, SHOAL_ERRLEN);
  free(p);
  return r;
}
#define MD(lit, known, m, err) md_parse_str((lit), sizeof(lit) - 1, (known), (m), (err))

START_TEST(test_md_parse_simple)
{
  struct ext_md_msg m;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei0ee", 0, &m, err), 0);
  ck_assert_int_eq(m.type, EXT_MD_REQUEST);
  ck_assert_uint_eq(m.piece, 0);
  ck_assert_int_eq(MD("d5:piecei1023e8:msg_typei2ee", 0, &m, err), 0); /* unsorted keys ok */
  ck_assert_int_eq(m.type, EXT_MD_REJECT);
  ck_assert_uint_eq(m.piece, 1023);
  /* Unknown msg_type: ignored, whatever else is there. */
  ck_assert_int_eq(MD("d8:msg_typei7ee", 0, &m, err), 0);
  ck_assert_int_eq(m.type, EXT_MD_UNKNOWN);
  ck_assert_int_eq(MD("d8:msg_typei-1e5:piecei0eexyz", 0, &m, err), 0);
  ck_assert_int_eq(m.type, EXT_MD_UNKNOWN);
  /* Extra keys are fine. */
  ck_assert_int_eq(MD("d1:xi1e8:msg_typei0e5:piecei2e10:total_sizei5ee", 0, &m, err), 0);
  ck_assert_int_eq(m.type, EXT_MD_REQUEST);

  /* Malformed. */
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei0eeX", 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: bytes after a request or reject");
  ck_assert_int_eq(MD("d8:msg_typei2e5:piecei0ee\x00", 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(MD("d5:piecei0ee", 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: msg_type missing or not an integer");
  ck_assert_int_eq(MD("d8:msg_type1:05:piecei0ee", 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(MD("d8:msg_typei0ee", 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: piece missing or not an integer");
  ck_assert_int_eq(MD("d8:msg_typei0e5:piece1:0e", 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei-1ee", 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: piece index out of range");
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei1024ee", 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei4294967296ee", 0, &m, err), SHOAL_EPROTO);
  /* known_size bounds requests: 3 pieces for 40000 bytes. */
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei2ee", 40000, &m, err), 0);
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei3ee", 40000, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(MD("le", 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: message is not a dictionary");
  ck_assert_int_eq(MD("i0e", 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(MD("d8:msg_typei0e5:piecei0e", 0, &m, err), SHOAL_EBENCODE);
  ck_assert(strstr(err, "ut_metadata:") == err);
  ck_assert_int_eq(MD("", 0, &m, err), SHOAL_EBENCODE);
  ck_assert_int_eq(MD("x", 0, &m, NULL), SHOAL_EBENCODE);
}
END_TEST

/* A data message payload: dict + n bytes of 'x'. */
static int md_data(int64_t piece, int64_t total, size_t n, uint32_t known, struct ext_md_msg *m, char *err)
{
  struct buf b;
  buf_init(&b, 1 << 20);
  ck_assert_int_eq(buf_printf(&b, "d8:msg_typei1e5:piecei%lde10:total_sizei%ldee",
                              (long)piece, (long)total), 0);
  size_t hl = b.len;
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(buf_append_u8(&b, 'x'), 0);
  uint8_t *p = exact(b.p, b.len);
  int r = ext_md_parse(p, b.len, known, m, err, SHOAL_ERRLEN);
  if (r == 0 && m->type == EXT_MD_DATA) {
    ck_assert_ptr_eq(m->data, p + hl);
    ck_assert_uint_eq(m->data_len, n);
  }
  free(p);
  buf_free(&b);
  return r;
}

START_TEST(test_md_parse_data)
{
  struct ext_md_msg m;
  char err[SHOAL_ERRLEN];
  /* 40000 bytes: pieces 16384, 16384, 7232. */
  ck_assert_int_eq(md_data(0, 40000, 16384, 0, &m, err), 0);
  ck_assert_int_eq(m.type, EXT_MD_DATA);
  ck_assert_uint_eq(m.total_size, 40000);
  ck_assert_int_eq(md_data(2, 40000, 7232, 40000, &m, err), 0);
  ck_assert_uint_eq(m.piece, 2);
  ck_assert_int_eq(md_data(0, 1, 1, 1, &m, err), 0);
  ck_assert_int_eq(md_data(1023, EXT_MAX_METADATA, 16384, 0, &m, err), 0);

  /* Trailing data length mismatches. */
  ck_assert_int_eq(md_data(0, 40000, 16383, 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: piece data length does not match total_size");
  ck_assert_int_eq(md_data(0, 40000, 16385, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(2, 40000, 7231, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(2, 40000, 7233, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(2, 40000, 16384, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(0, 40000, 0, 0, &m, err), SHOAL_EPROTO);
  /* Piece index out of range for total_size. */
  ck_assert_int_eq(md_data(3, 40000, 0, 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: piece index beyond total_size");
  ck_assert_int_eq(md_data(3, 40000, 7232, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(1, 16384, 0, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(-1, 40000, 16384, 0, &m, err), SHOAL_EPROTO);
  /* Piece beyond the known size (checked before total_size). */
  ck_assert_int_eq(md_data(3, 60000, 11616, 40000, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: piece index out of range");
  /* total_size mismatch with the announced size, and bad totals. */
  ck_assert_int_eq(md_data(0, 40001, 16384, 40000, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: total_size differs from the announced metadata size");
  ck_assert_int_eq(md_data(0, 0, 0, 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: total_size out of range");
  ck_assert_int_eq(md_data(0, -16384, 16384, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(0, (int64_t)EXT_MAX_METADATA + 1, 16384, 0, &m, err), SHOAL_EPROTO);
  ck_assert_int_eq(md_data(0, 4294967296 + 100, 100, 0, &m, err), SHOAL_EPROTO); /* no wrap */
  /* total_size missing or of the wrong type. */
  ck_assert_int_eq(MD("d8:msg_typei1e5:piecei0eexx", 0, &m, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_metadata: total_size missing or not an integer");
  ck_assert_int_eq(MD("d8:msg_typei1e5:piecei0e10:total_size1:2ee", 0, &m, err), SHOAL_EPROTO);
}
END_TEST

/* ---- metadata assembler ------------------------------------------------ */

static uint8_t *make_md(uint32_t size, uint8_t ih[20])
{
  uint8_t *md = malloc(size);
  ck_assert_ptr_nonnull(md);
  rng_fill(md, size);
  hash_sha1(md, size, ih);
  return md;
}

static int asm_add(struct ext_md_asm *a, const uint8_t *md, uint32_t size, uint32_t piece)
{
  return ext_md_asm_add(a, piece, md + (size_t)piece * EXT_MD_BLOCK, ext_md_piece_len(size, piece));
}

START_TEST(test_asm_in_order)
{
  uint8_t ih[20];
  const uint32_t size = 3 * 16384 + 100;
  uint8_t *md = make_md(size, ih);
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  uint32_t piece, got;
  ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 0, &piece), SHOAL_ENOTFOUND); /* size unknown */
  ck_assert_int_eq(ext_md_asm_add(&a, 0, md, 16384), SHOAL_EPROTO);
  ck_assert_ptr_null(ext_md_asm_take(&a, &got));
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);
  ck_assert_uint_eq(a.npieces, 4);
  for (uint32_t i = 0; i < 4; i++) {
    ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 0, &piece), 0);
    ck_assert_uint_eq(piece, i);
    ck_assert_int_eq(asm_add(&a, md, size, piece), i < 3 ? 0 : 1);
  }
  ck_assert(a.done);
  ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 0, &piece), SHOAL_ENOTFOUND);
  ck_assert_int_eq(asm_add(&a, md, size, 0), SHOAL_EEXISTS);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), SHOAL_EEXISTS);
  uint8_t *out = ext_md_asm_take(&a, &got);
  ck_assert_ptr_nonnull(out);
  ck_assert_uint_eq(got, size);
  ck_assert_mem_eq(out, md, size);
  ck_assert_ptr_null(ext_md_asm_take(&a, &got));   /* holds nothing now */
  free(out);
  ext_md_asm_free(&a);
  free(md);
}
END_TEST

/* put stores without hashing: 1 when complete, not done; later pieces are
 * duplicates; restart drops everything and fetching starts over. */
START_TEST(test_asm_put_restart)
{
  uint8_t ih[20];
  const uint32_t size = 2 * 16384 + 7;
  uint8_t *md = make_md(size, ih);
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  ck_assert_int_eq(ext_md_asm_put(&a, 0, md, 16384), SHOAL_EPROTO);   /* size unknown */
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);
  ck_assert_int_eq(ext_md_asm_put(&a, 0, md, 16384), 0);
  ck_assert_int_eq(ext_md_asm_put(&a, 2, md + 2 * 16384, 7), 0);
  ck_assert_int_eq(ext_md_asm_put(&a, 1, md + 16384, 16384), 1);
  ck_assert(!a.done);                                                 /* not verified */
  ck_assert_mem_eq(a.data, md, size);
  ck_assert_int_eq(ext_md_asm_put(&a, 1, md + 16384, 16384), 0);     /* a duplicate now */
  uint32_t piece, got;
  ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 0, &piece), SHOAL_ENOTFOUND);
  ext_md_asm_restart(&a);
  ck_assert_uint_eq(a.nhave, 0);
  ck_assert_uint_eq(a.size, size);
  ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 0, &piece), 0);
  ck_assert_uint_eq(piece, 0);
  ck_assert_ptr_null(ext_md_asm_take(&a, &got));                      /* nothing verified */
  ext_md_asm_free(&a);
  free(md);
}
END_TEST

START_TEST(test_asm_out_of_order_dups)
{
  uint8_t ih[20];
  const uint32_t size = 5 * 16384;      /* exact multiple: last piece full */
  uint8_t *md = make_md(size, ih);
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);      /* same size: no-op */
  ck_assert_int_eq(asm_add(&a, md, size, 4), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 4), 0);          /* duplicate */
  ck_assert_uint_eq(a.nhave, 1);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size + 1), SHOAL_EEXISTS);  /* pieces held */
  ck_assert_int_eq(asm_add(&a, md, size, 1), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 3), 0);
  /* A duplicate with other bytes is ignored: the first copy stays. */
  uint8_t junk[16384];
  memset(junk, 0xee, sizeof junk);
  ck_assert_int_eq(ext_md_asm_add(&a, 3, junk, sizeof junk), 0);
  /* Bad lengths and indices. */
  ck_assert_int_eq(ext_md_asm_add(&a, 0, junk, 16383), SHOAL_EPROTO);
  ck_assert_int_eq(ext_md_asm_add(&a, 5, junk, 16384), SHOAL_EPROTO);
  ck_assert_int_eq(ext_md_asm_add(&a, UINT32_MAX, junk, 16384), SHOAL_EPROTO);
  /* pick skips held pieces. */
  uint32_t piece;
  ck_assert_int_eq(ext_md_asm_pick(&a, 50, 0, &piece), 0);
  ck_assert_uint_eq(piece, 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 50, 0, &piece), 0);
  ck_assert_uint_eq(piece, 2);
  ck_assert_int_eq(ext_md_asm_pick(&a, 50, 0, &piece), SHOAL_ENOTFOUND);
  ck_assert_int_eq(asm_add(&a, md, size, 2), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 0), 1);
  uint32_t got;
  uint8_t *out = ext_md_asm_take(&a, &got);
  ck_assert_mem_eq(out, md, size);
  free(out);
  ext_md_asm_free(&a);
  free(md);
}
END_TEST

START_TEST(test_asm_bad_hash)
{
  uint8_t ih[20];
  const uint32_t size = 2 * 16384 + 1;
  uint8_t *md = make_md(size, ih);
  uint8_t *bad = malloc(size);
  memcpy(bad, md, size);
  bad[16384 + 5] ^= 1;
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);
  uint32_t piece;
  ck_assert_int_eq(ext_md_asm_pick(&a, 10, 0, &piece), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 0), 0);
  ck_assert_int_eq(asm_add(&a, bad, size, 1), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 2), SHOAL_EHASH);
  /* Reset: nothing held, nothing in flight, not done. */
  ck_assert(!a.done);
  ck_assert_uint_eq(a.nhave, 0);
  ck_assert_uint_eq(a.size, size);
  uint32_t got;
  ck_assert_ptr_null(ext_md_asm_take(&a, &got));
  ck_assert_int_eq(ext_md_asm_pick(&a, 11, 0, &piece), 0);
  ck_assert_uint_eq(piece, 0);
  /* With no piece held, a different size can now be taken. */
  ck_assert_int_eq(ext_md_asm_set_size(&a, 100), 0);
  ck_assert_uint_eq(a.npieces, 1);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);
  /* The second try with good pieces (any order) succeeds. */
  ck_assert_int_eq(asm_add(&a, md, size, 2), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 1), 0);
  ck_assert_int_eq(asm_add(&a, md, size, 0), 1);
  ck_assert(a.done);
  ck_assert_mem_eq(a.data, md, size);
  ext_md_asm_free(&a);
  free(bad);
  free(md);
}
END_TEST

START_TEST(test_asm_pick_timeout)
{
  uint8_t ih[20] = { 0 };
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  uint32_t piece;
  ck_assert_int_eq(ext_md_asm_set_size(&a, 0), UV_EINVAL);
  ck_assert_int_eq(ext_md_asm_set_size(&a, EXT_MAX_METADATA + 1), UV_EINVAL);
  ck_assert_int_eq(ext_md_asm_set_size(&a, 3 * 16384), 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 5000, &piece), 0);
  ck_assert_uint_eq(piece, 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 1000, 5000, &piece), 0);
  ck_assert_uint_eq(piece, 1);
  ck_assert_int_eq(ext_md_asm_pick(&a, 2000, 5000, &piece), 0);
  ck_assert_uint_eq(piece, 2);
  ck_assert_int_eq(ext_md_asm_pick(&a, 5999, 5000, &piece), SHOAL_ENOTFOUND);
  ck_assert_int_eq(ext_md_asm_pick(&a, 500, 5000, &piece), SHOAL_ENOTFOUND); /* clock behind */
  ck_assert_int_eq(ext_md_asm_pick(&a, 6000, 5000, &piece), 0);   /* piece 0 timed out */
  ck_assert_uint_eq(piece, 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 6000, 5000, &piece), 0);
  ck_assert_uint_eq(piece, 1);
  ck_assert_int_eq(ext_md_asm_pick(&a, 6000, 5000, &piece), SHOAL_ENOTFOUND);
  /* A reject makes a piece pickable at once; out-of-range unask is ignored. */
  ext_md_asm_unask(&a, 2);
  ext_md_asm_unask(&a, 3);
  ext_md_asm_unask(&a, UINT32_MAX);
  ck_assert_int_eq(ext_md_asm_pick(&a, 6001, 5000, &piece), 0);
  ck_assert_uint_eq(piece, 2);
  /* Default timeout (0) is EXT_MD_REQUEST_TIMEOUT_MS. */
  ck_assert_int_eq(ext_md_asm_pick(&a, 6000 + EXT_MD_REQUEST_TIMEOUT_MS - 1, 0, &piece), SHOAL_ENOTFOUND);
  ck_assert_int_eq(ext_md_asm_pick(&a, 6000 + EXT_MD_REQUEST_TIMEOUT_MS, 0, &piece), 0);
  ck_assert_uint_eq(piece, 0);
  /* now 0 still counts as asked. */
  ext_md_asm_free(&a);
  ext_md_asm_init(&a, ih);
  ck_assert_int_eq(ext_md_asm_set_size(&a, 1), 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 0, 5000, &piece), 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 0, 5000, &piece), SHOAL_ENOTFOUND);
  ext_md_asm_unask(&a, 0);
  ck_assert_int_eq(ext_md_asm_pick(&a, 0, 5000, &piece), 0);
  ext_md_asm_free(&a);
  ext_md_asm_free(&a);                  /* twice is harmless */
}
END_TEST

START_TEST(test_asm_max_size)
{
  uint8_t ih[20];
  const uint32_t size = EXT_MAX_METADATA;
  uint8_t *md = make_md(size, ih);
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  ck_assert_int_eq(ext_md_asm_set_size(&a, size), 0);
  ck_assert_uint_eq(a.npieces, EXT_MD_MAX_PIECES);
  /* Reverse order. */
  for (uint32_t i = EXT_MD_MAX_PIECES; i-- > 0;)
    ck_assert_int_eq(asm_add(&a, md, size, i), i == 0 ? 1 : 0);
  ck_assert(a.done);
  ext_md_asm_free(&a);
  free(md);
}
END_TEST

/* ---- BEP 11 PEX --------------------------------------------------------- */

static int pex_parse_str(const char *s, size_t n, struct ext_pex *px, char *err)
{
  uint8_t *p = exact(s, n);
  int r = ext_pex_parse(p, n, px, err, SHOAL_ERRLEN);
  free(p);
  return r;
}
#define PEX(lit, px, err) pex_parse_str((lit), sizeof(lit) - 1, (px), (err))

START_TEST(test_pex_roundtrip)
{
  struct ext_pex_peer added[4];
  struct sockaddr_storage dropped[3];
  sin4(&added[0].addr, "10.0.0.1", 6881);
  added[0].flags = EXT_PEX_F_SEED | EXT_PEX_F_REACHABLE;
  sin6(&added[1].addr, "2001:db8::1", 51413);
  added[1].flags = EXT_PEX_F_UTP;
  sin4(&added[2].addr, "192.168.1.2", 1);
  added[2].flags = 0xff;               /* every bit set: only the kept ones come back */
  sin6(&added[3].addr, "::ffff:8.8.4.4", 443);  /* v4-mapped: goes out as IPv4 */
  added[3].flags = 0;
  sin4(&dropped[0], "1.1.1.1", 80);
  sin6(&dropped[1], "fe80::2", 8080);
  sin4(&dropped[2], "9.9.9.9", 0);     /* port 0: not sent */

  struct buf b;
  buf_init(&b, 64 * 1024);
  ck_assert_int_eq(ext_pex_build(&b, 7, added, 4, dropped, 3), 0);
  size_t n;
  const uint8_t *p = ext_payload(&b, 0, 7, &n);
  /* Exact layout of the start: added (3 x 6 bytes), added.f (3). */
  ck_assert_mem_eq(p, "d5:added18:\x0a\x00\x00\x01\x1a\xe1", 17);
  static const char af[] = "7:added.f3:\x12\xff\x00" "6:added618:";
  ck_assert(memmem(p, n, af, sizeof af - 1) != NULL);

  struct ext_pex *px = malloc(sizeof *px);
  char err[SHOAL_ERRLEN];
  uint8_t *q = exact(p, n);
  ck_assert_int_eq(ext_pex_parse(q, n, px, err, sizeof err), 0);
  free(q);
  ck_assert_uint_eq(px->nadded, 4);
  /* v4 entries first (in order), then v6. */
  ck_assert(same_addr(&px->added[0].addr, &added[0].addr));
  ck_assert_uint_eq(px->added[0].flags, EXT_PEX_F_SEED | EXT_PEX_F_REACHABLE);
  ck_assert(same_addr(&px->added[1].addr, &added[2].addr));
  ck_assert_uint_eq(px->added[1].flags, EXT_PEX_F_KEPT);
  struct sockaddr_storage mapped;
  sin4(&mapped, "8.8.4.4", 443);
  ck_assert(same_addr(&px->added[2].addr, &mapped));
  ck_assert_uint_eq(px->added[2].flags, 0);
  ck_assert(same_addr(&px->added[3].addr, &added[1].addr));
  ck_assert_uint_eq(px->added[3].flags, EXT_PEX_F_UTP);
  ck_assert_uint_eq(px->ndropped, 2);
  ck_assert(same_addr(&px->dropped[0], &dropped[0]));
  ck_assert(same_addr(&px->dropped[1], &dropped[1]));

  /* Empty message: added, added.f, dropped present and empty. */
  b.len = 0;
  ck_assert_int_eq(ext_pex_build(&b, 2, NULL, 0, NULL, 0), 0);
  p = ext_payload(&b, 0, 2, &n);
  ck_assert_uint_eq(n, strlen("d5:added0:7:added.f0:7:dropped0:e"));
  ck_assert_mem_eq(p, "d5:added0:7:added.f0:7:dropped0:e", n);
  q = exact(p, n);
  ck_assert_int_eq(ext_pex_parse(q, n, px, err, sizeof err), 0);
  free(q);
  ck_assert_uint_eq(px->nadded, 0);
  ck_assert_uint_eq(px->ndropped, 0);
  ck_assert_int_eq(ext_pex_build(&b, 0, NULL, 0, NULL, 0), UV_EINVAL);
  free(px);
  buf_free(&b);
}
END_TEST

START_TEST(test_pex_build_caps)
{
  struct ext_pex_peer added[120];
  struct sockaddr_storage dropped[120];
  for (int i = 0; i < 120; i++) {
    char ip[64];
    snprintf(ip, sizeof ip, "10.1.%d.%d", i / 256, i % 256);
    if (i % 2)
      snprintf(ip, sizeof ip, "2001:db8::%x", i);
    if (i % 2)
      sin6(&added[i].addr, ip, (uint16_t)(1000 + i));
    else
      sin4(&added[i].addr, ip, (uint16_t)(1000 + i));
    added[i].flags = EXT_PEX_F_SEED;
    dropped[i] = added[i].addr;
  }
  added[0].addr.ss_family = AF_UNIX;   /* unusable: skipped, not counted */
  struct buf b;
  buf_init(&b, 64 * 1024);
  ck_assert_int_eq(ext_pex_build(&b, 1, added, 120, dropped, 120), 0);
  size_t n;
  const uint8_t *p = ext_payload(&b, 0, 1, &n);
  struct ext_pex *px = malloc(sizeof *px);
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(ext_pex_parse(p, n, px, err, sizeof err), 0);
  ck_assert_uint_eq(px->nadded, EXT_PEX_MAX_ADDED);
  ck_assert_uint_eq(px->ndropped, EXT_PEX_MAX_DROPPED);
  /* The first 50 usable: added[1..50] (25 v4 then 25 v6). */
  ck_assert(same_addr(&px->added[0].addr, &added[2].addr));
  ck_assert(same_addr(&px->added[24].addr, &added[50].addr));
  ck_assert(same_addr(&px->added[25].addr, &added[1].addr));
  ck_assert(same_addr(&px->added[49].addr, &added[49].addr));
  ck_assert_uint_eq(px->added[49].flags, EXT_PEX_F_SEED);
  ck_assert(same_addr(&px->dropped[0], &dropped[0]));   /* copied before added[0] was spoilt */
  ck_assert(same_addr(&px->dropped[25], &dropped[1]));
  free(px);
  buf_free(&b);
}
END_TEST

START_TEST(test_pex_parse_errors)
{
  struct ext_pex *px = malloc(sizeof *px);
  char err[SHOAL_ERRLEN];
  /* Compact lengths 7 and 20. */
  ck_assert_int_eq(PEX("d5:added7:abcdefge", px, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_pex: IPv4 peer list length is not a multiple of 6");
  ck_assert_int_eq(PEX("d7:dropped7:abcdefge", px, err), SHOAL_EPROTO);
  ck_assert_int_eq(PEX("d6:added620:abcdefghijklmnopqrste", px, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_pex: IPv6 peer list length is not a multiple of 18");
  ck_assert_int_eq(PEX("d8:dropped620:abcdefghijklmnopqrste", px, err), SHOAL_EPROTO);
  ck_assert_int_eq(PEX("d5:added12:abcdefghijkle", px, err), 0);  /* 12 is fine */
  ck_assert_uint_eq(px->nadded, 2);
  /* Wrong types. */
  ck_assert_int_eq(PEX("d5:addedi1ee", px, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_pex: a peer list or flags entry is not a string");
  ck_assert_int_eq(PEX("d5:added0:7:added.flee", px, err), SHOAL_EPROTO);
  ck_assert_int_eq(PEX("d8:dropped6lee", px, err), SHOAL_EPROTO);
  ck_assert_int_eq(PEX("le", px, err), SHOAL_EPROTO);
  ck_assert_str_eq(err, "ut_pex: message is not a dictionary");
  ck_assert_int_eq(PEX("d5:added", px, err), SHOAL_EBENCODE);
  ck_assert(strstr(err, "ut_pex:") == err);
  ck_assert_int_eq(PEX("d5:added6:abcdef", px, NULL), SHOAL_EBENCODE);
  /* Unknown keys ignored (unsorted order too). */
  ck_assert_int_eq(PEX("d1:zi1e5:added6:\x01\x02\x03\x04\x00\x05" "1:adee", px, err), 0);
  ck_assert_uint_eq(px->nadded, 1);
  free(px);
}
END_TEST

START_TEST(test_pex_parse_flags_port0)
{
  struct ext_pex *px = malloc(sizeof *px);
  char err[SHOAL_ERRLEN];
  /* Three entries, the middle one with port 0: skipped, flags stay aligned. */
  static const char m1[] = "d5:added18:\x01\x01\x01\x01\x00\x01\x02\x02\x02\x02\x00\x00\x03\x03\x03\x03\x00\x03"
                           "7:added.f3:\x02\x04\x1f" "e";
  ck_assert_int_eq(pex_parse_str(m1, sizeof m1 - 1, px, err), 0);
  ck_assert_uint_eq(px->nadded, 2);
  ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&px->added[0].addr)->sin_port), 1);
  ck_assert_uint_eq(px->added[0].flags, EXT_PEX_F_SEED);
  ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&px->added[1].addr)->sin_addr.s_addr), 0x03030303u);
  ck_assert_uint_eq(px->added[1].flags, EXT_PEX_F_KEPT);   /* 0x1f masked */
  /* added.f of the wrong length: flags ignored. */
  static const char m2[] = "d5:added12:\x01\x01\x01\x01\x00\x01\x02\x02\x02\x02\x00\x02"
                           "7:added.f1:\x02" "e";
  ck_assert_int_eq(pex_parse_str(m2, sizeof m2 - 1, px, err), 0);
  ck_assert_uint_eq(px->nadded, 2);
  ck_assert_uint_eq(px->added[0].flags, 0);
  ck_assert_uint_eq(px->added[1].flags, 0);
  /* Flags without peers are harmless. */
  ck_assert_int_eq(PEX("d7:added.f3:abce", px, err), 0);
  ck_assert_uint_eq(px->nadded, 0);
  /* IPv6 with flags, IPv6 port 0 dropped. */
  static const char m3[] = "d6:added636:" "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x00\x50"
                                           "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02\x00\x00"
                           "8:added6.f2:\x10\x02" "8:dropped618:" "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x09\x01\x00" "e";
  ck_assert_int_eq(pex_parse_str(m3, sizeof m3 - 1, px, err), 0);
  ck_assert_uint_eq(px->nadded, 1);
  ck_assert_int_eq(px->added[0].addr.ss_family, AF_INET6);
  ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&px->added[0].addr)->sin6_port), 80);
  ck_assert_uint_eq(px->added[0].flags, EXT_PEX_F_REACHABLE);
  ck_assert_uint_eq(px->ndropped, 1);
  ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&px->dropped[0])->sin6_port), 256);
  free(px);
}
END_TEST

START_TEST(test_pex_parse_cap)
{
  /* 250 v4 + 10 v6 added: only EXT_PEX_PARSE_MAX kept. */
  struct buf b;
  buf_init(&b, 1 << 16);
  ck_assert_int_eq(buf_append_str(&b, "d5:added1500:"), 0);
  for (int i = 0; i < 250; i++) {
    uint8_t e[6] = { 10, 0, (uint8_t)(i >> 8), (uint8_t)i, 0, 1 };
    ck_assert_int_eq(buf_append(&b, e, 6), 0);
  }
  ck_assert_int_eq(buf_append_str(&b, "6:added6180:"), 0);
  for (int i = 0; i < 10; i++) {
    uint8_t e[18] = { 0x20, 1, [15] = (uint8_t)i, [17] = 1 };
    ck_assert_int_eq(buf_append(&b, e, 18), 0);
  }
  ck_assert_int_eq(buf_append_str(&b, "e"), 0);
  struct ext_pex *px = malloc(sizeof *px);
  char err[SHOAL_ERRLEN];
  uint8_t *q = exact(b.p, b.len);
  ck_assert_int_eq(ext_pex_parse(q, b.len, px, err, sizeof err), 0);
  free(q);
  ck_assert_uint_eq(px->nadded, EXT_PEX_PARSE_MAX);
  ck_assert_int_eq(px->added[EXT_PEX_PARSE_MAX - 1].addr.ss_family, AF_INET);
  ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&px->added[199].addr)->sin_addr.s_addr), 0x0a0000c7u);
  free(px);
  buf_free(&b);
}
END_TEST

/* ---- BEP 6 Fast Extension ---------------------------------------------- */

START_TEST(test_fast_builders)
{
  uint8_t o[17];
  ck_assert_uint_eq(ext_put_have_all(o), 5);
  ck_assert_mem_eq(o, "\x00\x00\x00\x01\x0e", 5);
  ck_assert_uint_eq(ext_put_have_none(o), 5);
  ck_assert_mem_eq(o, "\x00\x00\x00\x01\x0f", 5);
  ck_assert_uint_eq(ext_put_suggest(o, 0x01020304), 9);
  ck_assert_mem_eq(o, "\x00\x00\x00\x05\x0d\x01\x02\x03\x04", 9);
  ck_assert_uint_eq(ext_put_allowed_fast(o, 7), 9);
  ck_assert_mem_eq(o, "\x00\x00\x00\x05\x11\x00\x00\x00\x07", 9);
  ck_assert_uint_eq(ext_put_reject(o, 1, 16384, 16384), 17);
  ck_assert_mem_eq(o, "\x00\x00\x00\x0d\x10\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00", 17);
}
END_TEST

/* Frames a built message through wire_frame / wire_parse and parses it back. */
static int fast_via_wire(const uint8_t *msg, size_t n, uint32_t num_pieces, struct ext_fast_msg *f)
{
  size_t total;
  ck_assert_int_eq(wire_frame(msg, n, 1, &total), 1);
  ck_assert_uint_eq(total, n);
  struct wire_msg m;
  /* wire checks sizes and indices first; what it refuses never reaches ext */
  int r = wire_parse(msg, total, num_pieces ? num_pieces : WIRE_PIECES_UNKNOWN, &m);
  if (r != 0)
    return r;
  ck_assert(ext_is_fast_id(m.id));
  uint8_t *q = exact(m.payload, m.payload_len);
  r = ext_fast_parse(m.id, q, m.payload_len, num_pieces, f);
  free(q);
  return r;
}

START_TEST(test_fast_parse)
{
  uint8_t o[17];
  struct ext_fast_msg f;
  ck_assert_int_eq(fast_via_wire(o, ext_put_have_all(o), 10, &f), 0);
  ck_assert_int_eq(f.id, EXT_FAST_HAVE_ALL);
  ck_assert_int_eq(fast_via_wire(o, ext_put_have_none(o), 10, &f), 0);
  ck_assert_int_eq(f.id, EXT_FAST_HAVE_NONE);
  ck_assert_int_eq(fast_via_wire(o, ext_put_suggest(o, 9), 10, &f), 0);
  ck_assert_int_eq(f.id, EXT_FAST_SUGGEST);
  ck_assert_uint_eq(f.index, 9);
  ck_assert_int_eq(fast_via_wire(o, ext_put_allowed_fast(o, 3), 10, &f), 0);
  ck_assert_int_eq(f.id, EXT_FAST_ALLOWED_FAST);
  ck_assert_uint_eq(f.index, 3);
  ck_assert_int_eq(fast_via_wire(o, ext_put_reject(o, 4, 32768, 100), 10, &f), 0);
  ck_assert_int_eq(f.id, EXT_FAST_REJECT);
  ck_assert_uint_eq(f.index, 4);
  ck_assert_uint_eq(f.begin, 32768);
  ck_assert_uint_eq(f.length, 100);
  /* Index range; 0 pieces = not known: no check. */
  ck_assert_int_eq(fast_via_wire(o, ext_put_suggest(o, 10), 10, &f), SHOAL_EPROTO);
  ck_assert_int_eq(fast_via_wire(o, ext_put_allowed_fast(o, 10), 10, &f), SHOAL_EPROTO);
  ck_assert_int_eq(fast_via_wire(o, ext_put_reject(o, 10, 0, 1), 10, &f), SHOAL_EPROTO);
  ck_assert_int_eq(fast_via_wire(o, ext_put_allowed_fast(o, 0xffffffff), 0, &f), 0);
  ck_assert_uint_eq(f.index, 0xffffffffu);
  /* Reject lengths. */
  ck_assert_int_eq(fast_via_wire(o, ext_put_reject(o, 1, 0, 0), 10, &f), SHOAL_EPROTO);
  ck_assert_int_eq(fast_via_wire(o, ext_put_reject(o, 1, 0, WIRE_MAX_BLOCK + 1), 10, &f), SHOAL_EPROTO);
  ck_assert_int_eq(fast_via_wire(o, ext_put_reject(o, 1, 0, WIRE_MAX_BLOCK), 10, &f), 0);

  /* Exact payload sizes. */
  const uint8_t z[16] = { 0 };
  for (size_t n = 0; n <= 16; n++) {
    int want_all = n == 0 ? 0 : SHOAL_EPROTO;
    int want_idx = n == 4 ? 0 : SHOAL_EPROTO;
    int want_rej = SHOAL_EPROTO;       /* a 0 length is refused anyway */
    ck_assert_int_eq(ext_fast_parse(EXT_FAST_HAVE_ALL, z, n, 10, &f), want_all);
    ck_assert_int_eq(ext_fast_parse(EXT_FAST_HAVE_NONE, z, n, 10, &f), want_all);
    ck_assert_int_eq(ext_fast_parse(EXT_FAST_SUGGEST, z, n, 10, &f), want_idx);
    ck_assert_int_eq(ext_fast_parse(EXT_FAST_ALLOWED_FAST, z, n, 10, &f), want_idx);
    ck_assert_int_eq(ext_fast_parse(EXT_FAST_REJECT, z, n, 10, &f), want_rej);
  }
  const uint8_t rj[13] = { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0xaa };
  ck_assert_int_eq(ext_fast_parse(EXT_FAST_REJECT, rj, 11, 10, &f), SHOAL_EPROTO);
  ck_assert_int_eq(ext_fast_parse(EXT_FAST_REJECT, rj, 12, 10, &f), 0);
  ck_assert_int_eq(ext_fast_parse(EXT_FAST_REJECT, rj, 13, 10, &f), SHOAL_EPROTO);
  /* Not fast ids. */
  ck_assert_int_eq(ext_fast_parse(WIRE_HAVE, z, 4, 10, &f), UV_EINVAL);
  ck_assert_int_eq(ext_fast_parse(0x12, z, 4, 10, &f), UV_EINVAL);
  ck_assert_int_eq(ext_fast_parse(WIRE_KEEPALIVE, z, 0, 10, &f), UV_EINVAL);
  for (int id = -1; id < 256; id++)
    ck_assert_int_eq(ext_is_fast_id(id), id >= 0x0d && id <= 0x11);
}
END_TEST

START_TEST(test_allowed_fast_vector)
{
  uint8_t ih[20];
  memset(ih, 0xaa, sizeof ih);
  struct sockaddr_storage ss;
  sin4(&ss, "80.4.4.200", 6881);
  uint32_t out[EXT_ALLOWED_FAST_MAX];
  static const uint32_t want[9] = { 1059, 431, 808, 1217, 287, 376, 1188, 353, 508 };
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1313, 7, out), 7);
  ck_assert_mem_eq(out, want, 7 * sizeof *out);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1313, 9, out), 9);
  ck_assert_mem_eq(out, want, 9 * sizeof *out);
  /* Same /24: same set; v4-mapped IPv6: same set. */
  sin4(&ss, "80.4.4.1", 1);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1313, 9, out), 9);
  ck_assert_mem_eq(out, want, 9 * sizeof *out);
  sin6(&ss, "::ffff:80.4.4.200", 1);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1313, 9, out), 9);
  ck_assert_mem_eq(out, want, 9 * sizeof *out);
  /* Another /24: another set. */
  sin4(&ss, "80.4.5.200", 1);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1313, 9, out), 9);
  ck_assert(memcmp(out, want, 9 * sizeof *out) != 0);
  /* Plain IPv6 and 0 pieces refused. */
  sin6(&ss, "2001:db8::1", 1);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1313, 9, out), UV_EAFNOSUPPORT);
  sin4(&ss, "80.4.4.200", 1);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 0, 9, out), UV_EINVAL);
  /* k clamped to the piece count (all distinct) and to EXT_ALLOWED_FAST_MAX. */
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 3, 10, out), 3);
  bool seen[3] = { false, false, false };
  for (int i = 0; i < 3; i++) {
    ck_assert_uint_lt(out[i], 3);
    ck_assert(!seen[out[i]]);
    seen[out[i]] = true;
  }
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 1, 10, out), 1);
  ck_assert_uint_eq(out[0], 0);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 64, 1000, out), EXT_ALLOWED_FAST_MAX);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 100000, 1000, out), EXT_ALLOWED_FAST_MAX);
  for (int i = 0; i < EXT_ALLOWED_FAST_MAX; i++)
    for (int j = 0; j < i; j++)
      ck_assert_uint_ne(out[i], out[j]);
  ck_assert_int_eq(ext_allowed_fast((struct sockaddr *)&ss, ih, 100, 0, out), 0);
}
END_TEST

Suite *ext_suite(void)
{
  Suite *s = suite_create("ext");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_reserved);
  tcase_add_test(tc, test_hs_build_exact);
  tcase_add_test(tc, test_hs_build_errors);
  tcase_add_test(tc, test_hs_roundtrip);
  tcase_add_test(tc, test_hs_defaults_and_errors);
  tcase_add_test(tc, test_hs_hostile_values);
  tcase_add_test(tc, test_hs_client_name);
  tcase_add_test(tc, test_hs_additive);
  tcase_add_test(tc, test_md_pieces);
  tcase_add_test(tc, test_md_build);
  tcase_add_test(tc, test_md_parse_simple);
  tcase_add_test(tc, test_md_parse_data);
  tcase_add_test(tc, test_asm_in_order);
  tcase_add_test(tc, test_asm_out_of_order_dups);
  tcase_add_test(tc, test_asm_put_restart);
  tcase_add_test(tc, test_asm_bad_hash);
  tcase_add_test(tc, test_asm_pick_timeout);
  tcase_add_test(tc, test_asm_max_size);
  tcase_add_test(tc, test_pex_roundtrip);
  tcase_add_test(tc, test_pex_build_caps);
  tcase_add_test(tc, test_pex_parse_errors);
  tcase_add_test(tc, test_pex_parse_flags_port0);
  tcase_add_test(tc, test_pex_parse_cap);
  tcase_add_test(tc, test_fast_builders);
  tcase_add_test(tc, test_fast_parse);
  tcase_add_test(tc, test_allowed_fast_vector);
  suite_add_tcase(s, tc);
  return s;
}
