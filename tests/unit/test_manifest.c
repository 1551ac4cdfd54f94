/* test_manifest.c -- metainfo parsing, validation of hostile torrents, encoding round trips. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/bencode.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/manifest.h"

#define UNTOUCHED ((struct manifest *)(uintptr_t)0x1)

/* Expands a bencode template: "$N" becomes a string of N piece hashes
 * (20*N bytes, hash i filled with byte 'A'+i%26). */
static void expand(struct buf *b, const char *t)
{
  buf_init(b, 64u << 20);
  while (*t) {
    if (*t == '$') {
      char *end;
      unsigned long n = strtoul(t + 1, &end, 10);
      ck_assert_int_eq(buf_printf(b, "%lu:", n * 20), 0);
      for (unsigned long i = 0; i < n; i++)
        for (int k = 0; k < 20; k++)
          ck_assert_int_eq(buf_append_u8(b, (uint8_t)('A' + i % 26)), 0);
      t = end;
    } else {
      ck_assert_int_eq(buf_append_u8(b, (uint8_t)*t++), 0);
    }
  }
}

static struct manifest *parse_ok_bytes(const uint8_t *p, size_t n)
{
  char err[SHOAL_ERRLEN] = "";
  struct manifest *m = NULL;
  int r = manifest_parse(p, n, &m, err, sizeof err);
  ck_assert_msg(r == 0, "parse failed (%d): %s", r, err);
  ck_assert_ptr_nonnull(m);
  return m;
}

static struct manifest *parse_ok(const char *tmpl)
{
  struct buf b;
  expand(&b, tmpl);
  struct manifest *m = parse_ok_bytes(b.p, b.len);
  buf_free(&b);
  return m;
}

static void fails_bytes(const uint8_t *p, size_t n, int code, const char *needle)
{
  char err[SHOAL_ERRLEN] = "";
  struct manifest *m = UNTOUCHED;
  int r = manifest_parse(p, n, &m, err, sizeof err);
  ck_assert_msg(r == code, "expected %d (%s), got %d: %s", code, shoal_strerror(code), r, err);
  ck_assert_ptr_eq(m, UNTOUCHED);
  ck_assert_msg(strncmp(err, "invalid torrent file: ", 22) == 0, "prefix: %s", err);
  ck_assert_msg(strstr(err, needle) != NULL, "message '%s' does not name '%s'", err, needle);
  ck_assert_msg(strchr(err, '\n') == NULL, "message spans lines: %s", err);
}

static void fails(const char *tmpl, int code, const char *needle)
{
  struct buf b;
  expand(&b, tmpl);
  fails_bytes(b.p, b.len, code, needle);
  buf_free(&b);
}

/* A multi-file torrent around a bencoded list of file dicts; total <= 64 bytes. */
#define MULTI(files) "d4:infod5:filesl" files "e4:name4:root12:piece lengthi64e6:pieces$1ee"
#define FILE1(path) "d6:lengthi1e4:pathl" path "ee"
#define SINGLE(len, plen, pieces) \
  "d4:infod6:lengthi" len "e4:name1:a12:piece lengthi" plen "e6:pieces$" pieces "ee"

/* ---- a complete, valid torrent built with the encoder ---- */

static void put_file(struct buf *b, const char *attr, int64_t len, const char *c1, const char *c2)
{
  bencode_put_dict(b);
  if (attr)
    bencode_put_kv_cstr(b, "attr", attr);
  bencode_put_kv_int(b, "length", len);
  bencode_put_cstr(b, "path");
  bencode_put_list(b);
  bencode_put_cstr(b, c1);
  if (c2)
    bencode_put_cstr(b, c2);
  bencode_put_end(b);
  bencode_put_end(b);
}

static uint8_t good_pieces[4 * 20];

static void build_good_info(struct buf *ib)
{
  for (int i = 0; i < 80; i++)
    good_pieces[i] = (uint8_t)(i * 7 + 3);
  buf_init(ib, 1 << 20);
  bencode_put_dict(ib);
  bencode_put_cstr(ib, "files");
  bencode_put_list(ib);
  put_file(ib, NULL, 100, "dir", "a.bin");
  put_file(ib, "x", 0, "empty", NULL);
  put_file(ib, "p", 28, ".pad", "28");
  put_file(ib, "hx", 300, "z", NULL);
  bencode_put_end(ib);
  bencode_put_kv_cstr(ib, "name", "root \xc3\xa9t\xc3\xa9");
  bencode_put_kv_int(ib, "piece length", 128);
  bencode_put_kv_str(ib, "pieces", good_pieces, sizeof good_pieces);
  bencode_put_kv_int(ib, "private", 1);
  bencode_put_end(ib);
}

static void build_good(struct buf *b, struct buf *ib)
{
  build_good_info(ib);
  buf_init(b, 1 << 20);
  bencode_put_dict(b);
  bencode_put_kv_cstr(b, "announce", "http://ignored.example/announce");
  bencode_put_cstr(b, "announce-list");
  bencode_put_list(b);
  bencode_put_list(b);
  bencode_put_cstr(b, "http://t1.example/a");
  bencode_put_int(b, 5);                      /* not a string: skipped */
  bencode_put_cstr(b, "http://t2.example/a");
  bencode_put_end(b);
  bencode_put_cstr(b, "not a tier");          /* not a list: skipped */
  bencode_put_list(b);                        /* empty tier: dropped */
  bencode_put_end(b);
  bencode_put_list(b);
  bencode_put_cstr(b, "udp://t3.example:80");
  bencode_put_cstr(b, "http://bad url/");     /* a space: skipped */
  bencode_put_end(b);
  bencode_put_end(b);
  bencode_put_kv_cstr(b, "comment", "hello");
  bencode_put_kv_cstr(b, "created by", "test/1");
  bencode_put_kv_int(b, "creation date", 1700000000);
  bencode_put_cstr(b, "info");
  buf_append(b, ib->p, ib->len);
  bencode_put_end(b);
}

