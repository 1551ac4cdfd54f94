/* ext.c -- BitTorrent extension codecs: BEP 10 handshake, BEP 9 metadata exchange and assembler, BEP 11 PEX, BEP 6 Fast Extension. */
#include "peer/ext.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/bencode.h"
#include "common/compact.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/utf8.h"
#include "peer/wire.h"

#define EXT_MD_MAX_TOKENS 64
#define EXT_MD_MAX_DEPTH 4

/* ---- helpers -------------------------------------------------------------- */

/* Starts a framed EXTENDED message: length placeholder, id 20, extended id. */
static int ext_begin(struct buf *b, uint8_t ext_id, size_t *start)
{
  *start = b->len;
  int r = buf_append_u32be(b, 0);
  if (r == 0)
    r = buf_append_u8(b, WIRE_EXTENDED);
  if (r == 0)
    r = buf_append_u8(b, ext_id);
  return r;
}

/* Completes the message begun at start, or on error (r != 0 or too long for
 * a peer to accept) rolls b back to how it was. */
static int ext_finish(struct buf *b, size_t start, int r)
{
  if (r == 0 && b->len - start - 5 > WIRE_MAX_EXTENDED)
    r = UV_E2BIG;
  if (r) {
    b->len = start;
    return r;
  }
  put_u32be(b->p + start, (uint32_t)(b->len - start - 4));
  return 0;
}

/* Code points we never show: C0/C1 controls, DEL, and the invisible
 * formatting characters that can disguise text (zero-width, bidi controls). */
