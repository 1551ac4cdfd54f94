/* wire.c -- BitTorrent peer wire protocol: handshake, framing, parsing, building. */
#include "peer/wire.h"

#include "common/err.h"

void wire_handshake_write(uint8_t out[WIRE_HANDSHAKE_LEN], const uint8_t reserved[8],
                          const uint8_t infohash[20], const uint8_t peer_id[20])
{
  out[0] = WIRE_PSTRLEN;
  memcpy(out + 1, WIRE_PSTR, WIRE_PSTRLEN);
  memcpy(out + 20, reserved, 8);
  memcpy(out + 28, infohash, 20);
  memcpy(out + 48, peer_id, 20);
}

int wire_handshake_parse(const uint8_t in[WIRE_HANDSHAKE_LEN], struct wire_handshake *h)
{
  if (in[0] != WIRE_PSTRLEN || memcmp(in + 1, WIRE_PSTR, WIRE_PSTRLEN) != 0)
    return SHOAL_EPROTO;
  memcpy(h->reserved, in + 20, 8);
  memcpy(h->infohash, in + 28, 20);
  memcpy(h->peer_id, in + 48, 20);
  return 0;
}

/* Largest and smallest payload (after the id byte) each id may have. */
static int limits(uint8_t id, size_t bitfield_len, uint32_t *min, uint32_t *max)
{
  switch (id) {
  case WIRE_CHOKE: case WIRE_UNCHOKE: case WIRE_INTERESTED: case WIRE_NOT_INTERESTED:
    *min = *max = 0; return 0;
  case WIRE_HAVE:
    *min = *max = 4; return 0;
  case WIRE_BITFIELD:
    if (bitfield_len == SIZE_MAX) {
      *min = 0; *max = WIRE_MAX_BITFIELD; return 0;
    }
    *min = *max = (uint32_t)bitfield_len; return 0;
  case WIRE_REQUEST: case WIRE_CANCEL: case WIRE_REJECT:
    *min = *max = 12; return 0;
  case WIRE_SUGGEST: case WIRE_ALLOWED_FAST:
    *min = *max = 4; return 0;
  case WIRE_HAVE_ALL: case WIRE_HAVE_NONE:
    *min = *max = 0; return 0;
  case WIRE_PIECE:
    *min = 9; *max = 8 + WIRE_MAX_BLOCK; return 0;
  case WIRE_PORT:
    *min = *max = 2; return 0;
  case WIRE_EXTENDED:
    *min = 1; *max = WIRE_MAX_EXTENDED; return 0;
  default:
    *min = 0; *max = WIRE_MAX_UNKNOWN; return 0;
  }
}

int wire_frame(const uint8_t *p, size_t avail, size_t bitfield_len, size_t *total)
{
  if (avail < 4)
    return 0;
  uint32_t len = get_u32be(p);
  if (len == 0) {
    *total = 4;
    return 1;
  }
  if (avail < 5)
    return 0;
  uint32_t min, max;
  limits(p[4], bitfield_len, &min, &max);
  if (len - 1 > max)
    return SHOAL_ETOOBIG;
  if (len - 1 < min)
    return SHOAL_EPROTO;
  if (avail < (size_t)len + 4)
    return 0;
  *total = (size_t)len + 4;
  return 1;
}

/* An index is in range, or the piece count is not known yet. */
static bool index_ok(uint32_t index, uint32_t num_pieces)
{
  return num_pieces == WIRE_PIECES_UNKNOWN || index < num_pieces;
}

