/* fuzz_manifest.c -- libFuzzer target: manifest_parse, the invariants of a parsed torrent, encode/parse round trips. */
#include <stdbool.h>
#include <string.h>

#include "common/bencode.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/manifest.h"
#include "tests/fuzz/fuzzutil.h"

#define PAIRWISE_MAX 64u   /* files compared pairwise (independent of the parser's sort) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  hash_global_init();
  return 0;
}

static bool str_eq(const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

/* One component: non-empty, not "." or "..", no '\\' (no '/' or NUL by construction). */
static void check_component(const char *p, size_t n)
{
  FUZZ_CHECK(n > 0);
  FUZZ_CHECK(!(n == 1 && p[0] == '.') && !(n == 2 && p[0] == '.' && p[1] == '.'));
  FUZZ_CHECK(memchr(p, '\\', n) == NULL);
}

static void check_path(const char *path)
{
  FUZZ_CHECK(path != NULL && path[0] != '\0' && path[0] != '/');
  size_t len = strlen(path);
  FUZZ_CHECK(len <= MANIFEST_MAX_PATH_LEN);
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || path[i] == '/') {
      check_component(path + start, i - start);   /* also: no "//", no trailing '/' */
      start = i + 1;
    }
  }
}

/* Is a a folder of b ("a" and "a/...")? */
static bool is_folder_of(const char *a, const char *b)
{
  size_t n = strlen(a);
  return strncmp(a, b, n) == 0 && b[n] == '/';
}

static void check_manifest(const struct manifest *m)
{
  FUZZ_CHECK(m->name != NULL && strchr(m->name, '/') == NULL);
  check_component(m->name, strlen(m->name));
  FUZZ_CHECK(m->piece_length > 0 && m->piece_length <= MANIFEST_MAX_PIECE_LEN);
  FUZZ_CHECK(m->total_length > 0 && m->total_length <= MANIFEST_MAX_TOTAL);
  uint64_t need = m->total_length / m->piece_length + (m->total_length % m->piece_length != 0);
  FUZZ_CHECK(m->num_pieces == need);
  FUZZ_CHECK(m->piece_hashes != NULL);
  FUZZ_CHECK(m->num_files >= 1 && m->num_files <= MANIFEST_MAX_FILES && m->files != NULL);
  if (!m->multi_file)
    FUZZ_CHECK(m->num_files == 1 && strcmp(m->files[0].path, m->name) == 0);

  /* Files: safe paths, contiguous offsets summing to the total. */
  uint64_t off = 0;
  for (uint32_t i = 0; i < m->num_files; i++) {
    const struct manifest_file *f = &m->files[i];
    check_path(f->path);
    if (!m->multi_file)
      FUZZ_CHECK(strchr(f->path, '/') == NULL);
    FUZZ_CHECK(f->offset == off);
    FUZZ_CHECK(f->length <= MANIFEST_MAX_TOTAL - off);
    off += f->length;
    FUZZ_CHECK((f->attr & ~(MANIFEST_ATTR_PAD | MANIFEST_ATTR_EXEC | MANIFEST_ATTR_HIDDEN)) == 0);
  }
  FUZZ_CHECK(off == m->total_length);

  /* No duplicate path, no file that is a folder of another (pad files aside). */
  if (m->num_files <= PAIRWISE_MAX) {
    for (uint32_t i = 0; i < m->num_files; i++) {
      if (m->files[i].attr & MANIFEST_ATTR_PAD)
        continue;
      for (uint32_t j = 0; j < m->num_files; j++) {
        if (i == j || (m->files[j].attr & MANIFEST_ATTR_PAD))
          continue;
        FUZZ_CHECK(strcmp(m->files[i].path, m->files[j].path) != 0);
        FUZZ_CHECK(!is_folder_of(m->files[i].path, m->files[j].path));
      }
    }
  }

  /* Piece sizes add up; file_at finds the file holding each file's bytes. */
  uint64_t sum = 0;
  for (uint32_t p = 0; p < m->num_pieces; p++) {
    uint32_t ps = manifest_piece_size(m, p);
    FUZZ_CHECK(ps >= 1 && ps <= m->piece_length);
    if (p + 1 < m->num_pieces)
      FUZZ_CHECK(ps == m->piece_length);
    sum += ps;
  }
  FUZZ_CHECK(sum == m->total_length);
  FUZZ_CHECK(manifest_piece_size(m, m->num_pieces) == 0);
  for (uint32_t i = 0; i < m->num_files; i++) {
    const struct manifest_file *f = &m->files[i];
    if (f->length == 0)
      continue;
    uint64_t probes[2] = { f->offset, f->offset + f->length - 1 };
    for (int k = 0; k < 2; k++) {
      int at = manifest_file_at(m, probes[k]);
      FUZZ_CHECK(at >= 0 && (uint32_t)at < m->num_files);
      const struct manifest_file *g = &m->files[at];
      FUZZ_CHECK(g->length > 0 && g->offset <= probes[k] && probes[k] - g->offset < g->length);
    }
  }
  FUZZ_CHECK(manifest_file_at(m, m->total_length) == -1);

  /* The info dict and its hash. */
  FUZZ_CHECK(m->info != NULL && m->info_len >= 2 && m->info[0] == 'd' && m->info[m->info_len - 1] == 'e');
  uint8_t h[HASH_SHA1_LEN];
  hash_sha1(m->info, m->info_len, h);
  FUZZ_CHECK(memcmp(h, m->infohash, sizeof h) == 0);

  /* Trackers: non-empty tiers of plausible URLs. */
  for (uint32_t t = 0; t < m->num_tiers; t++) {
    FUZZ_CHECK(m->tiers[t].count >= 1);
    for (uint32_t u = 0; u < m->tiers[t].count; u++) {
      const char *url = m->tiers[t].urls[u];
      FUZZ_CHECK(url != NULL && url[0] != '\0');
      for (const char *c = url; *c; c++)
        FUZZ_CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
    }
  }
}