static bool ext_cp_hidden(uint32_t cp)
{
  return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Copies a peer-supplied name into out (cap bytes plus the NUL), keeping
 * printable ASCII and well-formed visible UTF-8, replacing anything else
 * byte by byte with '?', never cutting a character. */
static void ext_sanitise(const uint8_t *p, size_t n, char *out, size_t cap)
{
  size_t w = 0, i = 0;
  while (i < n) {
    uint32_t cp;
    size_t len = utf8_seq(p + i, n - i, &cp);
    if (len == 0 || ext_cp_hidden(cp)) {
      if (w + 1 > cap)
        break;
      out[w++] = '?';
      i++;
      continue;
    }
    if (w + len > cap)
      break;
    memcpy(out + w, p + i, len);
    w += len;
    i += len;
  }
  out[w] = '\0';
}

/* ---- reserved bits -------------------------------------------------------- */

void ext_reserved_set(uint8_t reserved[8])
{
  reserved[5] |= 0x10;
  reserved[7] |= 0x04;
}

bool ext_supports_extended(const uint8_t reserved[8]) { return (reserved[5] & 0x10) != 0; }
bool ext_supports_fast(const uint8_t reserved[8]) { return (reserved[7] & 0x04) != 0; }

/* ---- BEP 10 handshake ----------------------------------------------------- */

int ext_handshake_build(struct buf *b, const struct ext_handshake_opts *o)
{
  uint8_t ip[16];
  size_t iplen = 0;
  if (o->metadata_size > EXT_MAX_METADATA)
    return UV_EINVAL;
  if (o->yourip) {
    if (o->yourip->sa_family == AF_INET) {
      memcpy(ip, &((const struct sockaddr_in *)o->yourip)->sin_addr, 4);
      iplen = 4;
    } else if (o->yourip->sa_family == AF_INET6) {
      memcpy(ip, &((const struct sockaddr_in6 *)o->yourip)->sin6_addr, 16);
      iplen = 16;
    } else {
      return UV_EINVAL;
    }
  }
  size_t start;
  int r = ext_begin(b, EXT_ID_HANDSHAKE, &start);
  /* Keys in ascending order: m, metadata_size, p, reqq, v, yourip. */
  if (r == 0) r = bencode_put_dict(b);
  if (r == 0) r = bencode_put_cstr(b, "m");
  if (r == 0) r = bencode_put_dict(b);
  if (r == 0) r = bencode_put_kv_int(b, "ut_metadata", EXT_ID_UT_METADATA);
  if (r == 0 && !o->no_pex) r = bencode_put_kv_int(b, "ut_pex", EXT_ID_UT_PEX);
  if (r == 0) r = bencode_put_end(b);
  if (r == 0 && o->metadata_size) r = bencode_put_kv_int(b, "metadata_size", o->metadata_size);
  if (r == 0 && o->port) r = bencode_put_kv_int(b, "p", o->port);
  if (r == 0 && o->reqq) r = bencode_put_kv_int(b, "reqq", o->reqq);
  if (r == 0) r = bencode_put_kv_cstr(b, "v", EXT_CLIENT_VERSION);
  if (r == 0 && iplen) r = bencode_put_kv_str(b, "yourip", ip, iplen);
  if (r == 0) r = bencode_put_end(b);
  return ext_finish(b, start, r);
}

void ext_handshake_init(struct ext_handshake *h)
{
  memset(h, 0, sizeof *h);
  h->reqq = EXT_REQQ_DEFAULT;
}

/* An `m` entry: the id when it is an integer 0..255, 0 when out of range,
 * the old value when absent or of another type. */
static uint8_t ext_m_id(const struct bencode_doc *d, int m, const char *name, uint8_t old)
{
  int64_t v;
  if (bencode_get_int(d, bencode_dict_get(d, m, name), &v) != 0)
    return old;
  return v >= 0 && v <= 255 ? (uint8_t)v : 0;
}

int ext_handshake_parse(struct ext_handshake *h, const uint8_t *p, size_t len,
                        char *err, size_t errlen)
{
  static const struct bencode_limits lim = {
    .max_tokens = EXT_HANDSHAKE_MAX_TOKENS, .max_depth = EXT_HANDSHAKE_MAX_DEPTH,
  };
  struct bencode_doc d;
  char berr[SHOAL_ERRLEN];
  int r = bencode_decode(&d, p, len, &lim, berr, sizeof berr);
  if (r)
    return shoal_fail(err, errlen, r, "extension handshake: %s", berr);
  if (d.tok[0].type != BENCODE_DICT) {
    bencode_free(&d);
    return shoal_fail(err, errlen, SHOAL_EPROTO, "extension handshake is not a dictionary");
  }
  struct ext_handshake n = *h;
  int64_t v;
  const uint8_t *s;
  size_t slen;

  int m = bencode_dict_get_type(&d, 0, "m", BENCODE_DICT);
  if (m >= 0) {
    n.ut_metadata = ext_m_id(&d, m, "ut_metadata", n.ut_metadata);
    n.ut_pex = ext_m_id(&d, m, "ut_pex", n.ut_pex);
  }
  if (bencode_get_str(&d, bencode_dict_get(&d, 0, "v"), &s, &slen) == 0)
    ext_sanitise(s, slen, n.v, EXT_CLIENT_NAME_MAX);
  if (bencode_get_int(&d, bencode_dict_get(&d, 0, "p"), &v) == 0 && v >= 1 && v <= 65535)
    n.port = (uint16_t)v;
  if (bencode_get_int(&d, bencode_dict_get(&d, 0, "reqq"), &v) == 0)
    n.reqq = v < 1 ? 1 : v > EXT_REQQ_MAX ? EXT_REQQ_MAX : (uint32_t)v;
  if (bencode_get_int(&d, bencode_dict_get(&d, 0, "metadata_size"), &v) == 0)
    n.metadata_size = v >= 1 && v <= EXT_MAX_METADATA ? (uint32_t)v : 0;
  if (bencode_get_str(&d, bencode_dict_get(&d, 0, "yourip"), &s, &slen) == 0) {
    if (slen == 4) {
      struct sockaddr_in *sin = (struct sockaddr_in *)&n.yourip;
      memset(&n.yourip, 0, sizeof n.yourip);
      sin->sin_family = AF_INET;
      memcpy(&sin->sin_addr, s, 4);
      n.has_yourip = true;
    } else if (slen == 16) {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&n.yourip;
      memset(&n.yourip, 0, sizeof n.yourip);
      sin6->sin6_family = AF_INET6;
      memcpy(&sin6->sin6_addr, s, 16);
      n.has_yourip = true;
    }
  }
  bencode_free(&d);
  *h = n;
  return 0;
}

/* ---- BEP 9 ut_metadata ---------------------------------------------------- */

uint32_t ext_md_pieces(uint32_t size)
{
  return size / EXT_MD_BLOCK + (size % EXT_MD_BLOCK != 0);
}

uint32_t ext_md_piece_len(uint32_t size, uint32_t piece)
{
  if (piece >= ext_md_pieces(size))
    return 0;
  uint32_t off = piece * EXT_MD_BLOCK;   /* < size: no overflow */
  return size - off < EXT_MD_BLOCK ? size - off : EXT_MD_BLOCK;
}

/* d8:msg_typeiTe5:pieceiPe[10:total_sizeiSe]e */
static int ext_md_put_dict(struct buf *b, int type, uint32_t piece, uint32_t total)
{
  int r = bencode_put_dict(b);
  if (r == 0) r = bencode_put_kv_int(b, "msg_type", type);
  if (r == 0) r = bencode_put_kv_int(b, "piece", piece);
  if (r == 0 && type == EXT_MD_DATA) r = bencode_put_kv_int(b, "total_size", total);
  if (r == 0) r = bencode_put_end(b);
  return r;
}

static int ext_md_build_simple(struct buf *b, uint8_t peer_id, int type, uint32_t piece)
{
  if (peer_id == 0 || piece >= EXT_MD_MAX_PIECES)
    return UV_EINVAL;
  size_t start;
  int r = ext_begin(b, peer_id, &start);
  if (r == 0)
    r = ext_md_put_dict(b, type, piece, 0);
  return ext_finish(b, start, r);
}

int ext_md_build_request(struct buf *b, uint8_t peer_id, uint32_t piece)
{
  return ext_md_build_simple(b, peer_id, EXT_MD_REQUEST, piece);
}

int ext_md_build_reject(struct buf *b, uint8_t peer_id, uint32_t piece)
{
  return ext_md_build_simple(b, peer_id, EXT_MD_REJECT, piece);
}

int ext_md_build_data(struct buf *b, uint8_t peer_id, uint32_t piece,
                      const uint8_t *metadata, uint32_t metadata_size)
{
  if (peer_id == 0 || metadata_size == 0 || metadata_size > EXT_MAX_METADATA ||
      piece >= ext_md_pieces(metadata_size))
    return UV_EINVAL;
  uint32_t n = ext_md_piece_len(metadata_size, piece);
  size_t start;
  int r = ext_begin(b, peer_id, &start);
  if (r == 0)
    r = ext_md_put_dict(b, EXT_MD_DATA, piece, metadata_size);
  if (r == 0)
    r = buf_append(b, metadata + (size_t)piece * EXT_MD_BLOCK, n);
  return ext_finish(b, start, r);
}

int ext_md_parse(const uint8_t *p, size_t len, uint32_t known_size,
                 struct ext_md_msg *out, char *err, size_t errlen)
{
  static const struct bencode_limits lim = {
    .max_tokens = EXT_MD_MAX_TOKENS, .max_depth = EXT_MD_MAX_DEPTH, .allow_trailing = true,
  };
  struct bencode_doc d;
  char berr[SHOAL_ERRLEN];
  int r = bencode_decode(&d, p, len, &lim, berr, sizeof berr);
  if (r)
    return shoal_fail(err, errlen, r, "ut_metadata: %s", berr);
  memset(out, 0, sizeof *out);
  int64_t type, piece, total;
  const char *why = NULL;
  size_t trailing = len - d.used;
  if (d.tok[0].type != BENCODE_DICT) {
    why = "ut_metadata: message is not a dictionary";
  } else if (bencode_get_int(&d, bencode_dict_get(&d, 0, "msg_type"), &type) != 0) {
    why = "ut_metadata: msg_type missing or not an integer";
  } else if (type < EXT_MD_REQUEST || type > EXT_MD_REJECT) {
    out->type = EXT_MD_UNKNOWN;        /* ignored, as BEP 9 asks */
  } else if (bencode_get_int(&d, bencode_dict_get(&d, 0, "piece"), &piece) != 0) {
    why = "ut_metadata: piece missing or not an integer";
  } else if (piece < 0 || piece >= EXT_MD_MAX_PIECES ||
             (known_size && piece >= ext_md_pieces(known_size))) {
    why = "ut_metadata: piece index out of range";
  } else if (type != EXT_MD_DATA) {
    out->type = (enum ext_md_type)type;
    out->piece = (uint32_t)piece;
    if (trailing)
      why = "ut_metadata: bytes after a request or reject";
  } else if (bencode_get_int(&d, bencode_dict_get(&d, 0, "total_size"), &total) != 0) {
    why = "ut_metadata: total_size missing or not an integer";
  } else if (total < 1 || total > EXT_MAX_METADATA) {
    why = "ut_metadata: total_size out of range";
  } else if (known_size && total != known_size) {
    why = "ut_metadata: total_size differs from the announced metadata size";
  } else if (piece >= ext_md_pieces((uint32_t)total)) {
    why = "ut_metadata: piece index beyond total_size";
  } else if (trailing != ext_md_piece_len((uint32_t)total, (uint32_t)piece)) {
    why = "ut_metadata: piece data length does not match total_size";
  } else {
    out->type = EXT_MD_DATA;
    out->piece = (uint32_t)piece;
    out->total_size = (uint32_t)total;
    out->data = p + d.used;
    out->data_len = trailing;
  }
  bencode_free(&d);
  if (why)
    return shoal_fail(err, errlen, SHOAL_EPROTO, "%s", why);
  return 0;
}

/* ---- metadata assembler --------------------------------------------------- */

void ext_md_asm_init(struct ext_md_asm *a, const uint8_t infohash[20])
{
  memset(a, 0, sizeof *a);
  memcpy(a->infohash, infohash, 20);
}

static void ext_md_asm_release(struct ext_md_asm *a)
{
  free(a->data);
  free(a->have);
  free(a->asked_ms);
  a->data = NULL;
  a->have = NULL;
  a->asked_ms = NULL;
  a->size = a->npieces = a->nhave = 0;
}

void ext_md_asm_free(struct ext_md_asm *a)
{
  ext_md_asm_release(a);
  memset(a, 0, sizeof *a);
}

int ext_md_asm_set_size(struct ext_md_asm *a, uint32_t size)
{
  if (a->done)
    return SHOAL_EEXISTS;
  if (size == 0 || size > EXT_MAX_METADATA)
    return UV_EINVAL;
  if (size == a->size)
    return 0;
  if (a->nhave > 0)
    return SHOAL_EEXISTS;
  uint32_t n = ext_md_pieces(size);
  uint8_t *data = malloc(size);
  uint8_t *have = calloc(n, 1);
  uint64_t *asked = calloc(n, sizeof *asked);
  if (data == NULL || have == NULL || asked == NULL) {
    free(data);
    free(have);
    free(asked);
    return UV_ENOMEM;
  }
  ext_md_asm_release(a);
  a->data = data;
  a->have = have;
  a->asked_ms = asked;
  a->size = size;
  a->npieces = n;
  return 0;
}

int ext_md_asm_pick(struct ext_md_asm *a, uint64_t now_ms, uint64_t timeout_ms, uint32_t *piece)
{
  if (a->done || a->size == 0)
    return SHOAL_ENOTFOUND;
  if (timeout_ms == 0)
    timeout_ms = EXT_MD_REQUEST_TIMEOUT_MS;
  for (uint32_t i = 0; i < a->npieces; i++) {
    if (a->have[i])
      continue;
    uint64_t t = a->asked_ms[i];
    if (t == 0 || (now_ms >= t && now_ms - t >= timeout_ms)) {
      a->asked_ms[i] = now_ms ? now_ms : 1;
      *piece = i;
      return 0;
    }
  }
  return SHOAL_ENOTFOUND;
}

void ext_md_asm_unask(struct ext_md_asm *a, uint32_t piece)
{
  if (piece < a->npieces && a->asked_ms)
    a->asked_ms[piece] = 0;
}

int ext_md_asm_put(struct ext_md_asm *a, uint32_t piece, const uint8_t *data, size_t len)
{
  if (a->done)
    return SHOAL_EEXISTS;
  if (a->size == 0 || piece >= a->npieces || len != ext_md_piece_len(a->size, piece))
    return SHOAL_EPROTO;
  if (a->have[piece])
    return 0;
  memcpy(a->data + (size_t)piece * EXT_MD_BLOCK, data, len);
  a->have[piece] = 1;
  a->nhave++;
  return a->nhave == a->npieces;
}

void ext_md_asm_restart(struct ext_md_asm *a)
{
  if (a->done || a->have == NULL)
    return;
  memset(a->have, 0, a->npieces);
  memset(a->asked_ms, 0, (size_t)a->npieces * sizeof *a->asked_ms);
  a->nhave = 0;
}

int ext_md_asm_add(struct ext_md_asm *a, uint32_t piece, const uint8_t *data, size_t len)
{
  int r = ext_md_asm_put(a, piece, data, len);
  if (r != 1)
    return r;
  uint8_t h[HASH_SHA1_LEN];
  hash_sha1(a->data, a->size, h);
  if (memcmp(h, a->infohash, HASH_SHA1_LEN) == 0) {
    a->done = true;
    return 1;
  }
  ext_md_asm_restart(a);
  return SHOAL_EHASH;
}

uint8_t *ext_md_asm_take(struct ext_md_asm *a, uint32_t *size)
{
  if (!a->done || a->data == NULL)
    return NULL;
  uint8_t *p = a->data;
  *size = a->size;
  a->data = NULL;
  ext_md_asm_release(a);
  return p;
}

/* ---- BEP 11 ut_pex -------------------------------------------------------- */

/* The family an entry goes out as (AF_INET for v4-mapped IPv6), with its
 * compact form in e; 0 when the entry cannot be sent. */
static int ext_pex_compact(const struct sockaddr_storage *ss, uint8_t e[COMPACT_V6_LEN])
{
  uint8_t fam, ip[16];
  uint16_t port;
  if (compact_addr_split((const struct sockaddr *)ss, &fam, ip, &port) != 0 || port == 0)
    return 0;
  size_t iplen = fam == AF_INET ? 4 : 16;
  memcpy(e, ip, iplen);
  put_u16be(e + iplen, port);
  return fam;
}

int ext_pex_build(struct buf *b, uint8_t peer_id,
                  const struct ext_pex_peer *added, size_t nadded,
                  const struct sockaddr_storage *dropped, size_t ndropped)
{
  uint8_t a4[EXT_PEX_MAX_ADDED * 6], f4[EXT_PEX_MAX_ADDED];
  uint8_t a6[EXT_PEX_MAX_ADDED * 18], f6[EXT_PEX_MAX_ADDED];
  uint8_t d4[EXT_PEX_MAX_DROPPED * 6], d6[EXT_PEX_MAX_DROPPED * 18];
  size_t na4 = 0, na6 = 0, nd4 = 0, nd6 = 0;
  uint8_t e[COMPACT_V6_LEN];

  if (peer_id == 0)
    return UV_EINVAL;
  for (size_t i = 0; i < nadded && na4 + na6 < EXT_PEX_MAX_ADDED; i++) {
    int fam = ext_pex_compact(&added[i].addr, e);
    if (fam == AF_INET) {
      memcpy(a4 + 6 * na4, e, 6);
      f4[na4++] = added[i].flags;
    } else if (fam == AF_INET6) {
      memcpy(a6 + 18 * na6, e, 18);
      f6[na6++] = added[i].flags;
    }
  }
  for (size_t i = 0; i < ndropped && nd4 + nd6 < EXT_PEX_MAX_DROPPED; i++) {
    int fam = ext_pex_compact(&dropped[i], e);
    if (fam == AF_INET)
      memcpy(d4 + 6 * nd4++, e, 6);
    else if (fam == AF_INET6)
      memcpy(d6 + 18 * nd6++, e, 18);
  }
  size_t start;
  int r = ext_begin(b, peer_id, &start);
  /* Keys in ascending order: added, added.f, added6, added6.f, dropped, dropped6. */
  if (r == 0) r = bencode_put_dict(b);
  if (r == 0) r = bencode_put_kv_str(b, "added", a4, 6 * na4);
  if (r == 0) r = bencode_put_kv_str(b, "added.f", f4, na4);
  if (r == 0 && na6) r = bencode_put_kv_str(b, "added6", a6, 18 * na6);
  if (r == 0 && na6) r = bencode_put_kv_str(b, "added6.f", f6, na6);
  if (r == 0) r = bencode_put_kv_str(b, "dropped", d4, 6 * nd4);
  if (r == 0 && nd6) r = bencode_put_kv_str(b, "dropped6", d6, 18 * nd6);
  if (r == 0) r = bencode_put_end(b);
  return ext_finish(b, start, r);
}

/* Fetches the compact string under key (NULL/0 when absent) and checks its
 * type and length; returns the reason for an error, or NULL. */
static const char *ext_pex_field(const struct bencode_doc *d, const char *key, size_t esz,
                                 const uint8_t **p, size_t *len)
{
  *p = NULL;
  *len = 0;
  int v = bencode_dict_get(d, 0, key);
  if (v < 0)
    return NULL;
  if (bencode_get_str(d, v, p, len) != 0)
    return "ut_pex: a peer list or flags entry is not a string";
  if (esz > 1 && *len % esz != 0)
    return esz == 6 ? "ut_pex: IPv4 peer list length is not a multiple of 6"
                    : "ut_pex: IPv6 peer list length is not a multiple of 18";
  return NULL;
}

/* Appends the entries of one compact list (with optional aligned flags) to
 * the array; entries with port 0 are skipped, at most EXT_PEX_PARSE_MAX kept. */
static void ext_pex_take(int family, const uint8_t *p, size_t len, const uint8_t *flags,
                         size_t flen, struct ext_pex_peer *added,
                         struct sockaddr_storage *dropped, size_t *n)
{
  size_t esz = family == AF_INET ? 6 : 18;
  size_t count = len / esz;
  if (flags && flen != count)
    flags = NULL;
  for (size_t i = 0; i < count && *n < EXT_PEX_PARSE_MAX; i++) {
    const uint8_t *e = p + i * esz;
    uint16_t port = get_u16be(e + esz - 2);
    if (port == 0)
      continue;
    struct sockaddr_storage *ss = added ? &added[*n].addr : &dropped[*n];
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
      struct sockaddr_in *sin = (struct sockaddr_in *)ss;
      sin->sin_family = AF_INET;
      memcpy(&sin->sin_addr, e, 4);
      sin->sin_port = htons(port);
    } else {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
      sin6->sin6_family = AF_INET6;
      memcpy(&sin6->sin6_addr, e, 16);
      sin6->sin6_port = htons(port);
    }
    if (added)
      added[*n].flags = flags ? (uint8_t)(flags[i] & EXT_PEX_F_KEPT) : 0;
    (*n)++;
  }
}

