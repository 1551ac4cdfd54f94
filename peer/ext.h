/* ext.h -- BitTorrent protocol extensions, pure codecs: extension protocol handshake
 * (BEP 10), metadata exchange and its assembler (BEP 9), peer exchange (BEP 11),
 * Fast Extension messages and allowed-fast sets (BEP 6), reserved-bit helpers.
 *
 * Nothing here does I/O or reads a clock.  Builders append one whole framed wire
 * message (4-byte length, id, payload) to a struct buf, ready to send; on any
 * error the buf is left exactly as it was.  Parsers take the bytes wire_parse()
 * hands over: for an EXTENDED message (id 20) that is m.payload / m.payload_len
 * (the bytes after the extended id m.ext_id); for a Fast Extension message the
 * id and m.payload.  Parsed values never point into memory the caller does not
 * own, except where a field says "borrowed" (valid as long as the input).
 *
 * Extended message ids: the ids in messages WE receive are the ones we
 * advertised (EXT_ID_UT_METADATA, EXT_ID_UT_PEX); the ids we send with are the
 * ones the PEER advertised in its handshake (struct ext_handshake).  A received
 * EXTENDED message dispatches on m.ext_id:
 *   0                  -> ext_handshake_parse
 *   EXT_ID_UT_METADATA -> ext_md_parse
 *   EXT_ID_UT_PEX      -> ext_pex_parse
 *   anything else      -> ignore (an id we never advertised). */
#ifndef PEER_EXT_H_
#define PEER_EXT_H_

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/buf.h"

/* ---- reserved bits of the BitTorrent handshake --------------------------- */

/* Sets the bits shoal advertises: BEP 10 extension protocol (reserved[5] |=
 * 0x10, bit 20 from the right) and BEP 6 Fast Extension (reserved[7] |= 0x04).
 * Other bits are left as they are. */
void ext_reserved_set(uint8_t reserved[8]);
/* Whether a peer's reserved bytes advertise BEP 10 / BEP 6.  An extension is
 * in use on a connection only when both sides advertise it. */
bool ext_supports_extended(const uint8_t reserved[8]);
bool ext_supports_fast(const uint8_t reserved[8]);

/* ---- BEP 10 extension handshake ------------------------------------------ */

#define EXT_ID_HANDSHAKE 0
#define EXT_ID_UT_METADATA 1          /* our local ids, advertised in our `m` */
#define EXT_ID_UT_PEX 2
#define EXT_CLIENT_VERSION "shoal 0.1"
#define EXT_CLIENT_NAME_MAX 64        /* bytes kept of a peer's `v` */
#define EXT_REQQ_DEFAULT 250          /* a peer's reqq when it sends none */
#define EXT_REQQ_MAX 2000             /* a peer's reqq is clamped to 1..this */
#define EXT_MAX_METADATA (16u * 1024 * 1024) /* largest info dict we fetch or serve */
#define EXT_HANDSHAKE_MAX_TOKENS 1000 /* bencode limits for a handshake */
#define EXT_HANDSHAKE_MAX_DEPTH 4

/* What we send in our handshake. */
struct ext_handshake_opts {
  uint16_t port;                   /* our listen port; 0: `p` omitted */
  uint32_t reqq;                   /* our max queued requests; 0: `reqq` omitted */
  uint32_t metadata_size;          /* our info dict's size; 0 (unknown, magnet still
                                      fetching): omitted.  Must be <= EXT_MAX_METADATA. */
  const struct sockaddr *yourip;   /* the peer's address as we see it (AF_INET or
                                      AF_INET6, port ignored); NULL: omitted */
  bool no_pex;                     /* true: ut_pex not advertised (private torrents) */
};

/* Appends our extension handshake as a whole EXTENDED message (ext id 0):
 * d 1:m d 11:ut_metadata i1e 6:ut_pex i2e e [13:metadata_size] [1:p] [4:reqq]
 * 1:v 9:shoal 0.1 [6:yourip] e.  Returns 0, UV_EINVAL (metadata_size too large,
 * yourip of another family) or the buf error (UV_E2BIG, UV_ENOMEM); on error b
 * is unchanged. */