START_TEST(parse_full)
{
  struct buf b, ib;
  build_good(&b, &ib);
  struct manifest *m = parse_ok_bytes(b.p, b.len);
  ck_assert_str_eq(m->name, "root \xc3\xa9t\xc3\xa9");
  ck_assert(m->multi_file);
  ck_assert_uint_eq(m->total_length, 428);
  ck_assert_uint_eq(m->piece_length, 128);
  ck_assert_uint_eq(m->num_pieces, 4);
  ck_assert_mem_eq(m->piece_hashes, good_pieces, 80);
  ck_assert_uint_eq(m->num_files, 4);
  ck_assert_str_eq(m->files[0].path, "dir/a.bin");
  ck_assert_uint_eq(m->files[0].length, 100);
  ck_assert_uint_eq(m->files[0].offset, 0);
  ck_assert_uint_eq(m->files[0].attr, 0);
  ck_assert_str_eq(m->files[1].path, "empty");
  ck_assert_uint_eq(m->files[1].length, 0);
  ck_assert_uint_eq(m->files[1].offset, 100);
  ck_assert_uint_eq(m->files[1].attr, MANIFEST_ATTR_EXEC);
  ck_assert_str_eq(m->files[2].path, ".pad/28");
  ck_assert_uint_eq(m->files[2].offset, 100);
  ck_assert_uint_eq(m->files[2].attr, MANIFEST_ATTR_PAD);
  ck_assert_str_eq(m->files[3].path, "z");
  ck_assert_uint_eq(m->files[3].length, 300);
  ck_assert_uint_eq(m->files[3].offset, 128);
  ck_assert_uint_eq(m->files[3].attr, MANIFEST_ATTR_HIDDEN | MANIFEST_ATTR_EXEC);
  uint8_t ih[20];
  hash_sha1(ib.p, ib.len, ih);
  ck_assert_mem_eq(m->infohash, ih, 20);
  ck_assert_uint_eq(m->info_len, ib.len);
  ck_assert_mem_eq(m->info, ib.p, ib.len);
  ck_assert_uint_eq(m->num_tiers, 2);
  ck_assert_uint_eq(m->tiers[0].count, 2);
  ck_assert_str_eq(m->tiers[0].urls[0], "http://t1.example/a");
  ck_assert_str_eq(m->tiers[0].urls[1], "http://t2.example/a");
  ck_assert_uint_eq(m->tiers[1].count, 1);
  ck_assert_str_eq(m->tiers[1].urls[0], "udp://t3.example:80");
  ck_assert(m->private_);
  ck_assert_str_eq(m->comment, "hello");
  ck_assert_str_eq(m->created_by, "test/1");
  ck_assert_int_eq(m->creation_date, 1700000000);
  ck_assert_uint_eq(manifest_piece_size(m, 0), 128);
  ck_assert_uint_eq(manifest_piece_size(m, 2), 128);
  ck_assert_uint_eq(manifest_piece_size(m, 3), 428 - 384);
  ck_assert_uint_eq(manifest_piece_size(m, 4), 0);
  manifest_free(m);

  /* the bare info dict parses to the same torrent, without trackers */
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(manifest_parse_info(ib.p, ib.len, &m, err, sizeof err), 0);
  ck_assert_mem_eq(m->infohash, ih, 20);
  ck_assert_uint_eq(m->num_tiers, 0);
  ck_assert_ptr_null(m->comment);
  ck_assert_uint_eq(m->num_files, 4);
  manifest_free(m);
  buf_free(&b);
  buf_free(&ib);
}
END_TEST

START_TEST(parse_single)
{
  struct manifest *m = parse_ok("d8:announce13:http://t/annc4:infod6:lengthi100e4:name5:a.bin"
                                "12:piece lengthi64e6:pieces$2e"
                                "7:comment3:\xff\xfe!10:created byi5e13:creation date2:xxe");
  ck_assert(!m->multi_file);
  ck_assert_str_eq(m->name, "a.bin");
  ck_assert_uint_eq(m->num_files, 1);
  ck_assert_str_eq(m->files[0].path, "a.bin");
  ck_assert_uint_eq(m->files[0].length, 100);
  ck_assert_uint_eq(m->files[0].offset, 0);
  ck_assert_uint_eq(m->total_length, 100);
  ck_assert_uint_eq(m->num_pieces, 2);
  ck_assert_uint_eq(manifest_piece_size(m, 0), 64);
  ck_assert_uint_eq(manifest_piece_size(m, 1), 36);
  ck_assert_uint_eq(m->num_tiers, 1);
  ck_assert_uint_eq(m->tiers[0].count, 1);
  ck_assert_str_eq(m->tiers[0].urls[0], "http://t/annc");
  ck_assert(!m->private_);
  /* optional fields of a wrong type or invalid text are ignored */
  ck_assert_ptr_null(m->comment);
  ck_assert_ptr_null(m->created_by);
  ck_assert_int_eq(m->creation_date, 0);
  manifest_free(m);

  /* private is true only for exactly 1; single-file attr is read */
  m = parse_ok("d4:infod4:attr1:x6:lengthi1e4:name1:a12:piece lengthi64e7:privatei2e6:pieces$1ee");
  ck_assert(!m->private_);
  ck_assert_uint_eq(m->files[0].attr, MANIFEST_ATTR_EXEC);
  manifest_free(m);
  m = parse_ok("d4:infod6:lengthi1e4:name1:a12:piece lengthi64e7:private1:16:pieces$1ee");
  ck_assert(!m->private_);
  manifest_free(m);
  /* piece length need not be a power of two; exact multiple of the total */
  m = parse_ok(SINGLE("300", "100", "3"));
  ck_assert_uint_eq(m->num_pieces, 3);
  ck_assert_uint_eq(manifest_piece_size(m, 2), 100);
  manifest_free(m);
}
END_TEST