int ext_pex_parse(const uint8_t *p, size_t len, struct ext_pex *out, char *err, size_t errlen)
{
  static const struct bencode_limits lim = {
    .max_tokens = EXT_PEX_MAX_TOKENS, .max_depth = EXT_PEX_MAX_DEPTH,
  };
  struct bencode_doc d;
  char berr[SHOAL_ERRLEN];
  int r = bencode_decode(&d, p, len, &lim, berr, sizeof berr);
  if (r)
    return shoal_fail(err, errlen, r, "ut_pex: %s", berr);
  const uint8_t *a4, *f4, *a6, *f6, *d4, *d6;
  size_t la4, lf4, la6, lf6, ld4, ld6;
  const char *why = NULL;
  if (d.tok[0].type != BENCODE_DICT)
    why = "ut_pex: message is not a dictionary";
  if (why == NULL) why = ext_pex_field(&d, "added", 6, &a4, &la4);
  if (why == NULL) why = ext_pex_field(&d, "added.f", 1, &f4, &lf4);
  if (why == NULL) why = ext_pex_field(&d, "added6", 18, &a6, &la6);
  if (why == NULL) why = ext_pex_field(&d, "added6.f", 1, &f6, &lf6);
  if (why == NULL) why = ext_pex_field(&d, "dropped", 6, &d4, &ld4);
  if (why == NULL) why = ext_pex_field(&d, "dropped6", 18, &d6, &ld6);
  if (why == NULL) {
    out->nadded = out->ndropped = 0;
    ext_pex_take(AF_INET, a4, la4, f4, lf4, out->added, NULL, &out->nadded);
    ext_pex_take(AF_INET6, a6, la6, f6, lf6, out->added, NULL, &out->nadded);
    ext_pex_take(AF_INET, d4, ld4, NULL, 0, NULL, out->dropped, &out->ndropped);
    ext_pex_take(AF_INET6, d6, ld6, NULL, 0, NULL, out->dropped, &out->ndropped);
  }
  bencode_free(&d);
  if (why)
    return shoal_fail(err, errlen, SHOAL_EPROTO, "%s", why);
  return 0;
}