int ext_handshake_build(struct buf *b, const struct ext_handshake_opts *o);

/* A peer's extension handshake as we understood it. */
struct ext_handshake {
  uint8_t ut_metadata;             /* the peer's id for ut_metadata; 0: unsupported */
  uint8_t ut_pex;                  /* the peer's id for ut_pex; 0: unsupported */
  char v[EXT_CLIENT_NAME_MAX + 1]; /* client name, NUL-terminated; "" when unknown.
                                      Sanitised: printable ASCII and well-formed UTF-8
                                      (no controls) kept, any other byte becomes '?';
                                      cut to EXT_CLIENT_NAME_MAX bytes on a character
                                      boundary. */
  uint16_t port;                   /* the peer's listen port (`p`); 0: unknown */
  uint32_t reqq;                   /* clamped to 1..EXT_REQQ_MAX; EXT_REQQ_DEFAULT if never sent */
  uint32_t metadata_size;          /* 1..EXT_MAX_METADATA; 0: unknown */
  bool has_yourip;
  struct sockaddr_storage yourip;  /* our address as the peer sees it (port 0) */
};

/* Sets h to what a peer that has sent no handshake yet supports: no
 * extensions, reqq EXT_REQQ_DEFAULT, everything else unknown. */
void ext_handshake_init(struct ext_handshake *h);

/* Parses a peer's handshake payload (the bencoded dict after ext id 0) and
 * updates h with the fields present.  Handshakes are additive (BEP 10: a later
 * handshake carries only changes), so call ext_handshake_init() once per
 * connection and then this for every handshake received.
 * Tolerance: unknown keys and unknown `m` entries are ignored; a known key of
 * the wrong type is ignored (as if absent); an `m` id outside 0..255 disables
 * that extension (0); `p` outside 1..65535 is ignored; `reqq` is clamped to
 * 1..EXT_REQQ_MAX; a `metadata_size` <= 0 or > EXT_MAX_METADATA sets
 * metadata_size to 0 (unknown: metadata cannot be fetched from this peer);
 * `yourip` other than 4 or 16 bytes is ignored.
 * Errors: SHOAL_EBENCODE / SHOAL_ETOOBIG (not bencode, or beyond
 * EXT_HANDSHAKE_MAX_TOKENS / _DEPTH), SHOAL_EPROTO (not a dict), UV_ENOMEM;
 * a one-line reason goes to err (errlen bytes, may be NULL), and h is then
 * unchanged.  The caller bounds len (wire caps EXTENDED at WIRE_MAX_EXTENDED). */
int ext_handshake_parse(struct ext_handshake *h, const uint8_t *p, size_t len,
                        char *err, size_t errlen);

/* ---- BEP 9 ut_metadata ---------------------------------------------------- */

#define EXT_MD_BLOCK (16u * 1024)                          /* metadata piece size */
#define EXT_MD_MAX_PIECES (EXT_MAX_METADATA / EXT_MD_BLOCK) /* 1024 */
#define EXT_MD_REQUEST_TIMEOUT_MS 20000u                   /* see ext_md_asm_pick */

enum ext_md_type {
  EXT_MD_REQUEST = 0,
  EXT_MD_DATA = 1,
  EXT_MD_REJECT = 2,
  EXT_MD_UNKNOWN = 3,      /* any other msg_type: BEP 9 says ignore it */
};

/* Number of metadata pieces for a size (ceil(size / EXT_MD_BLOCK)). */
uint32_t ext_md_pieces(uint32_t metadata_size);
/* Length of piece `piece` of a metadata of that size (EXT_MD_BLOCK, or less
 * for the last); 0 when the piece is out of range. */
