/* test_wire.c -- peer wire protocol: handshake, framing limits on the header, parsing, builders, streams. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/bitfield.h"
#include "common/buf.h"
#include "common/err.h"
#include "peer/wire.h"

/* ---- helpers ---------------------------------------------------------- */

/* Deterministic PRNG (xorshift64*), so a failure reproduces. */
static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9e3779b97f4a7c15ull; }
static uint64_t rng_next(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }
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

/* wire_frame over exactly `avail` bytes of p (copied to the heap). */
static int frame_exact(const uint8_t *p, size_t avail, size_t bitfield_len, size_t *total)
{
  uint8_t *q = exact(p, avail);
  int r = wire_frame(q, avail, bitfield_len, total);
  free(q);
  return r;
}

/* A 5-byte header: length prefix and id, nothing else. */
static int frame_header(uint32_t len, uint8_t id, size_t bitfield_len)
{
  uint8_t h[5];
  put_u32be(h, len);
  h[4] = id;
  size_t total = 12345;
  int r = frame_exact(h, sizeof h, bitfield_len, &total);
  if (r == 1)
    ck_assert_uint_eq(total, (size_t)len + 4);
  return r;
}

/* Every proper prefix of a valid message needs more; the whole message (and
 * the whole message with more bytes behind it) frames to exactly its size. */
static void check_frames_exactly(const uint8_t *msg, size_t n, size_t bitfield_len)
{
  size_t total;
  for (size_t k = 0; k < n; k++) {
    total = 777;
    ck_assert_msg(frame_exact(msg, k, bitfield_len, &total) == 0, "prefix %zu of %zu not need-more", k, n);
  }
  total = 0;
  ck_assert_int_eq(frame_exact(msg, n, bitfield_len, &total), 1);
  ck_assert_uint_eq(total, n);
  uint8_t *more = malloc(n + 7);
  ck_assert_ptr_nonnull(more);
  memcpy(more, msg, n);
  memset(more + n, 0xee, 7);
  total = 0;
  ck_assert_int_eq(wire_frame(more, n + 7, bitfield_len, &total), 1);
  ck_assert_uint_eq(total, n);
  free(more);
}

static const uint8_t IH[20] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32,
                                0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x00, 0xff, 0x11, 0xee };
static const uint8_t PID[20] = { '-', 'S', 'H', '0', '0', '0', '1', '-', 'a', 'b',
                                 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l' };
static const uint8_t RSV[8] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x05 };

/* ---- handshake --------------------------------------------------------- */

START_TEST(test_handshake_bytes)
{
  uint8_t out[WIRE_HANDSHAKE_LEN];
  memset(out, 0xcc, sizeof out);
  wire_handshake_write(out, RSV, IH, PID);
  uint8_t want[68];
  want[0] = 19;
  memcpy(want + 1, "BitTorrent protocol", 19);
  memcpy(want + 20, RSV, 8);
  memcpy(want + 28, IH, 20);
  memcpy(want + 48, PID, 20);
  ck_assert_mem_eq(out, want, 68);
  ck_assert_uint_eq(WIRE_HANDSHAKE_LEN, 68);
}
END_TEST

START_TEST(test_handshake_roundtrip)
{
  uint8_t out[WIRE_HANDSHAKE_LEN];
  wire_handshake_write(out, RSV, IH, PID);
  uint8_t *in = exact(out, sizeof out);
  struct wire_handshake h;
  memset(&h, 0, sizeof h);
  ck_assert_int_eq(wire_handshake_parse(in, &h), 0);
  ck_assert_mem_eq(h.reserved, RSV, 8);
  ck_assert_mem_eq(h.infohash, IH, 20);
  ck_assert_mem_eq(h.peer_id, PID, 20);
  free(in);
}
END_TEST

START_TEST(test_handshake_bad)
{
  uint8_t good[WIRE_HANDSHAKE_LEN];
  wire_handshake_write(good, RSV, IH, PID);
  struct wire_handshake h;
  uint8_t m[WIRE_HANDSHAKE_LEN];

  /* Wrong pstrlen. */
  static const uint8_t lens[] = { 0, 1, 18, 20, 68, 0x93, 255 };
  for (size_t i = 0; i < sizeof lens; i++) {
    memcpy(m, good, sizeof m);
    m[0] = lens[i];
    ck_assert_int_eq(wire_handshake_parse(m, &h), SHOAL_EPROTO);
  }
  /* One changed byte anywhere in the protocol string. */
  for (size_t pos = 1; pos < 20; pos++) {
    memcpy(m, good, sizeof m);
    m[pos] ^= 0x20;
    ck_assert_msg(wire_handshake_parse(m, &h) == SHOAL_EPROTO, "pstr byte %zu changed but accepted", pos);
  }
  /* Another protocol entirely. */
  memcpy(m, good, sizeof m);
  memcpy(m + 1, "BitTorrent protocoL", 19);
  ck_assert_int_eq(wire_handshake_parse(m, &h), SHOAL_EPROTO);
  /* The rest (reserved, infohash, peer id) is free-form. */
  memcpy(m, good, sizeof m);
  memset(m + 20, 0xff, 48);
  ck_assert_int_eq(wire_handshake_parse(m, &h), 0);
  for (size_t i = 0; i < 8; i++)
    ck_assert_uint_eq(h.reserved[i], 0xff);
}
END_TEST

/* ---- wire_frame -------------------------------------------------------- */

START_TEST(test_frame_keepalive)
{
  const uint8_t ka[4] = { 0, 0, 0, 0 };
  check_frames_exactly(ka, sizeof ka, 125);
  /* Two keep-alives back to back: the first is 4 bytes. */
  const uint8_t two[8] = { 0 };
  size_t total = 0;
  ck_assert_int_eq(wire_frame(two, sizeof two, 0, &total), 1);
  ck_assert_uint_eq(total, 4);
}
END_TEST