int wire_parse(const uint8_t *p, size_t total, uint32_t num_pieces, struct wire_msg *m)
{
  memset(m, 0, sizeof *m);
  if (total < 4 || get_u32be(p) != total - 4)
    return SHOAL_EPROTO;
  if (total == 4) {
    m->id = WIRE_KEEPALIVE;
    return 0;
  }
  struct cur c = cur_make(p + 5, total - 5);
  m->id = p[4];
  if (m->id >= WIRE_SUGGEST && m->id <= WIRE_ALLOWED_FAST) {
    m->payload = c.p;            /* the Fast Extension parser reads it (peer/ext.h) */
    m->payload_len = c.len;
  }
  switch (m->id) {
  case WIRE_CHOKE: case WIRE_UNCHOKE: case WIRE_INTERESTED: case WIRE_NOT_INTERESTED:
  case WIRE_HAVE_ALL: case WIRE_HAVE_NONE:
    return c.len == 0 ? 0 : SHOAL_EPROTO;
  case WIRE_HAVE: case WIRE_SUGGEST: case WIRE_ALLOWED_FAST:
    if (cur_u32be(&c, &m->index) || c.len || !index_ok(m->index, num_pieces))
      return SHOAL_EPROTO;
    return 0;
  case WIRE_BITFIELD:
    if (num_pieces == WIRE_PIECES_UNKNOWN ? c.len > WIRE_MAX_BITFIELD : c.len != bitfield_bytes(num_pieces))
      return SHOAL_EPROTO;
    m->payload = c.p;
    m->payload_len = c.len;
    return 0;
  case WIRE_REQUEST: case WIRE_CANCEL: case WIRE_REJECT:
    if (cur_u32be(&c, &m->index) || cur_u32be(&c, &m->begin) || cur_u32be(&c, &m->length) || c.len)
      return SHOAL_EPROTO;
    if (!index_ok(m->index, num_pieces) || m->length == 0 || m->length > WIRE_MAX_BLOCK)
      return SHOAL_EPROTO;
    return 0;
  case WIRE_PIECE:
    if (cur_u32be(&c, &m->index) || cur_u32be(&c, &m->begin))
      return SHOAL_EPROTO;
    if (!index_ok(m->index, num_pieces) || c.len == 0 || c.len > WIRE_MAX_BLOCK)
      return SHOAL_EPROTO;
    m->payload = c.p;
    m->payload_len = c.len;
    m->length = (uint32_t)c.len;
    return 0;
  case WIRE_PORT:
    if (cur_u16be(&c, &m->port) || c.len)
      return SHOAL_EPROTO;
    return 0;
  case WIRE_EXTENDED:
    if (cur_u8(&c, &m->ext_id))
      return SHOAL_EPROTO;
    m->payload = c.p;
    m->payload_len = c.len;
    return 0;
  default:
    m->payload = c.p;
    m->payload_len = c.len;
    return 0;
  }
}

size_t wire_put_keepalive(uint8_t out[4])
{
  put_u32be(out, 0);
  return 4;
}

size_t wire_put_simple(uint8_t out[5], uint8_t id)
{
  put_u32be(out, 1);
  out[4] = id;
  return 5;
}

size_t wire_put_have(uint8_t out[9], uint32_t index)
{
  put_u32be(out, 5);
  out[4] = WIRE_HAVE;
  put_u32be(out + 5, index);
  return 9;
}

size_t wire_put_request(uint8_t out[17], uint8_t id, uint32_t index, uint32_t begin, uint32_t length)
{
  put_u32be(out, 13);
  out[4] = id;
  put_u32be(out + 5, index);
  put_u32be(out + 9, begin);
  put_u32be(out + 13, length);
  return 17;
}

size_t wire_put_piece_header(uint8_t out[13], uint32_t index, uint32_t begin, uint32_t length)
{
  put_u32be(out, 9 + length);
  out[4] = WIRE_PIECE;
  put_u32be(out + 5, index);
  put_u32be(out + 9, begin);
  return 13;
}

int wire_put_bitfield(struct buf *b, const struct bitfield *bf)
{
  size_t n = bitfield_bytes(bf->nbits);
  int r = buf_reserve(b, 5 + n);       /* all or nothing */
  if (r == 0)
    r = buf_append_u32be(b, (uint32_t)(n + 1));
  if (r == 0)
    r = buf_append_u8(b, WIRE_BITFIELD);
  if (r == 0)
    r = buf_append(b, bf->bits, n);
  return r;
}