uint32_t ext_md_piece_len(uint32_t metadata_size, uint32_t piece);

/* Builders: peer_id is the peer's ut_metadata id (ext_handshake.ut_metadata,
 * non-zero).  Each returns 0, UV_EINVAL or a buf error; b unchanged on error. */
int ext_md_build_request(struct buf *b, uint8_t peer_id, uint32_t piece);
int ext_md_build_reject(struct buf *b, uint8_t peer_id, uint32_t piece);
/* A data message for piece `piece` of our metadata (the whole info dict,
 * metadata[0..metadata_size), borrowed): the dict with total_size followed by
 * the piece's bytes.  UV_EINVAL when the piece is out of range or the size is
 * 0 or > EXT_MAX_METADATA. */
int ext_md_build_data(struct buf *b, uint8_t peer_id, uint32_t piece,
                      const uint8_t *metadata, uint32_t metadata_size);

struct ext_md_msg {
  enum ext_md_type type;
  uint32_t piece;
  uint32_t total_size;     /* EXT_MD_DATA: the sender's metadata size */
  const uint8_t *data;     /* EXT_MD_DATA: the piece's bytes, borrowed from the input */
  size_t data_len;
};

/* Parses a ut_metadata payload (after our ext id).  known_size is the
 * metadata size the caller expects -- ours when answering requests, the one
 * being fetched (ext_md_asm.size) when receiving data -- or 0 when unknown.
 * Checks: a dict with integer msg_type and piece; piece < EXT_MD_MAX_PIECES
 * and, when known_size is set, < ext_md_pieces(known_size); request and
 * reject carry no bytes after the dict; data has total_size in
 * 1..EXT_MAX_METADATA equal to known_size (when set), piece <
 * ext_md_pieces(total_size) and exactly ext_md_piece_len(total_size, piece)
 * bytes after the dict.  An unknown msg_type gives type EXT_MD_UNKNOWN and 0
 * (other fields unspecified; ignore the message).
 * Errors: SHOAL_EBENCODE / SHOAL_ETOOBIG, SHOAL_EPROTO, UV_ENOMEM, with a
 * one-line reason in err (may be NULL). */
int ext_md_parse(const uint8_t *p, size_t len, uint32_t known_size,
                 struct ext_md_msg *out, char *err, size_t errlen);

/* Collects the metadata of one torrent from ut_metadata data messages, in any
 * order, from any peers, and checks it against the infohash.  Memory: size
 * bytes plus 9 bytes per piece, at most EXT_MAX_METADATA + 9 KiB.
 * Ownership: ext_md_asm_init on caller storage, ext_md_asm_free releases. */
struct ext_md_asm {
  uint8_t infohash[20];
  uint32_t size;           /* 0 until ext_md_asm_set_size */
  uint32_t npieces;
  uint32_t nhave;
  uint8_t *data;           /* size bytes; complete and verified once add() returned 1 */
  uint8_t *have;           /* per piece: 1 when received */
  uint64_t *asked_ms;      /* per piece: when last handed out by pick (0: never) */
  bool done;               /* verified: data is the info dict */
};

void ext_md_asm_init(struct ext_md_asm *a, const uint8_t infohash[20]);
void ext_md_asm_free(struct ext_md_asm *a);  /* releases memory; a may be re-inited */

/* Sets the size being fetched (from a peer's handshake metadata_size).  Setting
 * the same size again is a no-op.  A different size replaces the old one only
 * while no piece is held (e.g. after a hash failure).  Returns 0, UV_EINVAL
 * (0 or > EXT_MAX_METADATA), SHOAL_EEXISTS (pieces of another size are held,
 * or already done), UV_ENOMEM. */
int ext_md_asm_set_size(struct ext_md_asm *a, uint32_t size);

