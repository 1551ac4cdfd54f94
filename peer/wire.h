/* wire.h -- BitTorrent peer wire protocol (BEP 3): handshake, framing with per-message
 * length limits checked on the 5-byte header, parsing and building.  Pure. */
#ifndef PEER_WIRE_H_
#define PEER_WIRE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bitfield.h"
#include "common/buf.h"

#define WIRE_PSTR "BitTorrent protocol"
#define WIRE_PSTRLEN 19
#define WIRE_HANDSHAKE_LEN 68
#define WIRE_MAX_BLOCK (16u * 1024)            /* largest block we request or serve */
#define WIRE_MAX_EXTENDED (128u * 1024)        /* largest extension message accepted */
#define WIRE_MAX_UNKNOWN (32u * 1024)          /* unknown ids: skipped if no larger */
#define WIRE_MAX_BITFIELD (512u * 1024)        /* a bitfield before the piece count is known */
#define WIRE_PIECES_UNKNOWN UINT32_MAX         /* num_pieces while a magnet's metadata is fetched */

enum wire_id {
  WIRE_CHOKE = 0,
  WIRE_UNCHOKE = 1,
  WIRE_INTERESTED = 2,
  WIRE_NOT_INTERESTED = 3,
  WIRE_HAVE = 4,
  WIRE_BITFIELD = 5,
  WIRE_REQUEST = 6,
  WIRE_PIECE = 7,
  WIRE_CANCEL = 8,
  WIRE_PORT = 9,
  WIRE_SUGGEST = 0x0d,                       /* BEP 6 Fast Extension */
  WIRE_HAVE_ALL = 0x0e,
  WIRE_HAVE_NONE = 0x0f,
  WIRE_REJECT = 0x10,
  WIRE_ALLOWED_FAST = 0x11,
  WIRE_EXTENDED = 20,
  WIRE_KEEPALIVE = -1,                       /* pseudo id for a zero-length message */
};

struct wire_handshake {
  uint8_t reserved[8];
  uint8_t infohash[20];
  uint8_t peer_id[20];
};

void wire_handshake_write(uint8_t out[WIRE_HANDSHAKE_LEN], const uint8_t reserved[8],
                          const uint8_t infohash[20], const uint8_t peer_id[20]);
/* Checks the protocol string; 0 or SHOAL_EPROTO. in holds exactly 68 bytes. */
int wire_handshake_parse(const uint8_t in[WIRE_HANDSHAKE_LEN], struct wire_handshake *h);

/* Framing.  Given the bytes buffered so far, tells whether a whole message is
 * there.  Returns 0 (need more), 1 (*total is the whole message's size, the
 * 4-byte length prefix included), or an error as soon as the length prefix
 * and id (the first 5 bytes) show a size that id can never have:
 * SHOAL_ETOOBIG when longer than the id allows, SHOAL_EPROTO when shorter.
 * bitfield_len is bitfield_bytes(num_pieces), or SIZE_MAX while the piece
 * count is not known (then any bitfield up to WIRE_MAX_BITFIELD passes). */
int wire_frame(const uint8_t *p, size_t avail, size_t bitfield_len, size_t *total);

struct wire_msg {
  int id;                     /* enum wire_id, 0..255 from the wire (unknown ids are
                                 passed through); WIRE_KEEPALIVE for a zero-length message */
  uint32_t index, begin, length;
  const uint8_t *payload;     /* borrowed: BITFIELD bits, PIECE block data, EXTENDED bytes
                                 after the extension id, Fast Extension and unknown
                                 messages' bytes after the id; NULL otherwise */
  size_t payload_len;
  uint16_t port;
  uint8_t ext_id;
};

/* Parses a whole framed message (as delimited by wire_frame): exact payload
 * sizes per id, index < num_pieces, block lengths 1..WIRE_MAX_BLOCK.  With
 * num_pieces WIRE_PIECES_UNKNOWN, indices are not checked and a bitfield of
 * any length up to WIRE_MAX_BITFIELD is accepted.  Fast Extension messages
 * (BEP 6) come out with their index/begin/length filled in.  0 or
 * SHOAL_EPROTO. */
int wire_parse(const uint8_t *p, size_t total, uint32_t num_pieces, struct wire_msg *m);

/* Builders write into caller memory and return the byte count. */
size_t wire_put_keepalive(uint8_t out[4]);
size_t wire_put_simple(uint8_t out[5], uint8_t id);                 /* choke .. not interested */
size_t wire_put_have(uint8_t out[9], uint32_t index);
size_t wire_put_request(uint8_t out[17], uint8_t id, uint32_t index, uint32_t begin, uint32_t length); /* request, cancel */
size_t wire_put_piece_header(uint8_t out[13], uint32_t index, uint32_t begin, uint32_t length);
int wire_put_bitfield(struct buf *b, const struct bitfield *bf);

#endif