START_TEST(trackers_capped)
{
  struct buf b, ib;
  build_good_info(&ib);
  buf_init(&b, 1 << 20);
  bencode_put_dict(&b);
  bencode_put_cstr(&b, "announce-list");
  bencode_put_list(&b);
  for (int t = 0; t < 40; t++) {
    bencode_put_list(&b);
    for (int u = 0; u < 40; u++) {
      char url[64];
      snprintf(url, sizeof url, "http://t%d.example/%d", t, u);
      bencode_put_cstr(&b, url);
    }
    bencode_put_end(&b);
  }
  bencode_put_end(&b);
  bencode_put_cstr(&b, "info");
  buf_append(&b, ib.p, ib.len);
  bencode_put_end(&b);
  struct manifest *m = parse_ok_bytes(b.p, b.len);
  ck_assert_uint_eq(m->num_tiers, 32);
  for (uint32_t t = 0; t < m->num_tiers; t++)
    ck_assert_uint_eq(m->tiers[t].count, 32);
  ck_assert_str_eq(m->tiers[31].urls[31], "http://t31.example/31");
  manifest_free(m);
  buf_free(&b);

  /* a URL longer than 1 KiB is skipped; then announce is the fallback */
  char *longurl = malloc(1100);
  memset(longurl, 'a', 1099);
  memcpy(longurl, "http://", 7);
  longurl[1099] = '\0';
  buf_init(&b, 1 << 20);
  bencode_put_dict(&b);
  bencode_put_kv_cstr(&b, "announce", "udp://fallback:1");
  bencode_put_cstr(&b, "announce-list");
  bencode_put_list(&b);
  bencode_put_list(&b);
  bencode_put_cstr(&b, longurl);
  bencode_put_end(&b);
  bencode_put_end(&b);
  bencode_put_cstr(&b, "info");
  buf_append(&b, ib.p, ib.len);
  bencode_put_end(&b);
  m = parse_ok_bytes(b.p, b.len);
  ck_assert_uint_eq(m->num_tiers, 1);
  ck_assert_str_eq(m->tiers[0].urls[0], "udp://fallback:1");
  manifest_free(m);
  free(longurl);
  buf_free(&b);
  buf_free(&ib);

  m = parse_ok(SINGLE("1", "64", "1"));
  ck_assert_uint_eq(m->num_tiers, 0);
  manifest_free(m);
}
END_TEST

START_TEST(round_trip)
{
  struct buf b, ib, out, out2;
  build_good(&b, &ib);
  struct manifest *m = parse_ok_bytes(b.p, b.len);
  buf_init(&out, 1 << 20);
  ck_assert_int_eq(manifest_encode(m, &out), 0);
  struct manifest *m2 = parse_ok_bytes(out.p, out.len);
  ck_assert_mem_eq(m2->infohash, m->infohash, 20);
  ck_assert_uint_eq(m2->num_tiers, 2);
  ck_assert_uint_eq(m2->tiers[0].count, 2);
  ck_assert_str_eq(m2->tiers[1].urls[0], "udp://t3.example:80");
  ck_assert_str_eq(m2->comment, "hello");
  ck_assert_str_eq(m2->created_by, "test/1");
  ck_assert_int_eq(m2->creation_date, 1700000000);
  /* the encoding is canonical: keys sorted, re-encoding gives the same bytes */
  struct bencode_doc doc;
  struct bencode_limits lim = bencode_default_limits;
  lim.require_sorted = true;
  char err[SHOAL_ERRLEN];
  ck_assert_int_eq(bencode_decode(&doc, out.p, out.len, &lim, err, sizeof err), 0);
  bencode_free(&doc);
  buf_init(&out2, 1 << 20);
  ck_assert_int_eq(manifest_encode(m2, &out2), 0);
  ck_assert_uint_eq(out2.len, out.len);
  ck_assert_mem_eq(out2.p, out.p, out.len);

  /* rebuilding the info dict from the fields gives the same (sorted) bytes */
  free(m2->info);
  m2->info = NULL;
  memset(m2->infohash, 0, 20);
  buf_free(&out2);
  buf_init(&out2, 1 << 20);
  ck_assert_int_eq(manifest_encode(m2, &out2), 0);
  ck_assert_mem_eq(m2->infohash, m->infohash, 20);
  ck_assert_uint_eq(m2->info_len, ib.len);
  ck_assert_mem_eq(m2->info, ib.p, ib.len);
  manifest_free(m2);
  manifest_free(m);

  /* a buffer too small: error, and the buffer is left as it was */
  struct buf small;
  buf_init(&small, 16);
  buf_append(&small, "xy", 2);
  m = parse_ok_bytes(b.p, b.len);
  ck_assert_int_eq(manifest_encode(m, &small), UV_E2BIG);
  ck_assert_uint_eq(small.len, 2);
  manifest_free(m);
  buf_free(&small);
  buf_free(&out);
  buf_free(&out2);
  buf_free(&b);
  buf_free(&ib);
}
END_TEST