/* ---- BEP 6 Fast Extension ------------------------------------------------- */

size_t ext_put_have_all(uint8_t out[5]) { return wire_put_simple(out, EXT_FAST_HAVE_ALL); }
size_t ext_put_have_none(uint8_t out[5]) { return wire_put_simple(out, EXT_FAST_HAVE_NONE); }

static size_t ext_put_index(uint8_t out[9], uint8_t id, uint32_t index)
{
  put_u32be(out, 5);
  out[4] = id;
  put_u32be(out + 5, index);
  return 9;
}

size_t ext_put_suggest(uint8_t out[9], uint32_t index) { return ext_put_index(out, EXT_FAST_SUGGEST, index); }
size_t ext_put_allowed_fast(uint8_t out[9], uint32_t index) { return ext_put_index(out, EXT_FAST_ALLOWED_FAST, index); }

size_t ext_put_reject(uint8_t out[17], uint32_t index, uint32_t begin, uint32_t length)
{
  return wire_put_request(out, EXT_FAST_REJECT, index, begin, length);
}

bool ext_is_fast_id(int id)
{
  return id == EXT_FAST_SUGGEST || id == EXT_FAST_HAVE_ALL || id == EXT_FAST_HAVE_NONE ||
         id == EXT_FAST_REJECT || id == EXT_FAST_ALLOWED_FAST;
}