/* Same torrent content (everything but the info bytes). */
static void check_same_fields(const struct manifest *a, const struct manifest *b)
{
  FUZZ_CHECK(strcmp(a->name, b->name) == 0);
  FUZZ_CHECK(a->multi_file == b->multi_file && a->total_length == b->total_length);
  FUZZ_CHECK(a->piece_length == b->piece_length && a->num_pieces == b->num_pieces);
  FUZZ_CHECK(memcmp(a->piece_hashes, b->piece_hashes, (size_t)a->num_pieces * HASH_SHA1_LEN) == 0);
  FUZZ_CHECK(a->num_files == b->num_files);
  for (uint32_t i = 0; i < a->num_files; i++) {
    FUZZ_CHECK(strcmp(a->files[i].path, b->files[i].path) == 0);
    FUZZ_CHECK(a->files[i].length == b->files[i].length && a->files[i].offset == b->files[i].offset);
    FUZZ_CHECK(a->files[i].attr == b->files[i].attr);
  }
  FUZZ_CHECK(a->private_ == b->private_);
}

static void check_same_outer(const struct manifest *a, const struct manifest *b)
{
  FUZZ_CHECK(a->num_tiers == b->num_tiers);
  for (uint32_t t = 0; t < a->num_tiers; t++) {
    FUZZ_CHECK(a->tiers[t].count == b->tiers[t].count);
    for (uint32_t u = 0; u < a->tiers[t].count; u++)
      FUZZ_CHECK(strcmp(a->tiers[t].urls[u], b->tiers[t].urls[u]) == 0);
  }
  FUZZ_CHECK(str_eq(a->comment, b->comment) && str_eq(a->created_by, b->created_by));
  FUZZ_CHECK(a->creation_date == b->creation_date);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct manifest *m = NULL;
  char err[SHOAL_ERRLEN];
  memset(err, 'x', sizeof err);
  int r = manifest_parse(data, size, &m, err, sizeof err);
  if (r) {
    FUZZ_CHECK(m == NULL);
    FUZZ_CHECK(r == SHOAL_EMANIFEST || r == SHOAL_EPATH || r == SHOAL_EBENCODE || r == SHOAL_ETOOBIG);
    FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    return 0;
  }
  FUZZ_CHECK(m != NULL);
  check_manifest(m);

  /* The info bytes are the input's own "info" value. */
  struct bencode_doc d;
  FUZZ_CHECK(bencode_decode(&d, data, size, NULL, err, sizeof err) == 0);
  int info = bencode_dict_get(&d, 0, "info");
  FUZZ_CHECK(info > 0 && d.tok[info].raw_len == m->info_len &&
             memcmp(data + d.tok[info].raw_off, m->info, m->info_len) == 0);
  bencode_free(&d);

  /* Encode and parse again: the same infohash and the same fields. */
  struct buf out;
  buf_init(&out, MANIFEST_MAX_FILE_SIZE);
  FUZZ_CHECK(manifest_encode(m, &out) == 0);
  struct manifest *m2 = NULL;
  r = manifest_parse(out.p, out.len, &m2, err, sizeof err);
  if (r)
    fprintf(stderr, "re-parse: %s\n", err);
  FUZZ_CHECK(r == 0);
  FUZZ_CHECK(memcmp(m->infohash, m2->infohash, sizeof m->infohash) == 0);
  check_same_fields(m, m2);
  check_same_outer(m, m2);
  manifest_free(m2);
  buf_free(&out);

  /* The bare info dict (BEP 9 metadata) parses to the same torrent. */
  struct manifest *mi = NULL;
  FUZZ_CHECK(manifest_parse_info(m->info, m->info_len, &mi, err, sizeof err) == 0);
  FUZZ_CHECK(memcmp(m->infohash, mi->infohash, sizeof m->infohash) == 0);
  check_same_fields(m, mi);
  FUZZ_CHECK(mi->num_tiers == 0);
  manifest_free(mi);

  /* An info dict built from the fields alone describes the same torrent. */
  struct manifest copy = *m;
  copy.info = NULL;
  copy.info_len = 0;
  buf_init(&out, MANIFEST_MAX_FILE_SIZE);
  FUZZ_CHECK(manifest_encode(&copy, &out) == 0);
  FUZZ_CHECK(copy.info != NULL);
  r = manifest_parse(out.p, out.len, &m2, err, sizeof err);
  if (r)
    fprintf(stderr, "re-parse of the rebuilt info: %s\n", err);
  FUZZ_CHECK(r == 0);
  FUZZ_CHECK(memcmp(copy.infohash, m2->infohash, sizeof m2->infohash) == 0);
  check_same_fields(m, m2);
  check_same_outer(m, m2);
  manifest_free(m2);
  free(copy.info);
  buf_free(&out);

  manifest_free(m);
  return 0;
}
