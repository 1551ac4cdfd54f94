/* fuzz_wire.c -- libFuzzer target: peer wire framing and parsing fed in socket-like chunks, with builder round trips. */
#include <stdbool.h>
#include <string.h>

#include "common/bitfield.h"
#include "common/buf.h"
#include "common/err.h"
#include "peer/wire.h"
#include "tests/fuzz/fuzzutil.h"

/* Input layout:
 *   byte 0      bit 0: the stream starts with a 68-byte handshake;
 *               bits 1-7: index into piece_counts
 *   bytes 1-4   chunk sizes (each 1 + byte), used in turn, as a socket would deliver
 *   rest        the byte stream */
static const uint32_t piece_counts[] = {
  0, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 4096, 65535, 1u << 20,
#ifdef WIRE_PIECES_UNKNOWN
  WIRE_PIECES_UNKNOWN,   /* a magnet link's peers before the metadata: bitfield_len SIZE_MAX */
#endif
};

#ifdef WIRE_MAX_BITFIELD
#define RX_MAX (4u + 1u + (WIRE_MAX_BITFIELD > WIRE_MAX_EXTENDED ? WIRE_MAX_BITFIELD : WIRE_MAX_EXTENDED))
#else
#define RX_MAX (4u + 1u + WIRE_MAX_EXTENDED)   /* largest frame wire_frame lets through */
#endif
#define MAX_FRAMES 4096u

struct frame_rec {
  size_t off;      /* in the stream */
  size_t total;
  int parse;       /* wire_parse result */
};

/* A piece index as wire_parse lets it through: below the piece count, or
 * anything while the count is unknown. */
static bool index_ok(uint32_t index, uint32_t np)
{
#ifdef WIRE_PIECES_UNKNOWN
  if (np == WIRE_PIECES_UNKNOWN)
    return true;
#endif
  return index < np;
}

/* Largest message size (prefix included) any id may have. */
static size_t max_total(size_t bflen)
{
  size_t m = 4 + 1 + WIRE_MAX_EXTENDED;
#ifdef WIRE_MAX_BITFIELD
  if (bflen == SIZE_MAX)
    return m > 4 + 1 + WIRE_MAX_BITFIELD ? m : 4 + 1 + WIRE_MAX_BITFIELD;
#endif
  if (4 + 1 + bflen > m)
    m = 4 + 1 + bflen;
  return m;
}

/* Parses one framed message and checks it against its bytes; rebuilds what
 * the builders can build and compares. */
static int check_message_exact(const uint8_t *p, size_t total, uint32_t np)
{
  struct wire_msg m;
  int r = wire_parse(p, total, np, &m);
  if (r) {
    FUZZ_CHECK(r == SHOAL_EPROTO);
    return r;
  }
  if (m.payload != NULL)
    FUZZ_CHECK(m.payload >= p + 5 && m.payload_len <= total - 5 &&
               m.payload + m.payload_len == p + total);
  else
    FUZZ_CHECK(m.payload_len == 0);
  uint8_t b[17];
  switch (m.id) {
  case WIRE_KEEPALIVE:
    FUZZ_CHECK(total == 4 && wire_put_keepalive(b) == 4 && memcmp(b, p, 4) == 0);
    break;
  case WIRE_CHOKE: case WIRE_UNCHOKE: case WIRE_INTERESTED: case WIRE_NOT_INTERESTED:
    FUZZ_CHECK(total == 5 && wire_put_simple(b, (uint8_t)m.id) == 5 && memcmp(b, p, 5) == 0);
    break;
  case WIRE_HAVE:
    FUZZ_CHECK(index_ok(m.index, np));
    FUZZ_CHECK(total == 9 && wire_put_have(b, m.index) == 9 && memcmp(b, p, 9) == 0);
    break;
  case WIRE_BITFIELD: {
#ifdef WIRE_PIECES_UNKNOWN
    if (np == WIRE_PIECES_UNKNOWN) {
      FUZZ_CHECK(m.payload_len <= WIRE_MAX_BITFIELD && total == 5 + m.payload_len);
      break;
    }
#endif
    FUZZ_CHECK(m.payload_len == bitfield_bytes(np) && total == 5 + m.payload_len);
    struct bitfield bf;
    FUZZ_CHECK(bitfield_init(&bf, np) == 0);
    if (bitfield_load(&bf, m.payload, m.payload_len) == 0) {
      struct buf out;
      buf_init(&out, total);
      FUZZ_CHECK(wire_put_bitfield(&out, &bf) == 0);
      FUZZ_CHECK(out.len == total && memcmp(out.p, p, total) == 0);
      buf_free(&out);
    }
    bitfield_free(&bf);
    break;
  }
#ifdef WIRE_PIECES_UNKNOWN
  case WIRE_HAVE_ALL: case WIRE_HAVE_NONE:
    FUZZ_CHECK(total == 5 && wire_put_simple(b, (uint8_t)m.id) == 5 && memcmp(b, p, 5) == 0);
    break;
  case WIRE_SUGGEST: case WIRE_ALLOWED_FAST:
    FUZZ_CHECK(total == 9 && index_ok(m.index, np) && m.index == get_u32be(p + 5));
    break;
  case WIRE_REJECT:
#endif
  case WIRE_REQUEST: case WIRE_CANCEL:
    FUZZ_CHECK(index_ok(m.index, np) && m.length >= 1 && m.length <= WIRE_MAX_BLOCK);
    FUZZ_CHECK(total == 17 && wire_put_request(b, (uint8_t)m.id, m.index, m.begin, m.length) == 17 &&
               memcmp(b, p, 17) == 0);
    break;
  case WIRE_PIECE:
    FUZZ_CHECK(index_ok(m.index, np) && m.length == m.payload_len && m.length >= 1 && m.length <= WIRE_MAX_BLOCK);
    FUZZ_CHECK(wire_put_piece_header(b, m.index, m.begin, m.length) == 13 && memcmp(b, p, 13) == 0);
    break;
  case WIRE_PORT:
    FUZZ_CHECK(total == 7 && get_u16be(p + 5) == m.port);
    break;
  case WIRE_EXTENDED:
    FUZZ_CHECK(total >= 6 && m.ext_id == p[5] && m.payload == p + 6);
    break;
  default:
    FUZZ_CHECK(m.id >= 0 && m.id <= 255 && m.id == p[4]);
    FUZZ_CHECK(m.payload == p + 5);
    break;
  }
  return 0;
}