int ext_fast_parse(int id, const uint8_t *payload, size_t len, uint32_t num_pieces,
                   struct ext_fast_msg *out)
{
  struct cur c = cur_make(payload, len);
  struct ext_fast_msg m = { .id = id };
  switch (id) {
  case EXT_FAST_HAVE_ALL:
  case EXT_FAST_HAVE_NONE:
    if (len != 0)
      return SHOAL_EPROTO;
    break;
  case EXT_FAST_SUGGEST:
  case EXT_FAST_ALLOWED_FAST:
    if (len != 4 || cur_u32be(&c, &m.index))
      return SHOAL_EPROTO;
    break;
  case EXT_FAST_REJECT:
    if (len != 12 || cur_u32be(&c, &m.index) || cur_u32be(&c, &m.begin) || cur_u32be(&c, &m.length))
      return SHOAL_EPROTO;
    if (m.length == 0 || m.length > WIRE_MAX_BLOCK)
      return SHOAL_EPROTO;
    break;
  default:
    return UV_EINVAL;
  }
  if (num_pieces && m.index >= num_pieces)
    return SHOAL_EPROTO;
  *out = m;
  return 0;
}

int ext_allowed_fast(const struct sockaddr *peer, const uint8_t infohash[20],
                     uint32_t num_pieces, uint32_t k, uint32_t *out)
{
  uint8_t x[24], fam, ip[16];
  uint16_t port;
  if (compact_addr_split(peer, &fam, ip, &port) != 0 || fam != AF_INET)
    return UV_EAFNOSUPPORT;
  memcpy(x, ip, 4);
  if (num_pieces == 0)
    return UV_EINVAL;
  x[3] = 0;                            /* ip & 0xffffff00 */
  memcpy(x + 4, infohash, 20);
  if (k > num_pieces)
    k = num_pieces;
  if (k > EXT_ALLOWED_FAST_MAX)
    k = EXT_ALLOWED_FAST_MAX;
  uint8_t h[HASH_SHA1_LEN], t[HASH_SHA1_LEN];
  hash_sha1(x, sizeof x, h);
  uint32_t n = 0;
  /* With k <= num_pieces every round has a chance to add an index; the round
   * bound only guarantees an end (k = num_pieces = 64 needs about 60). */
  for (int round = 0; n < k && round < 100000; round++) {
    for (int i = 0; i < 5 && n < k; i++) {
      uint32_t idx = get_u32be(h + 4 * i) % num_pieces;
      bool seen = false;
      for (uint32_t j = 0; j < n && !seen; j++)
        seen = out[j] == idx;
      if (!seen)
        out[n++] = idx;
    }
    memcpy(t, h, sizeof t);
    hash_sha1(t, sizeof t, h);
  }
  return (int)n;
}