/* Chooses the piece to request next: the lowest missing piece that was never
 * handed out, or was handed out at least timeout_ms before now_ms (0:
 * EXT_MD_REQUEST_TIMEOUT_MS), and records it as asked at now_ms (pass a
 * non-zero monotonic time).  Returns 0 with *piece set, or SHOAL_ENOTFOUND
 * when nothing should be asked now (size unknown, done, or every missing
 * piece is in flight). */
int ext_md_asm_pick(struct ext_md_asm *a, uint64_t now_ms, uint64_t timeout_ms, uint32_t *piece);
/* Makes a handed-out piece pickable again at once (reject received, peer
 * gone).  Out-of-range pieces are ignored. */
void ext_md_asm_unask(struct ext_md_asm *a, uint32_t piece);

/* Stores one received piece (data[0..len), copied).  Returns 0 (stored, or a
 * duplicate ignored), 1 when this piece completed the metadata and its SHA-1
 * equals the infohash (a->data holds it; a->done), SHOAL_EHASH when the
 * metadata was complete but the hash did not match (every piece is dropped,
 * the size kept: fetching starts over -- ban or distrust the peers that
 * sent pieces), SHOAL_EPROTO (size unknown, piece out of range, or len not
 * ext_md_piece_len(size, piece)), SHOAL_EEXISTS when already done.  The
 * SHA-1 of up to EXT_MAX_METADATA runs inside this call (about 1 ms per MiB;
 * real info dicts are well under 1 MiB). */
int ext_md_asm_add(struct ext_md_asm *a, uint32_t piece, const uint8_t *data, size_t len);

/* ext_md_asm_add without the hash, for callers that verify off the event
 * loop: stores the piece and returns 1 when every piece is in (a->data then
 * holds the unverified metadata; further pieces are ignored as duplicates
 * until ext_md_asm_restart), else 0 or the same errors as ext_md_asm_add. */
int ext_md_asm_put(struct ext_md_asm *a, uint32_t piece, const uint8_t *data, size_t len);
/* Drops every piece held (the size is kept): fetching starts over, as after
 * a hash mismatch.  No-op once done. */
void ext_md_asm_restart(struct ext_md_asm *a);

/* Once done, hands the metadata buffer (size bytes) to the caller, who
 * free()s it; the assembler then holds nothing.  NULL when not done. */
uint8_t *ext_md_asm_take(struct ext_md_asm *a, uint32_t *size);

/* ---- BEP 11 ut_pex ------------------------------------------------------- */

#define EXT_PEX_MAX_ADDED 50          /* per built message (v4 + v6 together) */
#define EXT_PEX_MAX_DROPPED 50
#define EXT_PEX_PARSE_MAX 200         /* entries kept per list when parsing */
#define EXT_PEX_MAX_TOKENS 64
#define EXT_PEX_MAX_DEPTH 4

/* Flags, one byte per added peer. */
#define EXT_PEX_F_ENCRYPTION 0x01
#define EXT_PEX_F_SEED 0x02
#define EXT_PEX_F_UTP 0x04
#define EXT_PEX_F_HOLEPUNCH 0x08
#define EXT_PEX_F_REACHABLE 0x10
#define EXT_PEX_F_KEPT (EXT_PEX_F_SEED | EXT_PEX_F_UTP | EXT_PEX_F_REACHABLE)

struct ext_pex_peer {
  struct sockaddr_storage addr;    /* AF_INET or AF_INET6 with a non-zero port */
  uint8_t flags;                   /* EXT_PEX_F_* */
};

/* Appends a ut_pex message: added / added.f / dropped always, added6 /
 * added6.f / dropped6 when they have entries.  Entries of another family are
 * skipped; only the first EXT_PEX_MAX_ADDED usable added and
 * EXT_PEX_MAX_DROPPED usable dropped entries are written (the caller keeps
 * the rest for its next message, at least a minute later).  peer_id is the
 * peer's ut_pex id.  Returns 0 or a buf error (b unchanged). */
int ext_pex_build(struct buf *b, uint8_t peer_id,
                  const struct ext_pex_peer *added, size_t nadded,
                  const struct sockaddr_storage *dropped, size_t ndropped);