START_TEST(test_frame_prefixes)
{
  /* One valid message of each kind; bitfield_len 3 (e.g. 20 pieces). */
  const size_t bl = 3;
  const uint8_t choke[] = { 0, 0, 0, 1, WIRE_CHOKE };
  const uint8_t notint[] = { 0, 0, 0, 1, WIRE_NOT_INTERESTED };
  const uint8_t have[] = { 0, 0, 0, 5, WIRE_HAVE, 0, 0, 0, 7 };
  const uint8_t bitf[] = { 0, 0, 0, 4, WIRE_BITFIELD, 0xff, 0x0f, 0xf0 };
  const uint8_t req[] = { 0, 0, 0, 13, WIRE_REQUEST, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0 };
  const uint8_t cancel[] = { 0, 0, 0, 13, WIRE_CANCEL, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0 };
  const uint8_t port[] = { 0, 0, 0, 3, WIRE_PORT, 0x1a, 0xe1 };
  const uint8_t ext[] = { 0, 0, 0, 4, WIRE_EXTENDED, 0, 'd', 'e' };
  const uint8_t unk[] = { 0, 0, 0, 4, 42, 'x', 'y', 'z' };
  const uint8_t unk0[] = { 0, 0, 0, 1, 12 };
  check_frames_exactly(choke, sizeof choke, bl);
  check_frames_exactly(notint, sizeof notint, bl);
  check_frames_exactly(have, sizeof have, bl);
  check_frames_exactly(bitf, sizeof bitf, bl);
  check_frames_exactly(req, sizeof req, bl);
  check_frames_exactly(cancel, sizeof cancel, bl);
  check_frames_exactly(port, sizeof port, bl);
  check_frames_exactly(ext, sizeof ext, bl);
  check_frames_exactly(unk, sizeof unk, bl);
  check_frames_exactly(unk0, sizeof unk0, bl);

  /* A full 16 KiB piece: every prefix up to 16396 bytes needs more. */
  size_t n = 4 + 9 + WIRE_MAX_BLOCK;
  uint8_t *piece = malloc(n);
  ck_assert_ptr_nonnull(piece);
  wire_put_piece_header(piece, 3, 0x4000, WIRE_MAX_BLOCK);
  memset(piece + 13, 0x5a, WIRE_MAX_BLOCK);
  check_frames_exactly(piece, n, bl);
  free(piece);

  /* The largest extension message and the largest unknown message. */
  n = 4 + 1 + WIRE_MAX_EXTENDED;
  uint8_t *big = calloc(1, n);
  ck_assert_ptr_nonnull(big);
  put_u32be(big, 1 + WIRE_MAX_EXTENDED);
  big[4] = WIRE_EXTENDED;
  size_t total = 0;
  ck_assert_int_eq(wire_frame(big, n - 1, bl, &total), 0);
  ck_assert_int_eq(wire_frame(big, n, bl, &total), 1);
  ck_assert_uint_eq(total, n);
  put_u32be(big, 1 + WIRE_MAX_UNKNOWN);
  big[4] = 200;
  n = 4 + 1 + WIRE_MAX_UNKNOWN;
  ck_assert_int_eq(wire_frame(big, n - 1, bl, &total), 0);
  ck_assert_int_eq(wire_frame(big, n, bl, &total), 1);
  ck_assert_uint_eq(total, n);
  free(big);
}
END_TEST

START_TEST(test_frame_header_piece)
{
  /* PIECE: id + index + begin + 1..16384 data bytes. */
  ck_assert_int_eq(frame_header(9 + WIRE_MAX_BLOCK + 1, WIRE_PIECE, 3), SHOAL_ETOOBIG);
  ck_assert_int_eq(frame_header(0xffffffffu, WIRE_PIECE, 3), SHOAL_ETOOBIG);
  ck_assert_int_eq(frame_header(0x80000000u, WIRE_PIECE, 3), SHOAL_ETOOBIG);
  ck_assert_int_eq(frame_header(9 + WIRE_MAX_BLOCK, WIRE_PIECE, 3), 0);
  ck_assert_int_eq(frame_header(10, WIRE_PIECE, 3), 0);
  ck_assert_int_eq(frame_header(9, WIRE_PIECE, 3), SHOAL_EPROTO);  /* empty data */
  ck_assert_int_eq(frame_header(8, WIRE_PIECE, 3), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(1, WIRE_PIECE, 3), SHOAL_EPROTO);
}
END_TEST

START_TEST(test_frame_header_fixed)
{
  /* REQUEST and CANCEL: exactly 13. */
  static const uint8_t rc[] = { WIRE_REQUEST, WIRE_CANCEL };
  for (size_t i = 0; i < sizeof rc; i++) {
    ck_assert_int_eq(frame_header(13, rc[i], 3), 0);
    ck_assert_int_eq(frame_header(12, rc[i], 3), SHOAL_EPROTO);
    ck_assert_int_eq(frame_header(1, rc[i], 3), SHOAL_EPROTO);
    ck_assert_int_eq(frame_header(14, rc[i], 3), SHOAL_ETOOBIG);
    ck_assert_int_eq(frame_header(17, rc[i], 3), SHOAL_ETOOBIG);
    ck_assert_int_eq(frame_header(0xffffffffu, rc[i], 3), SHOAL_ETOOBIG);
  }
  /* HAVE: exactly 5. */
  ck_assert_int_eq(frame_header(5, WIRE_HAVE, 3), 0);
  ck_assert_int_eq(frame_header(4, WIRE_HAVE, 3), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(1, WIRE_HAVE, 3), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(6, WIRE_HAVE, 3), SHOAL_ETOOBIG);
  /* PORT: exactly 3. */
  ck_assert_int_eq(frame_header(3, WIRE_PORT, 3), 0);
  ck_assert_int_eq(frame_header(2, WIRE_PORT, 3), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(4, WIRE_PORT, 3), SHOAL_ETOOBIG);
  /* CHOKE .. NOT_INTERESTED: exactly 1, so a payload is refused on the header. */
  for (uint8_t id = WIRE_CHOKE; id <= WIRE_NOT_INTERESTED; id++) {
    ck_assert_int_eq(frame_header(1, id, 3), 1);
    ck_assert_int_eq(frame_header(2, id, 3), SHOAL_ETOOBIG);
    ck_assert_int_eq(frame_header(5, id, 3), SHOAL_ETOOBIG);
    ck_assert_int_eq(frame_header(0xffffffffu, id, 3), SHOAL_ETOOBIG);
  }
}
END_TEST