START_TEST(infohash_of_raw_bytes)
{
  /* keys out of order: the infohash is over the bytes as found */
  const char *info = "d4:name1:a6:lengthi1e6:pieces20:AAAAAAAAAAAAAAAAAAAA12:piece lengthi64ee";
  struct buf b;
  buf_init(&b, 4096);
  buf_printf(&b, "d4:info%se", info);
  struct manifest *m = parse_ok_bytes(b.p, b.len);
  uint8_t ih[20];
  hash_sha1(info, strlen(info), ih);
  ck_assert_mem_eq(m->infohash, ih, 20);
  struct buf out;
  buf_init(&out, 4096);
  ck_assert_int_eq(manifest_encode(m, &out), 0);
  struct manifest *m2 = parse_ok_bytes(out.p, out.len);
  ck_assert_mem_eq(m2->infohash, ih, 20);
  manifest_free(m2);
  manifest_free(m);
  buf_free(&out);
  buf_free(&b);
}
END_TEST

START_TEST(encode_from_fields)
{
  struct manifest m = { 0 };
  struct manifest_file files[2] = {
    { .path = "sub/one", .length = 5, .offset = 0 },
    { .path = "two", .length = 20, .offset = 5, .attr = MANIFEST_ATTR_EXEC },
  };
  char *urls0[] = { "http://a/ann" };
  char *urls1[] = { "http://b/ann", "http://c/ann" };
  struct manifest_tier tiers[2] = { { urls0, 1 }, { urls1, 2 } };
  uint8_t hashes[40];
  memset(hashes, 0x5a, sizeof hashes);
  m.name = "folder";
  m.multi_file = true;
  m.total_length = 25;
  m.piece_length = 16;
  m.num_pieces = 2;
  m.piece_hashes = hashes;
  m.files = files;
  m.num_files = 2;
  m.tiers = tiers;
  m.num_tiers = 2;
  m.created_by = "shoal/test";
  m.creation_date = 42;
  struct buf out;
  buf_init(&out, 1 << 16);
  ck_assert_int_eq(manifest_encode(&m, &out), 0);
  ck_assert_ptr_nonnull(m.info);
  uint8_t ih[20];
  hash_sha1(m.info, m.info_len, ih);
  ck_assert_mem_eq(m.infohash, ih, 20);
  struct manifest *p = parse_ok_bytes(out.p, out.len);
  ck_assert_mem_eq(p->infohash, ih, 20);
  ck_assert_str_eq(p->name, "folder");
  ck_assert_uint_eq(p->num_files, 2);
  ck_assert_str_eq(p->files[0].path, "sub/one");
  ck_assert_str_eq(p->files[1].path, "two");
  ck_assert_uint_eq(p->files[1].offset, 5);
  ck_assert_uint_eq(p->files[1].attr, MANIFEST_ATTR_EXEC);
  ck_assert_uint_eq(p->num_tiers, 2);
  ck_assert_str_eq(p->tiers[0].urls[0], "http://a/ann");
  ck_assert_str_eq(p->tiers[1].urls[1], "http://c/ann");
  ck_assert_str_eq(p->created_by, "shoal/test");
  ck_assert_int_eq(p->creation_date, 42);
  ck_assert_ptr_null(p->comment);
  ck_assert(!p->private_);
  const char *al = "13:announce-listll12:http://a/annel12:http://b/ann12:http://c/annee";
  ck_assert_ptr_nonnull(memmem(out.p, out.len, al, strlen(al)));
  manifest_free(p);
  free(m.info);

  /* one tracker only: no announce-list key */
  m.info = NULL;
  m.num_tiers = 1;
  buf_free(&out);
  buf_init(&out, 1 << 16);
  ck_assert_int_eq(manifest_encode(&m, &out), 0);
  ck_assert_ptr_null(memmem(out.p, out.len, "announce-list", 13));
  ck_assert_ptr_nonnull(memmem(out.p, out.len, "8:announce12:http://a/ann", 25));
  free(m.info);

  /* an inconsistent manifest is refused */
  m.info = NULL;
  m.name = NULL;
  ck_assert_int_eq(manifest_encode(&m, &out), UV_EINVAL);
  buf_free(&out);
}
END_TEST

/* ---- hostile input: structure ---- */