/* The message copied to a buffer of its exact size, so that a read past it is caught. */
static int check_message(const uint8_t *p, size_t total, uint32_t np)
{
  uint8_t *copy = malloc(total);
  FUZZ_CHECK(copy != NULL);
  memcpy(copy, p, total);
  int r = check_message_exact(copy, total, np);
  free(copy);
  return r;
}

/* wire_frame with its contract checked; a short buffer is copied to one of
 * its exact size (only the header is read, so a read past `avail` can only
 * happen there). */
static int frame(const uint8_t *p, size_t avail, size_t bflen, size_t *total)
{
  size_t t = 0;
  int r;
  if (avail <= 16) {
    uint8_t *copy = malloc(avail ? avail : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, p, avail);
    r = wire_frame(copy, avail, bflen, &t);
    free(copy);
  } else {
    r = wire_frame(p, avail, bflen, &t);
  }
  if (r == 1) {
    FUZZ_CHECK(t >= 4 && t <= avail && t <= max_total(bflen));
    FUZZ_CHECK(get_u32be(p) == t - 4);
    *total = t;
  } else if (r == 0) {
    /* Need more: only when the message is not all there yet. */
    FUZZ_CHECK(avail < 5 || (size_t)get_u32be(p) + 4 > avail);
  } else {
    /* Errors come from the 5-byte header alone. */
    FUZZ_CHECK(r == SHOAL_ETOOBIG || r == SHOAL_EPROTO);
    FUZZ_CHECK(avail >= 5);
  }
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 5)
    return 0;
  bool handshake = data[0] & 1;
  uint32_t np = piece_counts[(data[0] >> 1) % (sizeof piece_counts / sizeof piece_counts[0])];
  size_t bflen = bitfield_bytes(np);
#ifdef WIRE_PIECES_UNKNOWN
  if (np == WIRE_PIECES_UNKNOWN)
    bflen = SIZE_MAX;
#endif
  size_t chunks[4] = { 1u + data[1], 1u + data[2], 1u + data[3], 1u + data[4] };
  const uint8_t *s = data + 5;
  size_t n = size - 5;

  if (handshake) {
    if (n < WIRE_HANDSHAKE_LEN)
      return 0;
    uint8_t hs[WIRE_HANDSHAKE_LEN];
    memcpy(hs, s, sizeof hs);
    struct wire_handshake h;
    if (wire_handshake_parse(hs, &h) != 0)
      return 0;
    uint8_t again[WIRE_HANDSHAKE_LEN];
    wire_handshake_write(again, h.reserved, h.infohash, h.peer_id);
    FUZZ_CHECK(memcmp(again, s, sizeof again) == 0);
    s += WIRE_HANDSHAKE_LEN;
    n -= WIRE_HANDSHAKE_LEN;
  }

  /* The whole stream at once: the reference frame sequence. */
  struct frame_rec *ref = malloc(MAX_FRAMES * sizeof *ref);
  FUZZ_CHECK(ref != NULL);
  size_t nref = 0, off = 0;
  int ref_end = 0;   /* 0: ran out of bytes; <0: the framing error that ended it */
  while (nref < MAX_FRAMES) {
    size_t total;
    int r = frame(s + off, n - off, bflen, &total);
    if (r <= 0) {
      ref_end = r;
      break;
    }
    ref[nref].off = off;
    ref[nref].total = total;
    ref[nref].parse = check_message(s + off, total, np);
    nref++;
    off += total;
  }
  bool ref_capped = nref == MAX_FRAMES;

  /* The same stream through a bounded receive buffer, chunk by chunk. */
  struct buf rx;
  buf_init(&rx, RX_MAX + 256);
  size_t fed = 0, consumed = 0, k = 0, ci = 0;
  int end = 0;
  bool stop = false;
  while (!stop && fed < n) {
    size_t c = chunks[ci++ % 4];
    if (c > n - fed)
      c = n - fed;
    if (c > rx.max - rx.len)
      c = rx.max - rx.len;
    FUZZ_CHECK(c > 0);     /* a frame never needs more than the buffer holds */
    FUZZ_CHECK(buf_append(&rx, s + fed, c) == 0);
    fed += c;
    for (;;) {
      size_t total;
      int r = frame(rx.p, rx.len, bflen, &total);
      if (r == 0)
        break;
      if (r < 0) {
        end = r;
        stop = true;
        break;
      }
      if (k == MAX_FRAMES) {
        stop = true;
        break;
      }
      /* Same boundaries, same verdict as in one piece. */
      FUZZ_CHECK(k < nref && ref[k].off == consumed && ref[k].total == total);
      FUZZ_CHECK(check_message(rx.p, total, np) == ref[k].parse);
      k++;
      consumed += total;
      buf_consume(&rx, total);
    }
  }
  if (!ref_capped) {
    FUZZ_CHECK(k == nref);
    FUZZ_CHECK(end == ref_end);
  }
  buf_free(&rx);
  free(ref);
  return 0;
}