START_TEST(test_frame_header_bitfield)
{
  /* 1000 pieces: 125 bytes, so the length must be exactly 126. */
  const size_t bl = bitfield_bytes(1000);
  ck_assert_uint_eq(bl, 125);
  ck_assert_int_eq(frame_header(126, WIRE_BITFIELD, bl), 0);
  ck_assert_int_eq(frame_header(125, WIRE_BITFIELD, bl), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(1, WIRE_BITFIELD, bl), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(127, WIRE_BITFIELD, bl), SHOAL_ETOOBIG);
  ck_assert_int_eq(frame_header(0xffffffffu, WIRE_BITFIELD, bl), SHOAL_ETOOBIG);
  /* 1001 pieces: 126 bytes; the 126-byte bitfield of 1000 pieces is now too short. */
  ck_assert_int_eq(frame_header(126, WIRE_BITFIELD, bitfield_bytes(1001)), SHOAL_EPROTO);
  ck_assert_int_eq(frame_header(127, WIRE_BITFIELD, bitfield_bytes(1001)), 0);
}
END_TEST

START_TEST(test_frame_header_extended_unknown)
{
  ck_assert_int_eq(frame_header(1 + WIRE_MAX_EXTENDED + 1, WIRE_EXTENDED, 3), SHOAL_ETOOBIG);
  ck_assert_int_eq(frame_header(0xffffffffu, WIRE_EXTENDED, 3), SHOAL_ETOOBIG);
  ck_assert_int_eq(frame_header(1 + WIRE_MAX_EXTENDED, WIRE_EXTENDED, 3), 0);
  ck_assert_int_eq(frame_header(2, WIRE_EXTENDED, 3), 0);
  ck_assert_int_eq(frame_header(1, WIRE_EXTENDED, 3), SHOAL_EPROTO); /* no extension id */

  /* Ids BEP 3 does not define (and the ones shoal does not handle), 255 included. */
  static const uint8_t unk[] = { 10, 11, 12, 18, 19, 21, 100, 254, 255 };
  for (size_t i = 0; i < sizeof unk; i++) {
    ck_assert_int_eq(frame_header(1 + WIRE_MAX_UNKNOWN + 1, unk[i], 3), SHOAL_ETOOBIG);
    ck_assert_int_eq(frame_header(0xffffffffu, unk[i], 3), SHOAL_ETOOBIG);
    ck_assert_int_eq(frame_header(1 + WIRE_MAX_UNKNOWN, unk[i], 3), 0);
    ck_assert_int_eq(frame_header(1, unk[i], 3), 1);
  }
}
END_TEST

START_TEST(test_frame_need_header)
{
  /* With fewer than 5 bytes nothing is decided, even for a hopeless length. */
  const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
  size_t total = 99;
  for (size_t k = 0; k <= 4; k++)
    ck_assert_int_eq(frame_exact(huge, k, 3, &total), 0);
  ck_assert_uint_eq(total, 99);
}
END_TEST

/* ---- wire_parse -------------------------------------------------------- */

START_TEST(test_parse_keepalive_simple)
{
  struct wire_msg m;
  const uint8_t ka[4] = { 0 };
  ck_assert_int_eq(wire_parse(ka, 4, 10, &m), 0);
  ck_assert_int_eq(m.id, WIRE_KEEPALIVE);
  ck_assert_ptr_null(m.payload);
  ck_assert_uint_eq(m.payload_len, 0);

  for (uint8_t id = WIRE_CHOKE; id <= WIRE_NOT_INTERESTED; id++) {
    uint8_t s[5] = { 0, 0, 0, 1, id };
    ck_assert_int_eq(wire_parse(s, 5, 10, &m), 0);
    ck_assert_uint_eq(m.id, id);
    ck_assert_uint_eq(m.payload_len, 0);
    /* With a payload: refused. */
    uint8_t t[6] = { 0, 0, 0, 2, id, 0 };
    ck_assert_int_eq(wire_parse(t, 6, 10, &m), SHOAL_EPROTO);
  }
}
END_TEST