START_TEST(bad_structure)
{
  fails("d4:infod6:lengthi1e4:name1:a", SHOAL_EBENCODE, "malformed bencode");
  fails("i3e", SHOAL_EMANIFEST, "top level is not a dictionary");
  fails("l4:infoe", SHOAL_EMANIFEST, "top level is not a dictionary");
  fails("d8:announce3:abce", SHOAL_EMANIFEST, "missing 'info' dictionary");
  fails("d4:info4:abcde", SHOAL_EMANIFEST, "'info' is not a dictionary");
  fails("d4:infod6:lengthi1e12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST, "missing 'name'");
  fails("d4:infod6:lengthi1e4:namei5e12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST,
        "'name' is not a string");
  fails("d4:infod6:lengthi1e4:name1:a6:pieces$1ee", SHOAL_EMANIFEST, "missing 'piece length'");
  fails("d4:infod6:lengthi1e4:name1:a12:piece length2:646:pieces$1ee", SHOAL_EMANIFEST,
        "'piece length' is not an integer");
  fails("d4:infod6:lengthi1e4:name1:a12:piece lengthi64eee", SHOAL_EMANIFEST, "missing 'pieces'");
  fails("d4:infod6:lengthi1e4:name1:a12:piece lengthi64e6:piecesi0eee", SHOAL_EMANIFEST,
        "'pieces' is not a string");
  fails("d4:infod5:filesle6:lengthi1e4:name1:a12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST,
        "both 'length' and 'files' present");
  fails("d4:infod4:name1:a12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST,
        "missing 'length' or 'files'");
  fails("d4:infod6:length1:14:name1:a12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST,
        "'length' is not an integer");
  fails("d4:infod5:files1:x4:name1:a12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST,
        "'files' is not a list");
  fails(MULTI(""), SHOAL_EMANIFEST, "'files' list is empty");
  fails(MULTI(FILE1("1:a") "i5e"), SHOAL_EMANIFEST, "file 1: not a dictionary");
  fails(MULTI("d4:pathl1:aee"), SHOAL_EMANIFEST, "file 0: missing 'length'");
  fails(MULTI("d6:lengthi1ee"), SHOAL_EMANIFEST, "file 0: missing 'path'");
  fails(MULTI("d6:lengthi1e4:path1:ae"), SHOAL_EMANIFEST, "file 0: 'path' is not a list");
  fails(MULTI(FILE1("1:a") FILE1("1:bi7e")), SHOAL_EMANIFEST, "file 1: path element 1 is not a string");
  /* trailing garbage and duplicate keys are bencode faults */
  fails(SINGLE("1", "64", "1") "x", SHOAL_EBENCODE, "trailing data");
  fails("d4:infod6:lengthi1e6:lengthi1e4:name1:a12:piece lengthi64e6:pieces$1ee", SHOAL_EBENCODE,
        "duplicate");
}
END_TEST

START_TEST(bad_sizes)
{
  fails(SINGLE("1", "0", "1"), SHOAL_EMANIFEST, "piece length 0 is not positive");
  fails(SINGLE("1", "-16384", "1"), SHOAL_EMANIFEST, "piece length -16384 is not positive");
  fails(SINGLE("1", "33554432", "1"), SHOAL_ETOOBIG, "piece length 33554432 exceeds the limit");
  fails("d4:infod6:lengthi1e4:name1:a12:piece lengthi64e6:pieces41:"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAee",
        SHOAL_EMANIFEST, "'pieces' length 41 is not a multiple of 20");
  fails(SINGLE("100", "64", "1"), SHOAL_EMANIFEST, "'pieces' holds 1 hashes but 2 are needed");
  fails(SINGLE("64", "64", "2"), SHOAL_EMANIFEST, "'pieces' holds 2 hashes but 1 are needed");
  fails(SINGLE("-1", "64", "1"), SHOAL_EMANIFEST, "negative length -1");
  fails(SINGLE("0", "64", "0"), SHOAL_EMANIFEST, "total length is 0");
  fails(MULTI("d6:lengthi0e4:pathl1:aee"), SHOAL_EMANIFEST, "total length is 0");
  fails(SINGLE("1125899906842625", "16777216", "1"), SHOAL_ETOOBIG, "length 1125899906842625 exceeds");
  fails(SINGLE("9223372036854775807", "64", "1"), SHOAL_ETOOBIG, "exceeds the limit");
  fails(SINGLE("92233720368547758070", "64", "1"), SHOAL_EBENCODE, "invalid integer");
  fails(MULTI("d6:lengthi-5e4:pathl1:aee"), SHOAL_EMANIFEST, "file 0: negative length -5");
  /* each file within the limit, their sum over it */
  fails(MULTI("d6:lengthi562949953421313e4:pathl1:aee" "d6:lengthi562949953421313e4:pathl1:bee"),
        SHOAL_ETOOBIG, "total length exceeds the limit");
}
END_TEST

START_TEST(too_many_files)
{
  struct buf b;
  buf_init(&b, 8u << 20);
  buf_append_str(&b, "d4:infod5:filesl");
  for (unsigned i = 0; i < MANIFEST_MAX_FILES + 1; i++)
    buf_printf(&b, "d6:lengthi0e4:pathl%u:%uee", (unsigned)snprintf(NULL, 0, "%u", i), i);
  buf_append_str(&b, "e4:name1:a12:piece lengthi64e6:pieces0:ee");
  fails_bytes(b.p, b.len, SHOAL_ETOOBIG, "too many files (100001, limit 100000)");
  buf_free(&b);
}
END_TEST

START_TEST(too_large_input)
{
  size_t n = MANIFEST_MAX_FILE_SIZE + 1;
  uint8_t *p = calloc(1, n);
  ck_assert_ptr_nonnull(p);
  p[0] = 'd';
  fails_bytes(p, n, SHOAL_ETOOBIG, "exceeds the limit of 64 MiB");
  free(p);
}
END_TEST

/* ---- hostile input: paths and names ---- */

START_TEST(bad_paths)
{
  fails(MULTI(FILE1("1:a") FILE1("1:b") FILE1("1:c") FILE1("3:dir2:..")), SHOAL_EPATH,
        "file 3: path component '..' is not allowed");
  fails(MULTI(FILE1("1:.")), SHOAL_EPATH, "file 0: path component '.' is not allowed");
  fails(MULTI(FILE1("3:...")), SHOAL_EPATH, "path component '...' made only of dots");
  fails(MULTI(FILE1("1:a0:1:b")), SHOAL_EPATH, "file 0: path component is empty");
  fails(MULTI(FILE1("")), SHOAL_EPATH, "file 0: empty path");
  fails(MULTI(FILE1("5:/etc/")), SHOAL_EPATH, "path component '/etc/' contains '/'");
  fails(MULTI(FILE1("3:a/b")), SHOAL_EPATH, "path component 'a/b' contains '/'");
  fails(MULTI(FILE1("3:a\\b")), SHOAL_EPATH, "contains '\\'");
  fails(MULTI(FILE1("3:C:\\")), SHOAL_EPATH, "contains '\\'");
  fails(MULTI(FILE1("2:\xff" "a")), SHOAL_EPATH, "path component '\\xffa' is not valid UTF-8");
  fails(MULTI(FILE1("2:\xc0\xaf")), SHOAL_EPATH, "is not valid UTF-8");          /* overlong '/' */
  fails(MULTI(FILE1("3:\xe0\x80\xae")), SHOAL_EPATH, "is not valid UTF-8");      /* overlong '.' */
  fails(MULTI(FILE1("3:\xed\xa0\x80")), SHOAL_EPATH, "is not valid UTF-8");      /* surrogate */
  fails(MULTI(FILE1("4:\xf4\x90\x80\x80")), SHOAL_EPATH, "is not valid UTF-8");  /* > U+10FFFF */
  fails(MULTI(FILE1("2:\xe2\x82")), SHOAL_EPATH, "is not valid UTF-8");          /* truncated */
  /* control bytes are legal in a name, and escaped when a message quotes them */
  fails(MULTI(FILE1("4:a\nb\x01" "2:..")), SHOAL_EPATH, "file 0: path component '..' is not allowed");
  fails(MULTI(FILE1("5:a\nb/\x01")), SHOAL_EPATH, "path component 'a\\x0ab/\\x01' contains '/'");
  struct manifest *m = parse_ok(MULTI(FILE1("4:a\nb\x01")));
  ck_assert_str_eq(m->files[0].path, "a\nb\x01");
  manifest_free(m);
  /* a NUL inside a component */
  struct buf b;
  buf_init(&b, 4096);
  buf_append_str(&b, "d4:infod5:filesld6:lengthi1e4:pathl3:");
  buf_append(&b, "a\0b", 3);
  buf_append_str(&b, "eee4:name1:a12:piece lengthi64e6:pieces20:AAAAAAAAAAAAAAAAAAAAee");
  fails_bytes(b.p, b.len, SHOAL_EPATH, "path component 'a\\x00b' contains a NUL byte");
  buf_free(&b);
}
END_TEST

START_TEST(bad_path_limits)
{
  struct buf t;
  char comp[300];
  /* 65 components */
  buf_init(&t, 1 << 20);
  buf_append_str(&t, "d4:infod5:filesld6:lengthi1e4:pathl");
  for (int i = 0; i < 65; i++)
    buf_append_str(&t, "1:d");
  buf_append_str(&t, "eee4:name1:a12:piece lengthi64e6:pieces$1ee");
  buf_append_u8(&t, 0);
  fails((const char *)t.p, SHOAL_EPATH, "file 0: path deeper than 64 components");
  buf_free(&t);
  /* 64 components is fine */
  buf_init(&t, 1 << 20);
  buf_append_str(&t, "d4:infod5:filesld6:lengthi1e4:pathl");
  for (int i = 0; i < 64; i++)
    buf_append_str(&t, "1:d");
  buf_append_str(&t, "eee4:name1:a12:piece lengthi64e6:pieces$1ee");
  buf_append_u8(&t, 0);
  struct manifest *m = parse_ok((const char *)t.p);
  ck_assert_uint_eq(strlen(m->files[0].path), 127);
  manifest_free(m);
  buf_free(&t);
  /* 17 components of 250 bytes: 4266 bytes joined */
  memset(comp, 'x', 250);
  comp[250] = '\0';
  buf_init(&t, 1 << 20);
  buf_append_str(&t, "d4:infod5:filesld6:lengthi1e4:pathl");
  for (int i = 0; i < 17; i++)
    buf_printf(&t, "250:%s", comp);
  buf_append_str(&t, "eee4:name1:a12:piece lengthi64e6:pieces$1ee");
  buf_append_u8(&t, 0);
  fails((const char *)t.p, SHOAL_EPATH, "file 0: path longer than 4096 bytes");
  buf_free(&t);
  /* one component of 256 bytes */
  memset(comp, 'y', 256);
  comp[256] = '\0';
  buf_init(&t, 1 << 20);
  buf_printf(&t, "d4:infod5:filesld6:lengthi1e4:pathl256:%seee4:name1:a12:piece lengthi64e6:pieces$1ee", comp);
  buf_append_u8(&t, 0);
  fails((const char *)t.p, SHOAL_EPATH, "is longer than 255 bytes");
  buf_free(&t);
}
END_TEST

START_TEST(bad_names)
{
  fails("d4:infod6:lengthi1e4:name2:..12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "name '..' is not allowed");
  fails("d4:infod6:lengthi1e4:name1:.12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "name '.' is not allowed");
  fails("d4:infod6:lengthi1e4:name4:....12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "name '....' made only of dots");
  fails("d4:infod6:lengthi1e4:name0:12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH, "name is empty");
  fails("d4:infod6:lengthi1e4:name4:/etc12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "name '/etc' contains '/'");
  fails("d4:infod6:lengthi1e4:name6:../etc12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "contains '/'");
  fails("d4:infod6:lengthi1e4:name3:a\\b12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "contains '\\'");
  fails("d4:infod6:lengthi1e4:name1:\xe9" "12:piece lengthi64e6:pieces$1ee", SHOAL_EPATH,
        "name '\\xe9' is not valid UTF-8");
  /* a name with dots and more is fine */
  struct manifest *m = parse_ok("d4:infod6:lengthi1e4:name4:..a.12:piece lengthi64e6:pieces$1ee");
  ck_assert_str_eq(m->name, "..a.");
  manifest_free(m);
}
END_TEST

START_TEST(duplicates_and_folders)
{
  fails(MULTI(FILE1("1:a1:b") FILE1("1:c") FILE1("1:a1:b")), SHOAL_EPATH, "duplicate file path 'a/b'");
  fails(MULTI(FILE1("1:a") FILE1("1:a1:b")), SHOAL_EPATH, "file 'a' is also a folder of file 'a/b'");
  fails(MULTI(FILE1("1:a1:x1:y") FILE1("5:a.txt") FILE1("1:a")), SHOAL_EPATH,
        "file 'a' is also a folder of file 'a/x/y'");
  fails(MULTI(FILE1("1:d1:a1:x") FILE1("1:d1:a") FILE1("1:d2:a!")), SHOAL_EPATH,
        "file 'd/a' is also a folder of file 'd/a/x'");
  /* near misses are fine: "a.txt" next to "a/b", "ab" next to "a/b" */
  struct manifest *m = parse_ok(MULTI(FILE1("1:a1:b") FILE1("5:a.txt") FILE1("2:ab") FILE1("1:a1:c")));
  ck_assert_uint_eq(m->num_files, 4);
  manifest_free(m);
  /* BEP 47 pad files may repeat */
  m = parse_ok(MULTI(FILE1("1:a") "d4:attr1:p6:lengthi1e4:pathl4:.pad1:1ee" FILE1("1:b")
                     "d4:attr1:p6:lengthi1e4:pathl4:.pad1:1ee"));
  ck_assert_uint_eq(m->num_files, 4);
  ck_assert_uint_eq(m->files[3].attr, MANIFEST_ATTR_PAD);
  manifest_free(m);
}
END_TEST

START_TEST(symlink_attr)
{
  fails(MULTI(FILE1("1:a") "d4:attr2:xl6:lengthi0e4:pathl1:bee"), SHOAL_EMANIFEST,
        "file 1: symlinks are not supported");
  fails("d4:infod4:attr1:l6:lengthi1e4:name1:a12:piece lengthi64e6:pieces$1ee", SHOAL_EMANIFEST,
        "symlinks are not supported");
  /* unknown letters are ignored */
  struct manifest *m = parse_ok("d4:infod4:attr3:?xz6:lengthi1e4:name1:a12:piece lengthi64e6:pieces$1ee");
  ck_assert_uint_eq(m->files[0].attr, MANIFEST_ATTR_EXEC);
  manifest_free(m);
  /* an attr of another type is ignored */
  m = parse_ok("d4:infod4:attri1e6:lengthi1e4:name1:a12:piece lengthi64e6:pieces$1ee");
  ck_assert_uint_eq(m->files[0].attr, 0);
  manifest_free(m);
}
END_TEST

/* ---- load ---- */

START_TEST(load_files)
{
  char err[SHOAL_ERRLEN];
  struct manifest *m = UNTOUCHED;
  ck_assert_int_eq(manifest_load("/nonexistent-dir/x.torrent", &m, err, sizeof err), UV_ENOENT);
  ck_assert_str_eq(err, "cannot read /nonexistent-dir/x.torrent: No such file or directory");
  ck_assert_ptr_eq(m, UNTOUCHED);
  ck_assert_int_eq(manifest_load("/tmp", &m, err, sizeof err), UV_EINVAL);
  ck_assert_str_eq(err, "cannot read /tmp: not a regular file");

  char path[] = "/tmp/shoal-test-manifest-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  /* too large: refused from its size, without reading it */
  ck_assert_int_eq(ftruncate(fd, (off_t)MANIFEST_MAX_FILE_SIZE + 1), 0);
  ck_assert_int_eq(manifest_load(path, &m, err, sizeof err), SHOAL_ETOOBIG);
  ck_assert_ptr_nonnull(strstr(err, "file too large (67108865 bytes, limit 64 MiB)"));
  ck_assert_ptr_nonnull(strstr(err, path));
  /* a valid one */
  struct buf b;
  expand(&b, SINGLE("100", "64", "2"));
  ck_assert_int_eq(ftruncate(fd, 0), 0);
  ck_assert_int_eq(pwrite(fd, b.p, b.len, 0), (ssize_t)b.len);
  ck_assert_int_eq(manifest_load(path, &m, err, sizeof err), 0);
  ck_assert_uint_eq(m->total_length, 100);
  manifest_free(m);
  /* an invalid one: the message names the file and the fault */
  ck_assert_int_eq(pwrite(fd, "d4:infoi1ee", 11, 0), 11);
  ck_assert_int_eq(ftruncate(fd, 11), 0);
  m = UNTOUCHED;
  ck_assert_int_eq(manifest_load(path, &m, err, sizeof err), SHOAL_EMANIFEST);
  ck_assert_ptr_eq(m, UNTOUCHED);
  char want[SHOAL_ERRLEN];
  snprintf(want, sizeof want, "%s: invalid torrent file: 'info' is not a dictionary", path);
  ck_assert_str_eq(err, want);
  close(fd);
  unlink(path);
  buf_free(&b);
}
END_TEST

/* ---- piece length and file lookup ---- */

START_TEST(choose_piece_length)
{
  ck_assert_uint_eq(manifest_choose_piece_length(0), 16384);
  ck_assert_uint_eq(manifest_choose_piece_length(1), 16384);
  ck_assert_uint_eq(manifest_choose_piece_length(2000ull * 16384), 16384);
  ck_assert_uint_eq(manifest_choose_piece_length(2000ull * 16384 + 1), 32768);
  ck_assert_uint_eq(manifest_choose_piece_length(1ull << 30), 1u << 20);
  ck_assert_uint_eq(manifest_choose_piece_length(MANIFEST_MAX_TOTAL), MANIFEST_MAX_PIECE_LEN);
  ck_assert_uint_eq(manifest_choose_piece_length(UINT64_MAX), MANIFEST_MAX_PIECE_LEN);
  for (uint64_t total = 1; total <= MANIFEST_MAX_TOTAL; total = total * 5 / 3 + 7) {
    uint32_t p = manifest_choose_piece_length(total);
    ck_assert_uint_ge(p, MANIFEST_MIN_PIECE_LEN);
    ck_assert_uint_le(p, MANIFEST_MAX_PIECE_LEN);
    ck_assert_uint_eq(p & (p - 1), 0);
    uint64_t n = (total + p - 1) / p;
    if (p > MANIFEST_MIN_PIECE_LEN)
      ck_assert_msg(n > 1000, "total %llu: %llu pieces", (unsigned long long)total, (unsigned long long)n);
    if (p < MANIFEST_MAX_PIECE_LEN)
      ck_assert_msg(n <= 2000, "total %llu: %llu pieces", (unsigned long long)total, (unsigned long long)n);
  }
}
END_TEST

START_TEST(file_at)
{
  struct manifest_file f[6] = {
    { .length = 0, .offset = 0 },  { .length = 10, .offset = 0 }, { .length = 0, .offset = 10 },
    { .length = 0, .offset = 10 }, { .length = 5, .offset = 10 }, { .length = 0, .offset = 15 },
  };
  struct manifest m = { .files = f, .num_files = 6, .total_length = 15 };
  ck_assert_int_eq(manifest_file_at(&m, 0), 1);
  ck_assert_int_eq(manifest_file_at(&m, 9), 1);
  ck_assert_int_eq(manifest_file_at(&m, 10), 4);
  ck_assert_int_eq(manifest_file_at(&m, 14), 4);
  ck_assert_int_eq(manifest_file_at(&m, 15), -1);
  ck_assert_int_eq(manifest_file_at(&m, UINT64_MAX), -1);
  /* many files: every byte maps to the file holding it */
  enum { N = 1000 };
  struct manifest_file *g = calloc(N, sizeof *g);
  uint64_t off = 0;
  for (int i = 0; i < N; i++) {
    g[i].offset = off;
    g[i].length = (uint64_t)(i % 7 == 0 ? 0 : i % 13 + 1);
    off += g[i].length;
  }
  struct manifest mm = { .files = g, .num_files = N, .total_length = off };
  for (uint64_t o = 0; o < off; o++) {
    int i = manifest_file_at(&mm, o);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_gt(g[i].length, 0);
    ck_assert(g[i].offset <= o && o < g[i].offset + g[i].length);
  }
  free(g);
}
END_TEST

Suite *manifest_suite(void)
{
  Suite *s = suite_create("manifest");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, parse_full);
  tcase_add_test(tc, parse_single);
  tcase_add_test(tc, trackers_capped);
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, infohash_of_raw_bytes);
  tcase_add_test(tc, encode_from_fields);
  tcase_add_test(tc, bad_structure);
  tcase_add_test(tc, bad_sizes);
  tcase_add_test(tc, too_many_files);
  tcase_add_test(tc, too_large_input);
  tcase_add_test(tc, bad_paths);
  tcase_add_test(tc, bad_path_limits);
  tcase_add_test(tc, bad_names);
  tcase_add_test(tc, duplicates_and_folders);
  tcase_add_test(tc, symlink_attr);
  tcase_add_test(tc, load_files);
  tcase_add_test(tc, choose_piece_length);
  tcase_add_test(tc, file_at);
  suite_add_tcase(s, tc);
  return s;
}