/* A parsed ut_pex message (about 50 KiB: put it on the heap or reuse one). */
struct ext_pex {
  struct ext_pex_peer added[EXT_PEX_PARSE_MAX];   /* v4 entries first, then v6 */
  size_t nadded;
  struct sockaddr_storage dropped[EXT_PEX_PARSE_MAX];
  size_t ndropped;
};

/* Parses a ut_pex payload (after our ext id).  Compact strings whose length is
 * not a multiple of 6 (added, dropped) or 18 (added6, dropped6) and known keys
 * of the wrong type are errors.  Entries with port 0 are skipped; at most
 * EXT_PEX_PARSE_MAX entries are kept per list (the rest ignored).  Flags are
 * used only when added.f / added6.f have exactly one byte per entry
 * (otherwise 0), masked with EXT_PEX_F_KEPT.  Unknown keys are ignored.
 * Errors: SHOAL_EBENCODE / SHOAL_ETOOBIG, SHOAL_EPROTO, UV_ENOMEM, with a
 * one-line reason in err (may be NULL); out is then unspecified. */
int ext_pex_parse(const uint8_t *p, size_t len, struct ext_pex *out, char *err, size_t errlen);

/* ---- BEP 6 Fast Extension ------------------------------------------------ */

enum ext_fast_id {
  EXT_FAST_SUGGEST = 0x0D,
  EXT_FAST_HAVE_ALL = 0x0E,
  EXT_FAST_HAVE_NONE = 0x0F,
  EXT_FAST_REJECT = 0x10,
  EXT_FAST_ALLOWED_FAST = 0x11,
};
#define EXT_ALLOWED_FAST_K 10         /* our allowed-fast set size */
#define EXT_ALLOWED_FAST_MAX 64       /* largest k ext_allowed_fast computes */

/* Builders into caller memory; each returns the byte count. */
size_t ext_put_have_all(uint8_t out[5]);
size_t ext_put_have_none(uint8_t out[5]);
size_t ext_put_suggest(uint8_t out[9], uint32_t index);
size_t ext_put_allowed_fast(uint8_t out[9], uint32_t index);
size_t ext_put_reject(uint8_t out[17], uint32_t index, uint32_t begin, uint32_t length);

/* Whether a wire message id is one of the five above. */
bool ext_is_fast_id(int id);

struct ext_fast_msg {
  int id;                  /* enum ext_fast_id */
  uint32_t index;          /* suggest, allowed fast, reject */
  uint32_t begin, length;  /* reject */
};

/* Parses a Fast Extension message from wire_parse's m.id, m.payload,
 * m.payload_len.  Payload sizes are exact (0 have all/none, 4 suggest/allowed
 * fast, 12 reject); index < num_pieces unless num_pieces is 0 (not known yet,
 * e.g. while fetching metadata); reject length 1..WIRE_MAX_BLOCK.  Returns 0,
 * SHOAL_EPROTO, or UV_EINVAL when id is not a Fast Extension id.  The caller
 * drops peers that send these without both sides advertising BEP 6. */
int ext_fast_parse(int id, const uint8_t *payload, size_t len, uint32_t num_pieces,
                   struct ext_fast_msg *out);

/* BEP 6 allowed-fast set of a peer: min(k, num_pieces, EXT_ALLOWED_FAST_MAX)
 * distinct piece indices into out (room for that many), in the canonical
 * order.  peer is the peer's address (AF_INET, or AF_INET6 holding a
 * v4-mapped address; the port is ignored).  Returns the count, or
 * UV_EAFNOSUPPORT for a peer with no IPv4 address (BEP 6 defines none),
 * UV_EINVAL when num_pieces is 0. */
int ext_allowed_fast(const struct sockaddr *peer, const uint8_t infohash[20],
                     uint32_t num_pieces, uint32_t k, uint32_t *out);

#endif