START_TEST(test_parse_length_mismatch)
{
  struct wire_msg m;
  /* The length prefix must describe exactly total - 4 bytes. */
  const uint8_t have[10] = { 0, 0, 0, 5, WIRE_HAVE, 0, 0, 0, 1, 0 };
  ck_assert_int_eq(wire_parse(have, 9, 10, &m), 0);
  ck_assert_int_eq(wire_parse(have, 10, 10, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(have, 8, 10, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(have, 5, 10, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(have, 4, 10, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(have, 3, 10, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(have, 0, 10, &m), SHOAL_EPROTO);
  const uint8_t notka[5] = { 0, 0, 0, 0, 0 };
  ck_assert_int_eq(wire_parse(notka, 5, 10, &m), SHOAL_EPROTO);
}
END_TEST

START_TEST(test_parse_have)
{
  struct wire_msg m;
  uint8_t h[9] = { 0, 0, 0, 5, WIRE_HAVE, 0, 0, 0x03, 0xe7 }; /* 999 */
  ck_assert_int_eq(wire_parse(h, 9, 1000, &m), 0);
  ck_assert_uint_eq(m.id, WIRE_HAVE);
  ck_assert_uint_eq(m.index, 999);
  /* index == num_pieces and beyond: refused. */
  ck_assert_int_eq(wire_parse(h, 9, 999, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(h, 9, 0, &m), SHOAL_EPROTO);
  put_u32be(h + 5, 0xffffffffu);
  ck_assert_int_eq(wire_parse(h, 9, 1000, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(h, 9, 0xfffffffeu, &m), SHOAL_EPROTO);
  /* while the piece count is unknown (magnet metadata) any index passes */
  ck_assert_int_eq(wire_parse(h, 9, WIRE_PIECES_UNKNOWN, &m), 0);
  ck_assert_uint_eq(m.index, 0xffffffffu);
  put_u32be(h + 5, 0);
  ck_assert_int_eq(wire_parse(h, 9, 1, &m), 0);
  ck_assert_uint_eq(m.index, 0);
  /* Short and long payloads. */
  const uint8_t s3[8] = { 0, 0, 0, 4, WIRE_HAVE, 0, 0, 0 };
  ck_assert_int_eq(wire_parse(s3, 8, 1000, &m), SHOAL_EPROTO);
  const uint8_t s5[10] = { 0, 0, 0, 6, WIRE_HAVE, 0, 0, 0, 0, 0 };
  ck_assert_int_eq(wire_parse(s5, 10, 1000, &m), SHOAL_EPROTO);
}
END_TEST

START_TEST(test_parse_bitfield)
{
  struct wire_msg m;
  /* 12 pieces: 2 bytes. */
  const uint8_t b[7] = { 0, 0, 0, 3, WIRE_BITFIELD, 0xa5, 0xf0 };
  ck_assert_int_eq(wire_parse(b, 7, 12, &m), 0);
  ck_assert_uint_eq(m.id, WIRE_BITFIELD);
  ck_assert_ptr_eq(m.payload, b + 5);
  ck_assert_uint_eq(m.payload_len, 2);
  /* Wrong size for this torrent. */
  ck_assert_int_eq(wire_parse(b, 7, 8, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(b, 7, 17, &m), SHOAL_EPROTO);
  ck_assert_int_eq(wire_parse(b, 7, 16, &m), 0);
  ck_assert_int_eq(wire_parse(b, 7, 9, &m), 0);

  /* Spare bits set: wire only checks the size (its header promises no more);
   * bitfield_load is the one that refuses them. */
  const uint8_t sp[7] = { 0, 0, 0, 3, WIRE_BITFIELD, 0xff, 0xff };
  ck_assert_int_eq(wire_parse(sp, 7, 12, &m), 0);
  ck_assert_uint_eq(m.payload_len, 2);
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 12), 0);
  ck_assert_int_eq(bitfield_load(&bf, m.payload, m.payload_len), UV_EINVAL);
  ck_assert_uint_eq(bf.count, 0);
  ck_assert_int_eq(wire_parse(b, 7, 12, &m), 0);
  ck_assert_int_eq(bitfield_load(&bf, m.payload, m.payload_len), 0);
  ck_assert_uint_eq(bf.count, 8);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_parse_request_cancel)
{
  struct wire_msg m;
  static const uint8_t ids[] = { WIRE_REQUEST, WIRE_CANCEL };
  for (size_t i = 0; i < sizeof ids; i++) {
    uint8_t r[17];
    wire_put_request(r, ids[i], 41, 0x8000, 0x4000);
    ck_assert_int_eq(wire_parse(r, 17, 42, &m), 0);
    ck_assert_uint_eq(m.id, ids[i]);
    ck_assert_uint_eq(m.index, 41);
    ck_assert_uint_eq(m.begin, 0x8000);
    ck_assert_uint_eq(m.length, 0x4000);
    /* index out of range */
    ck_assert_int_eq(wire_parse(r, 17, 41, &m), SHOAL_EPROTO);
    /* lengths 0 and 16385 refused, 1 and 16384 accepted */
    wire_put_request(r, ids[i], 0, 0, 0);
    ck_assert_int_eq(wire_parse(r, 17, 42, &m), SHOAL_EPROTO);
    wire_put_request(r, ids[i], 0, 0, WIRE_MAX_BLOCK + 1);
    ck_assert_int_eq(wire_parse(r, 17, 42, &m), SHOAL_EPROTO);
    wire_put_request(r, ids[i], 0, 0, 0xffffffffu);
    ck_assert_int_eq(wire_parse(r, 17, 42, &m), SHOAL_EPROTO);
    wire_put_request(r, ids[i], 0, 0, 1);
    ck_assert_int_eq(wire_parse(r, 17, 42, &m), 0);
    ck_assert_uint_eq(m.length, 1);
    wire_put_request(r, ids[i], 0, 0xffffffffu, WIRE_MAX_BLOCK);
    ck_assert_int_eq(wire_parse(r, 17, 42, &m), 0);
    ck_assert_uint_eq(m.length, WIRE_MAX_BLOCK);
    ck_assert_uint_eq(m.begin, 0xffffffffu);
    /* 12 and 14 payload bytes */
    uint8_t s[18];
    memset(s, 0, sizeof s);
    put_u32be(s, 12);
    s[4] = ids[i];
    put_u32be(s + 13, 0); /* leaves a length of 1 in the would-be third field */
    s[15] = 0x01;
    ck_assert_int_eq(wire_parse(s, 16, 42, &m), SHOAL_EPROTO);
    memset(s, 0, sizeof s);
    put_u32be(s, 14);
    s[4] = ids[i];
    s[16] = 1;
    ck_assert_int_eq(wire_parse(s, 18, 42, &m), SHOAL_EPROTO);
  }
}
END_TEST

START_TEST(test_parse_piece)
{
  struct wire_msg m;
  size_t n = 13 + WIRE_MAX_BLOCK + 1;
  uint8_t *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)i;

  /* 16 KiB of data. */
  wire_put_piece_header(p, 5, 0x4000, WIRE_MAX_BLOCK);
  ck_assert_int_eq(wire_parse(p, 13 + WIRE_MAX_BLOCK, 6, &m), 0);
  ck_assert_uint_eq(m.id, WIRE_PIECE);
  ck_assert_uint_eq(m.index, 5);
  ck_assert_uint_eq(m.begin, 0x4000);
  ck_assert_uint_eq(m.length, WIRE_MAX_BLOCK);
  ck_assert_ptr_eq(m.payload, p + 13);
  ck_assert_uint_eq(m.payload_len, WIRE_MAX_BLOCK);
  /* index out of range */
  ck_assert_int_eq(wire_parse(p, 13 + WIRE_MAX_BLOCK, 5, &m), SHOAL_EPROTO);
  /* one byte too many */
  wire_put_piece_header(p, 5, 0, WIRE_MAX_BLOCK + 1);
  ck_assert_int_eq(wire_parse(p, n, 6, &m), SHOAL_EPROTO);
  /* one byte */
  wire_put_piece_header(p, 0, 7, 1);
  ck_assert_int_eq(wire_parse(p, 14, 6, &m), 0);
  ck_assert_uint_eq(m.length, 1);
  ck_assert_uint_eq(m.payload_len, 1);
  ck_assert_uint_eq(m.payload[0], 13);
  /* empty data: refused */
  wire_put_piece_header(p, 0, 0, 0);
  ck_assert_int_eq(wire_parse(p, 13, 6, &m), SHOAL_EPROTO);
  /* no room for begin */
  put_u32be(p, 5);
  ck_assert_int_eq(wire_parse(p, 9, 6, &m), SHOAL_EPROTO);
  free(p);
}
END_TEST

START_TEST(test_parse_port)
{
  struct wire_msg m;
  const uint8_t p[7] = { 0, 0, 0, 3, WIRE_PORT, 0x1a, 0xe1 };
  ck_assert_int_eq(wire_parse(p, 7, 1, &m), 0);
  ck_assert_uint_eq(m.id, WIRE_PORT);
  ck_assert_uint_eq(m.port, 6881);
  const uint8_t p1[6] = { 0, 0, 0, 2, WIRE_PORT, 0x1a };
  ck_assert_int_eq(wire_parse(p1, 6, 1, &m), SHOAL_EPROTO);
  const uint8_t p3[8] = { 0, 0, 0, 4, WIRE_PORT, 0x1a, 0xe1, 0 };
  ck_assert_int_eq(wire_parse(p3, 8, 1, &m), SHOAL_EPROTO);
}
END_TEST

START_TEST(test_parse_extended)
{
  struct wire_msg m;
  const uint8_t e[11] = { 0, 0, 0, 7, WIRE_EXTENDED, 0, 'd', '1', ':', 'm', 'e' };
  ck_assert_int_eq(wire_parse(e, 11, 1, &m), 0);
  ck_assert_uint_eq(m.id, WIRE_EXTENDED);
  ck_assert_uint_eq(m.ext_id, 0);
  ck_assert_ptr_eq(m.payload, e + 6);
  ck_assert_uint_eq(m.payload_len, 5);
  /* Extension id only, no payload. */
  const uint8_t e1[6] = { 0, 0, 0, 2, WIRE_EXTENDED, 3 };
  ck_assert_int_eq(wire_parse(e1, 6, 1, &m), 0);
  ck_assert_uint_eq(m.ext_id, 3);
  ck_assert_uint_eq(m.payload_len, 0);
  /* No extension id: refused. */
  const uint8_t e0[5] = { 0, 0, 0, 1, WIRE_EXTENDED };
  ck_assert_int_eq(wire_parse(e0, 5, 1, &m), SHOAL_EPROTO);
}
END_TEST

START_TEST(test_parse_unknown)
{
  struct wire_msg m;
  const uint8_t u[8] = { 0, 0, 0, 4, 42, 'x', 'y', 'z' };
  ck_assert_int_eq(wire_parse(u, 8, 1, &m), 0);
  ck_assert_uint_eq(m.id, 42);
  ck_assert_ptr_eq(m.payload, u + 5);
  ck_assert_uint_eq(m.payload_len, 3);
  ck_assert_mem_eq(m.payload, "xyz", 3);
  const uint8_t u0[5] = { 0, 0, 0, 1, 12 };
  ck_assert_int_eq(wire_parse(u0, 5, 1, &m), 0);
  ck_assert_uint_eq(m.id, 12);
  ck_assert_uint_eq(m.payload_len, 0);
}
END_TEST

/* ---- builders ---------------------------------------------------------- */

START_TEST(test_builders)
{
  uint8_t out[32];

  memset(out, 0xcc, sizeof out);
  ck_assert_uint_eq(wire_put_keepalive(out), 4);
  const uint8_t ka[] = { 0x00, 0x00, 0x00, 0x00 };
  ck_assert_mem_eq(out, ka, sizeof ka);
  ck_assert_uint_eq(out[4], 0xcc);

  static const struct { uint8_t id; uint8_t want[5]; } simple[] = {
    { WIRE_CHOKE, { 0x00, 0x00, 0x00, 0x01, 0x00 } },
    { WIRE_UNCHOKE, { 0x00, 0x00, 0x00, 0x01, 0x01 } },
    { WIRE_INTERESTED, { 0x00, 0x00, 0x00, 0x01, 0x02 } },
    { WIRE_NOT_INTERESTED, { 0x00, 0x00, 0x00, 0x01, 0x03 } },
  };
  for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
    memset(out, 0xcc, sizeof out);
    ck_assert_uint_eq(wire_put_simple(out, simple[i].id), 5);
    ck_assert_mem_eq(out, simple[i].want, 5);
    ck_assert_uint_eq(out[5], 0xcc);
  }

  memset(out, 0xcc, sizeof out);
  ck_assert_uint_eq(wire_put_have(out, 0x01020304u), 9);
  const uint8_t have[] = { 0x00, 0x00, 0x00, 0x05, 0x04, 0x01, 0x02, 0x03, 0x04 };
  ck_assert_mem_eq(out, have, sizeof have);
  ck_assert_uint_eq(out[9], 0xcc);

  memset(out, 0xcc, sizeof out);
  ck_assert_uint_eq(wire_put_request(out, WIRE_REQUEST, 1, 0x4000, 0x4000), 17);
  const uint8_t req[] = { 0x00, 0x00, 0x00, 0x0d, 0x06, 0x00, 0x00, 0x00, 0x01,
                          0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x40, 0x00 };
  ck_assert_mem_eq(out, req, sizeof req);
  ck_assert_uint_eq(out[17], 0xcc);

  memset(out, 0xcc, sizeof out);
  ck_assert_uint_eq(wire_put_request(out, WIRE_CANCEL, 0xa0b0c0d0u, 0x11223344u, 0x55667788u), 17);
  const uint8_t can[] = { 0x00, 0x00, 0x00, 0x0d, 0x08, 0xa0, 0xb0, 0xc0, 0xd0,
                          0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
  ck_assert_mem_eq(out, can, sizeof can);

  memset(out, 0xcc, sizeof out);
  ck_assert_uint_eq(wire_put_piece_header(out, 2, 0x8000, 0x4000), 13);
  const uint8_t pc[] = { 0x00, 0x00, 0x40, 0x09, 0x07, 0x00, 0x00, 0x00, 0x02,
                         0x00, 0x00, 0x80, 0x00 };
  ck_assert_mem_eq(out, pc, sizeof pc);
  ck_assert_uint_eq(out[13], 0xcc);
  ck_assert_uint_eq(wire_put_piece_header(out, 0, 0, 1), 13);
  const uint8_t pc1[] = { 0x00, 0x00, 0x00, 0x0a, 0x07, 0, 0, 0, 0, 0, 0, 0, 0 };
  ck_assert_mem_eq(out, pc1, sizeof pc1);
}
END_TEST

START_TEST(test_build_bitfield)
{
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 10), 0);
  bitfield_set(&bf, 0);
  bitfield_set(&bf, 9);
  struct buf b;
  buf_init(&b, 64);
  ck_assert_int_eq(buf_append_u8(&b, 0x99), 0); /* appends after what is there */
  ck_assert_int_eq(wire_put_bitfield(&b, &bf), 0);
  const uint8_t want[] = { 0x99, 0x00, 0x00, 0x00, 0x03, 0x05, 0x80, 0x40 };
  ck_assert_uint_eq(b.len, sizeof want);
  ck_assert_mem_eq(b.p, want, sizeof want);
  /* It parses back to the same bits. */
  struct wire_msg m;
  ck_assert_int_eq(wire_parse(b.p + 1, b.len - 1, 10, &m), 0);
  ck_assert_uint_eq(m.id, WIRE_BITFIELD);
  ck_assert_mem_eq(m.payload, bf.bits, 2);
  buf_free(&b);
  bitfield_free(&bf);
}
END_TEST

START_TEST(test_build_bitfield_past_max)
{
  /* A bitfield message that does not fit is refused as a whole: a partial
   * message left in an outgoing buffer would corrupt the stream. */
  struct bitfield bf;
  ck_assert_int_eq(bitfield_init(&bf, 16), 0); /* 4 + 1 + 2 = 7 bytes */
  bitfield_set_all(&bf);
  for (size_t max = 0; max < 7; max++) {
    struct buf b;
    buf_init(&b, max);
    ck_assert_int_eq(wire_put_bitfield(&b, &bf), UV_E2BIG);
    ck_assert_msg(b.len == 0, "max %zu: %zu bytes of a refused message left in the buffer", max, b.len);
    buf_free(&b);
  }
  struct buf b;
  buf_init(&b, 7);
  ck_assert_int_eq(wire_put_bitfield(&b, &bf), 0);
  const uint8_t want[] = { 0x00, 0x00, 0x00, 0x03, 0x05, 0xff, 0xff };
  ck_assert_mem_eq(b.p, want, sizeof want);
  buf_free(&b);
  bitfield_free(&bf);
}
END_TEST

/* ---- streams ----------------------------------------------------------- */

struct expect {
  int id;                /* enum wire_id, or WIRE_KEEPALIVE */
  uint32_t index, begin, length;
  uint16_t port;
  uint8_t ext_id;
  size_t off, len;       /* payload in the stream */
};

#define STREAM_PIECES 1003u /* 126-byte bitfield with 5 spare bits */

/* Appends one random valid message to s and describes it in e. */
static void gen_message(struct buf *s, struct expect *e)
{
  uint8_t tmp[17];
  memset(e, 0, sizeof *e);
  switch (rng_below(12)) {
  case 0:
    e->id = WIRE_KEEPALIVE;
    ck_assert_int_eq(buf_append(s, tmp, wire_put_keepalive(tmp)), 0);
    break;
  case 1:
    e->id = (uint8_t)rng_below(4);
    ck_assert_int_eq(buf_append(s, tmp, wire_put_simple(tmp, e->id)), 0);
    break;
  case 2:
    e->id = WIRE_HAVE;
    e->index = rng_below(STREAM_PIECES);
    ck_assert_int_eq(buf_append(s, tmp, wire_put_have(tmp, e->index)), 0);
    break;
  case 3: {
    struct bitfield bf;
    ck_assert_int_eq(bitfield_init(&bf, STREAM_PIECES), 0);
    for (uint32_t i = 0; i < STREAM_PIECES; i++)
      if (rng_next() & 1)
        bitfield_set(&bf, i);
    e->id = WIRE_BITFIELD;
    e->off = s->len + 5;
    e->len = bitfield_bytes(STREAM_PIECES);
    ck_assert_int_eq(wire_put_bitfield(s, &bf), 0);
    bitfield_free(&bf);
    break;
  }
  case 4:
  case 5:
    e->id = rng_below(2) ? WIRE_REQUEST : WIRE_CANCEL;
    e->index = rng_below(STREAM_PIECES);
    e->begin = (uint32_t)rng_next();
    e->length = 1 + rng_below(WIRE_MAX_BLOCK);
    ck_assert_int_eq(buf_append(s, tmp, wire_put_request(tmp, e->id, e->index, e->begin, e->length)), 0);
    break;
  case 6:
  case 7: {
    e->id = WIRE_PIECE;
    e->index = rng_below(STREAM_PIECES);
    e->begin = rng_below(64) * WIRE_MAX_BLOCK;
    e->length = rng_below(4) ? WIRE_MAX_BLOCK : 1 + rng_below(WIRE_MAX_BLOCK);
    ck_assert_int_eq(buf_append(s, tmp, wire_put_piece_header(tmp, e->index, e->begin, e->length)), 0);
    e->off = s->len;
    e->len = e->length;
    ck_assert_int_eq(buf_reserve(s, e->len), 0);
    rng_fill(s->p + s->len, e->len);
    s->len += e->len;
    break;
  }
  case 8:
    e->id = WIRE_PORT;
    e->port = (uint16_t)rng_next();
    ck_assert_int_eq(buf_append_u32be(s, 3), 0);
    ck_assert_int_eq(buf_append_u8(s, WIRE_PORT), 0);
    ck_assert_int_eq(buf_append_u16be(s, e->port), 0);
    break;
  case 9:
  case 10: {
    e->id = WIRE_EXTENDED;
    e->ext_id = (uint8_t)rng_next();
    e->len = rng_below(16) ? rng_below(300) : rng_below(WIRE_MAX_EXTENDED + 1);
    ck_assert_int_eq(buf_append_u32be(s, (uint32_t)(2 + e->len)), 0);
    ck_assert_int_eq(buf_append_u8(s, WIRE_EXTENDED), 0);
    ck_assert_int_eq(buf_append_u8(s, e->ext_id), 0);
    e->off = s->len;
    ck_assert_int_eq(buf_reserve(s, e->len), 0);
    rng_fill(s->p + s->len, e->len);
    s->len += e->len;
    break;
  }
  default: {
    static const uint8_t unk[] = { 10, 11, 12, 18, 19, 21, 64, 128, 254 };
    e->id = unk[rng_below(sizeof unk)];
    e->len = rng_below(16) ? rng_below(100) : 1 + rng_below(WIRE_MAX_UNKNOWN);
    if (e->len > WIRE_MAX_UNKNOWN)
      e->len = WIRE_MAX_UNKNOWN;
    ck_assert_int_eq(buf_append_u32be(s, (uint32_t)(1 + e->len)), 0);
    ck_assert_int_eq(buf_append_u8(s, e->id), 0);
    e->off = s->len;
    ck_assert_int_eq(buf_reserve(s, e->len), 0);
    rng_fill(s->p + s->len, e->len);
    s->len += e->len;
    break;
  }
  }
}

static void check_msg(const struct wire_msg *m, const struct expect *e, const struct buf *s, size_t k)
{
  ck_assert_msg(m->id == e->id, "message %zu: id %d, want %d", k, m->id, e->id);
  switch (e->id) {
  case WIRE_HAVE:
    ck_assert_uint_eq(m->index, e->index);
    break;
  case WIRE_REQUEST:
  case WIRE_CANCEL:
    ck_assert_uint_eq(m->index, e->index);
    ck_assert_uint_eq(m->begin, e->begin);
    ck_assert_uint_eq(m->length, e->length);
    break;
  case WIRE_PIECE:
    ck_assert_uint_eq(m->index, e->index);
    ck_assert_uint_eq(m->begin, e->begin);
    ck_assert_uint_eq(m->length, e->length);
    break;
  case WIRE_PORT:
    ck_assert_uint_eq(m->port, e->port);
    break;
  case WIRE_EXTENDED:
    ck_assert_uint_eq(m->ext_id, e->ext_id);
    break;
  default:
    break;
  }
  ck_assert_uint_eq(m->payload_len, e->len);
  if (e->len)
    ck_assert_msg(memcmp(m->payload, s->p + e->off, e->len) == 0, "message %zu: payload differs", k);
}

/* Feeds stream s to a receive buffer in random chunks, framing and parsing as
 * a connection would, and checks each message against want[]. */
static void feed_stream(const struct buf *s, const struct expect *want, size_t count, uint32_t max_chunk)
{
  struct buf rx;
  buf_init(&rx, 4 + 1 + WIRE_MAX_EXTENDED + max_chunk);
  size_t fed = 0, k = 0;
  const size_t bl = bitfield_bytes(STREAM_PIECES);
  while (fed < s->len) {
    size_t chunk = 1 + rng_below(rng_below(4) ? 64 : max_chunk);
    if (chunk > s->len - fed)
      chunk = s->len - fed;
    ck_assert_int_eq(buf_append(&rx, s->p + fed, chunk), 0);
    fed += chunk;
    for (;;) {
      size_t total = 0;
      int r = wire_frame(rx.p, rx.len, bl, &total);
      ck_assert_msg(r == 0 || r == 1, "message %zu: frame error %d", k, r);
      if (r == 0)
        break;
      ck_assert_uint_le(total, rx.len);
      ck_assert_uint_lt(k, count);
      struct wire_msg m;
      ck_assert_int_eq(wire_parse(rx.p, total, STREAM_PIECES, &m), 0);
      check_msg(&m, &want[k], s, k);
      k++;
      buf_consume(&rx, total);
    }
  }
  ck_assert_uint_eq(k, count);
  ck_assert_uint_eq(rx.len, 0);
  buf_free(&rx);
}

START_TEST(test_stream_random_chunks)
{
  const size_t count = 1500;
  struct expect *want = calloc(count, sizeof *want);
  ck_assert_ptr_nonnull(want);
  struct buf s;
  buf_init(&s, (size_t)1 << 30);
  rng_seed(0x5ea1b0a7ull + (uint64_t)_i);
  for (size_t k = 0; k < count; k++)
    gen_message(&s, &want[k]);
  feed_stream(&s, want, count, 1);            /* byte by byte */
  feed_stream(&s, want, count, 17);
  feed_stream(&s, want, count, 5000);
  feed_stream(&s, want, count, 70000);
  buf_free(&s);
  free(want);
}
END_TEST

/* ---- random bytes ------------------------------------------------------ */

START_TEST(test_random_bytes)
{
  rng_seed(0xf00dfacecafeull);
  size_t framed = 0, parsed = 0, refused = 0;
  for (int iter = 0; iter < 100000; iter++) {
    size_t avail = rng_below(4) ? rng_below(40) : rng_below(2000);
    uint8_t *p = malloc(avail ? avail : 1);
    ck_assert_ptr_nonnull(p);
    rng_fill(p, avail);
    /* Often a plausible small length and a known id, so parsing gets exercised. */
    if (avail >= 5 && rng_below(2)) {
      put_u32be(p, rng_below((uint32_t)avail));
      if (rng_below(2))
        p[4] = (uint8_t)rng_below(10);
    }
    uint32_t num_pieces = rng_below(4) ? rng_below(300) : (uint32_t)rng_next();
    size_t bl = bitfield_bytes(num_pieces);
    size_t total = (size_t)-1;
    int r = wire_frame(p, avail, bl, &total);
    ck_assert(r == 0 || r == 1 || r == SHOAL_EPROTO || r == SHOAL_ETOOBIG);
    if (r < 0)
      refused++;
    if (r == 1) {
      framed++;
      ck_assert_msg(total <= avail, "total %zu > avail %zu", total, avail);
      ck_assert_uint_ge(total, 4);
      ck_assert_uint_eq(total, (size_t)get_u32be(p) + 4);
      struct wire_msg m;
      int pr = wire_parse(p, total, num_pieces, &m);
      ck_assert(pr == 0 || pr == SHOAL_EPROTO);
      if (pr == 0) {
        parsed++;
        ck_assert_uint_le(m.payload_len, total);
        if (m.payload_len) {
          ck_assert(m.payload >= p + 5);
          ck_assert(m.payload + m.payload_len <= p + total);
        }
      }
    }
    /* Parse must also survive a total that no frame vouched for. */
    struct wire_msg m2;
    int pr2 = wire_parse(p, avail, num_pieces, &m2);
    ck_assert(pr2 == 0 || pr2 == SHOAL_EPROTO);
    if (avail >= WIRE_HANDSHAKE_LEN) {
      struct wire_handshake h;
      ck_assert(wire_handshake_parse(p, &h) == SHOAL_EPROTO);
    }
    free(p);
  }
  /* The test must actually reach all three outcomes. */
  ck_assert_uint_gt(framed, 1000);
  ck_assert_uint_gt(parsed, 1000);
  ck_assert_uint_gt(refused, 1000);
}
END_TEST

Suite *wire_suite(void)
{
  Suite *s = suite_create("wire");
  TCase *th = tcase_create("handshake");
  tcase_add_test(th, test_handshake_bytes);
  tcase_add_test(th, test_handshake_roundtrip);
  tcase_add_test(th, test_handshake_bad);
  suite_add_tcase(s, th);

  TCase *tf = tcase_create("frame");
  tcase_set_timeout(tf, 60);
  tcase_add_test(tf, test_frame_keepalive);
  tcase_add_test(tf, test_frame_prefixes);
  tcase_add_test(tf, test_frame_header_piece);
  tcase_add_test(tf, test_frame_header_fixed);
  tcase_add_test(tf, test_frame_header_bitfield);
  tcase_add_test(tf, test_frame_header_extended_unknown);
  tcase_add_test(tf, test_frame_need_header);
  suite_add_tcase(s, tf);

  TCase *tp = tcase_create("parse");
  tcase_add_test(tp, test_parse_keepalive_simple);
  tcase_add_test(tp, test_parse_length_mismatch);
  tcase_add_test(tp, test_parse_have);
  tcase_add_test(tp, test_parse_bitfield);
  tcase_add_test(tp, test_parse_request_cancel);
  tcase_add_test(tp, test_parse_piece);
  tcase_add_test(tp, test_parse_port);
  tcase_add_test(tp, test_parse_extended);
  tcase_add_test(tp, test_parse_unknown);
  suite_add_tcase(s, tp);

  TCase *tb = tcase_create("build");
  tcase_add_test(tb, test_builders);
  tcase_add_test(tb, test_build_bitfield);
  tcase_add_test(tb, test_build_bitfield_past_max);
  suite_add_tcase(s, tb);

  TCase *ts = tcase_create("stream");
  tcase_set_timeout(ts, 120);
  tcase_add_loop_test(ts, test_stream_random_chunks, 0, 3);
  suite_add_tcase(s, ts);

  TCase *tr = tcase_create("random");
  tcase_set_timeout(tr, 120);
  tcase_add_test(tr, test_random_bytes);
  suite_add_tcase(s, tr);
  return s;
}
