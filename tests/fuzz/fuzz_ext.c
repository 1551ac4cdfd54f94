/* fuzz_ext.c -- libFuzzer target: BEP 10 extension messages as a peer sends them --
 * handshake, ut_metadata (with the assembler), ut_pex -- and BEP 6 messages.
 * The first input byte picks the parser, the rest is the payload. */
#include <netinet/in.h>
#include <string.h>

#include "common/err.h"
#include "common/hash.h"
#include "common/utf8.h"
#include "peer/ext.h"
#include "tests/fuzz/fuzzutil.h"

static void handshake(const uint8_t *p, size_t n)
{
  struct ext_handshake h;
  char err[SHOAL_ERRLEN];
  ext_handshake_init(&h);
  if (ext_handshake_parse(&h, p, n, err, sizeof err) != 0)
    return;
  FUZZ_CHECK(h.reqq >= 1 && h.reqq <= EXT_REQQ_MAX);
  FUZZ_CHECK(h.metadata_size <= EXT_MAX_METADATA);
  size_t vl = strnlen(h.v, sizeof h.v);
  FUZZ_CHECK(vl <= EXT_CLIENT_NAME_MAX && utf8_valid((const uint8_t *)h.v, vl));
  for (size_t i = 0; i < vl; i++)
    FUZZ_CHECK((uint8_t)h.v[i] >= 0x20 && h.v[i] != 0x7f);
  if (h.has_yourip)
    FUZZ_CHECK(h.yourip.ss_family == AF_INET || h.yourip.ss_family == AF_INET6);
}

/* Metadata messages fed to an assembler for a small info dict whose hash
 * the input cannot know: pieces are taken, never "verified". */
static void metadata(const uint8_t *p, size_t n)
{
  if (n < 4)
    return;
  uint32_t known = ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) % (3 * EXT_MD_BLOCK + 7);
  p += 4, n -= 4;
  struct ext_md_msg msg;
  char err[SHOAL_ERRLEN];
  if (ext_md_parse(p, n, known, &msg, err, sizeof err) != 0)
    return;
  if (msg.type != EXT_MD_DATA)
    return;
  FUZZ_CHECK(msg.total_size >= 1 && msg.total_size <= EXT_MAX_METADATA);
  if (known)
    FUZZ_CHECK(msg.total_size == known);
  FUZZ_CHECK(msg.piece < ext_md_pieces(msg.total_size));
  FUZZ_CHECK(msg.data_len == ext_md_piece_len(msg.total_size, msg.piece));
  FUZZ_CHECK(msg.data >= p && msg.data + msg.data_len <= p + n);
  uint8_t ih[20] = { 0 };
  struct ext_md_asm a;
  ext_md_asm_init(&a, ih);
  if (ext_md_asm_set_size(&a, msg.total_size) == 0) {
    int r = ext_md_asm_add(&a, msg.piece, msg.data, msg.data_len);
    FUZZ_CHECK(r == 0 || r == SHOAL_EHASH);   /* a zero infohash never matches */
    FUZZ_CHECK(!a.done);
  }
  ext_md_asm_free(&a);
}

static void pex(const uint8_t *p, size_t n)
{
  static struct ext_pex x;
  char err[SHOAL_ERRLEN];
  if (ext_pex_parse(p, n, &x, err, sizeof err) != 0)
    return;
  FUZZ_CHECK(x.nadded <= EXT_PEX_PARSE_MAX && x.ndropped <= EXT_PEX_PARSE_MAX);
  for (size_t i = 0; i < x.nadded; i++) {
    const struct sockaddr_storage *ss = &x.added[i].addr;
    FUZZ_CHECK(ss->ss_family == AF_INET || ss->ss_family == AF_INET6);
    uint16_t port = ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                             : ((const struct sockaddr_in6 *)ss)->sin6_port;
    FUZZ_CHECK(port != 0);
    FUZZ_CHECK((x.added[i].flags & ~EXT_PEX_F_KEPT) == 0);
  }
}

static void fast(const uint8_t *p, size_t n)
{
  if (n < 2)
    return;
  int id = EXT_FAST_SUGGEST + p[0] % 5;
  uint32_t np = p[1];                            /* 0: count unknown */
  struct ext_fast_msg f;
  if (ext_fast_parse(id, p + 2, n - 2, np, &f) != 0)
    return;
  FUZZ_CHECK(f.id == id);
  if (np && id != EXT_FAST_HAVE_ALL && id != EXT_FAST_HAVE_NONE)
    FUZZ_CHECK(f.index < np);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  switch (data[0] % 4) {
  case 0: handshake(p, n); break;
  case 1: metadata(p, n); break;
  case 2: pex(p, n); break;
  default: fast(p, n); break;
  }
  return 0;
}
