/* test_resume.c -- resume records: round trip, every truncation and bit flip, resealed bad content, trust rules, atomic files. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/bencode.h"
#include "common/err.h"
#include "common/hash.h"
#include "peer/resume.h"

/* The sample's peers: 192.0.2.1:6881 and [2001:db8::1]:51413. */
static const struct resume_peer sample_peers[2] = {
  { 4, { 192, 0, 2, 1 }, 6881 },
  { 6, { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 51413 },
};
/* ...and their encoding in "peers". */
static const uint8_t sample_peer_bytes[38] = {
  4, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0xe1,
  6, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xc8, 0xd5,
};

static void sample(struct resume *r)
{
  memset(r, 0, sizeof *r);
  for (int i = 0; i < 20; i++)
    r->infohash[i] = (uint8_t)(i * 7 + 1);
  r->name = strdup("Some Linux ISO");
  r->download_dir = strdup("/srv/torrents");
  r->added = 1700000000;
  r->state = RESUME_ACTIVE;
  ck_assert_int_eq(bitfield_init(&r->have, 21), 0);
  bitfield_set(&r->have, 0);
  bitfield_set(&r->have, 1);
  bitfield_set(&r->have, 5);
  bitfield_set(&r->have, 20);
  r->num_files = 3;
  r->files = calloc(3, sizeof *r->files);
  r->files[0] = (struct resume_file){ 1048576, 1700000100, 123456789, 1 };
  r->files[1] = (struct resume_file){ -1, 0, 0, 0 };
  r->files[2] = (struct resume_file){ 5, -5, 999999999, 2 };
  r->uploaded = 123456789012ull;
  r->downloaded = 98765;
  r->seed_ratio_milli = 1500;
  r->seed_idle_s = -1;
  r->sequential = true;
  r->position = 7;
  r->rate_down = 1048576;
  r->rate_up = 65536;
  r->max_peers = 80;
  r->num_peers = 2;
  r->peers = malloc(sizeof sample_peers);
  memcpy(r->peers, sample_peers, sizeof sample_peers);
  r->error = strdup("disk full");
}

static void assert_same(const struct resume *a, const struct resume *b)
{
  ck_assert_mem_eq(a->infohash, b->infohash, 20);
  ck_assert_str_eq(a->name, b->name);
  ck_assert_str_eq(a->download_dir, b->download_dir);
  ck_assert_int_eq(a->added, b->added);
  ck_assert_uint_eq(a->state, b->state);
  ck_assert_uint_eq(a->have.nbits, b->have.nbits);
  ck_assert_uint_eq(a->have.count, b->have.count);
  if (a->have.nbits)
    ck_assert_mem_eq(a->have.bits, b->have.bits, bitfield_bytes(a->have.nbits));
  ck_assert_uint_eq(a->num_files, b->num_files);
  for (uint32_t i = 0; i < a->num_files; i++) {
    ck_assert_int_eq(a->files[i].size, b->files[i].size);
    ck_assert_int_eq(a->files[i].mtime_s, b->files[i].mtime_s);
    ck_assert_int_eq(a->files[i].mtime_ns, b->files[i].mtime_ns);
    ck_assert_uint_eq(a->files[i].priority, b->files[i].priority);
  }
  ck_assert_uint_eq(a->uploaded, b->uploaded);
  ck_assert_uint_eq(a->downloaded, b->downloaded);
  ck_assert_int_eq(a->seed_ratio_milli, b->seed_ratio_milli);
  ck_assert_int_eq(a->seed_idle_s, b->seed_idle_s);
  ck_assert(a->sequential == b->sequential);
  ck_assert_uint_eq(a->position, b->position);
  ck_assert_uint_eq(a->rate_down, b->rate_down);
  ck_assert_uint_eq(a->rate_up, b->rate_up);
  ck_assert_uint_eq(a->max_peers, b->max_peers);
  ck_assert_uint_eq(a->num_peers, b->num_peers);
  for (uint32_t i = 0; i < a->num_peers; i++) {
    ck_assert_uint_eq(a->peers[i].family, b->peers[i].family);
    ck_assert_mem_eq(a->peers[i].addr, b->peers[i].addr, 16);
    ck_assert_uint_eq(a->peers[i].port, b->peers[i].port);
  }
  ck_assert_str_eq(a->error, b->error);
}

/* After a failed parse the record owns nothing. */
static void assert_empty(const struct resume *r)
{
  ck_assert_ptr_null(r->name);
  ck_assert_ptr_null(r->download_dir);
  ck_assert_ptr_null(r->error);
  ck_assert_ptr_null(r->files);
  ck_assert_ptr_null(r->peers);
  ck_assert_uint_eq(r->num_peers, 0);
  ck_assert_ptr_null(r->have.bits);
}

static void encode_ok(const struct resume *r, struct buf *out)
{
  char err[SHOAL_ERRLEN] = "";
  ck_assert_msg(resume_encode(r, out, err, sizeof err) == 0, "encode: %s", err);
}

/* Encoding r (a parsed record) again gives exactly the bytes of enc. */
static void encodes_to(const struct resume *r, const struct buf *enc)
{
  struct buf enc2;
  encode_ok(r, &enc2);
  ck_assert_uint_eq(enc->len, enc2.len);
  ck_assert_mem_eq(enc->p, enc2.p, enc->len);
  buf_free(&enc2);
}

/* resume_encode refuses r with UV_EINVAL; the reason holds why (when not NULL). */
static void encode_refused(const struct resume *r, struct buf *enc, const char *why)
{
  char err[SHOAL_ERRLEN] = "";
  ck_assert_int_eq(resume_encode(r, enc, err, sizeof err), UV_EINVAL);
  if (why)
    ck_assert_ptr_nonnull(strstr(err, why));
}

START_TEST(test_round_trip)
{
  struct resume a, b;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  encode_ok(&a, &enc);
  ck_assert_int_eq(enc.p[0], 'd');
  ck_assert_int_eq(memcmp(enc.p, "d7:contentd5:addedi1700000000e", 30), 0);
  ck_assert_int_eq(resume_parse(enc.p, enc.len, &b, err, sizeof err), 0);
  assert_same(&a, &b);
  /* Encoding what was parsed gives the same bytes. */
  encodes_to(&b, &enc);
  /* Paused, not sequential, no error, limits 0. */
  resume_free(&b);
  a.state = RESUME_PAUSED;
  a.sequential = false;
  free(a.error);
  a.error = strdup("");
  a.seed_ratio_milli = 0;
  a.seed_idle_s = 7200;
  buf_free(&enc);
  encode_ok(&a, &enc);
  ck_assert_int_eq(resume_parse(enc.p, enc.len, &b, err, sizeof err), 0);
  assert_same(&a, &b);
  resume_free(&b);
  resume_free(&b);   /* twice is safe */
  resume_free(&a);
  buf_free(&enc);
}
END_TEST

START_TEST(test_round_trip_magnet)
{
  /* Before metadata: no pieces, no files, no name; NULL strings encode as "". */
  struct resume a, b;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  memset(&a, 0, sizeof a);
  a.download_dir = strdup("/");
  a.infohash[19] = 0xff;
  encode_ok(&a, &enc);
  ck_assert_int_eq(resume_parse(enc.p, enc.len, &b, err, sizeof err), 0);
  ck_assert_str_eq(b.name, "");
  ck_assert_str_eq(b.error, "");
  ck_assert_uint_eq(b.have.nbits, 0);
  ck_assert_uint_eq(b.num_files, 0);
  ck_assert_ptr_null(b.files);
  ck_assert_uint_eq(b.infohash[19], 0xff);
  ck_assert_uint_eq(b.state, RESUME_PAUSED);
  ck_assert_uint_eq(b.position, 0);
  ck_assert_uint_eq(b.rate_down, 0);
  ck_assert_uint_eq(b.rate_up, 0);
  ck_assert_uint_eq(b.max_peers, 0);
  ck_assert_uint_eq(b.num_peers, 0);
  ck_assert_ptr_null(b.peers);
  ck_assert_ptr_nonnull(memmem(enc.p, enc.len, "4:name0:5:peers0:6:pieces", 25));
  resume_free(&a);
  resume_free(&b);
  buf_free(&enc);
}
END_TEST

START_TEST(test_round_trip_large)
{
  /* The most files and a very large bitfield fit in the file cap. */
  struct resume a, b;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  bitfield_free(&a.have);
  ck_assert_int_eq(bitfield_init(&a.have, RESUME_MAX_PIECES), 0);
  bitfield_set_all(&a.have);
  bitfield_clear(&a.have, 12345);
  free(a.files);
  a.num_files = RESUME_MAX_FILES;
  a.files = calloc(a.num_files, sizeof *a.files);
  for (uint32_t i = 0; i < a.num_files; i++)
    a.files[i] = (struct resume_file){ (int64_t)i * 1000, 1600000000 + i, (int32_t)(i * 9973 % 1000000000), (uint8_t)(i % 3) };
  encode_ok(&a, &enc);
  ck_assert_uint_le(enc.len, RESUME_MAX_FILE_SIZE);
  ck_assert_int_eq(resume_parse(enc.p, enc.len, &b, err, sizeof err), 0);
  assert_same(&a, &b);
  ck_assert(!bitfield_get(&b.have, 12345));
  resume_free(&b);
  buf_free(&enc);
  /* One file more is refused by the encoder. */
  a.num_files++;
  a.files = realloc(a.files, a.num_files * sizeof *a.files);
  a.files[a.num_files - 1] = (struct resume_file){ 0, 0, 0, 0 };
  ck_assert_int_eq(resume_encode(&a, &enc, err, sizeof err), UV_EINVAL);
  ck_assert_ptr_null(enc.p);
  resume_free(&a);
}
END_TEST

START_TEST(test_truncated_everywhere)
{
  struct resume a, b;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  encode_ok(&a, &enc);
  /* Copy each prefix to its own allocation so ASan sees any over-read. */
  for (size_t len = 0; len < enc.len; len++) {
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, enc.p, len);
    err[0] = 0;
    int r = resume_parse(p, len, &b, err, sizeof err);
    ck_assert_msg(r == SHOAL_EBENCODE, "prefix %zu: %d (%s)", len, r, err);
    ck_assert_msg(err[0] != 0 && strchr(err, '\n') == NULL, "prefix %zu: reason \"%s\"", len, err);
    assert_empty(&b);
    free(p);
  }
  /* Trailing bytes after a whole file are refused too. */
  uint8_t *p = malloc(enc.len + 1);
  memcpy(p, enc.p, enc.len);
  p[enc.len] = 'e';
  ck_assert_int_eq(resume_parse(p, enc.len + 1, &b, err, sizeof err), SHOAL_EBENCODE);
  free(p);
  resume_free(&a);
  buf_free(&enc);
}
END_TEST

START_TEST(test_bit_flips)
{
  struct resume a, b;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  encode_ok(&a, &enc);
  /* Where the content's string payloads are: a flip there keeps the
   * bencode valid, so only the seal can catch it. */
  struct bencode_doc d;
  ck_assert_int_eq(bencode_decode(&d, enc.p, enc.len, NULL, err, sizeof err), 0);
  uint8_t *payload = calloc(enc.len, 1);
  int c = bencode_dict_get(&d, 0, "content");
  for (int k = bencode_first(&d, c); k >= 0; k = bencode_next(&d, c, k + 1))
    if (d.tok[k + 1].type == BENCODE_STR)
      memset(payload + d.tok[k + 1].str_off, 1, d.tok[k + 1].str_len);
  int seal = bencode_dict_get(&d, 0, "sha1");
  memset(payload + d.tok[seal].str_off, 1, d.tok[seal].str_len);
  bencode_free(&d);
  size_t hashed = 0, payload_bytes = 0;
  for (size_t i = 0; i < enc.len; i++) {
    payload_bytes += payload[i];
    for (int bit = 0; bit < 8; bit++) {
      uint8_t *p = malloc(enc.len);
      memcpy(p, enc.p, enc.len);
      p[i] ^= (uint8_t)(1u << bit);
      int r = resume_parse(p, enc.len, &b, err, sizeof err);
      ck_assert_msg(r == SHOAL_EBENCODE || r == SHOAL_EHASH, "byte %zu bit %d: %d (%s)", i, bit, r, err);
      if (payload[i])
        ck_assert_msg(r == SHOAL_EHASH, "byte %zu bit %d: %d (%s)", i, bit, r, err);
      hashed += r == SHOAL_EHASH;
      assert_empty(&b);
      free(p);
    }
  }
  ck_assert_uint_ge(payload_bytes, 20 + 63 + 3 + 14 + 13 + 9 + 6 + 38 + 20);
  ck_assert_uint_ge(hashed, payload_bytes * 8);
  free(payload);
  resume_free(&a);
  buf_free(&enc);
}
END_TEST

/* Content as (key, raw bencoded value) pairs taken from a real encoding, to
 * be edited and then sealed again. */
#define MAXKV 24
struct kvs {
  int n;
  char key[MAXKV][32];
  struct buf val[MAXKV];
};

static void kvs_from_sample(struct kvs *k)
{
  struct resume a;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  encode_ok(&a, &enc);
  struct bencode_doc d;
  ck_assert_int_eq(bencode_decode(&d, enc.p, enc.len, NULL, err, sizeof err), 0);
  int c = bencode_dict_get(&d, 0, "content");
  k->n = 0;
  for (int t = bencode_first(&d, c); t >= 0; t = bencode_next(&d, c, t + 1)) {
    const struct bencode_tok *kt = &d.tok[t], *vt = &d.tok[t + 1];
    snprintf(k->key[k->n], sizeof k->key[0], "%.*s", (int)kt->str_len, (const char *)enc.p + kt->str_off);
    buf_init(&k->val[k->n], 1u << 24);
    ck_assert_int_eq(buf_append(&k->val[k->n], enc.p + vt->raw_off, vt->raw_len), 0);
    k->n++;
  }
  ck_assert_int_eq(k->n, 20);
  bencode_free(&d);
  buf_free(&enc);
  resume_free(&a);
}

static void kvs_free(struct kvs *k)
{
  for (int i = 0; i < k->n; i++)
    buf_free(&k->val[i]);
  k->n = 0;
}

static int kvs_find(struct kvs *k, const char *key)
{
  for (int i = 0; i < k->n; i++)
    if (strcmp(k->key[i], key) == 0)
      return i;
  return -1;
}

/* Sets key to raw bytes (inserting it in sorted place if new); raw NULL deletes. */
static void kvs_set(struct kvs *k, const char *key, const void *raw, size_t len)
{
  int i = kvs_find(k, key);
  if (raw == NULL) {
    ck_assert_int_ge(i, 0);
    buf_free(&k->val[i]);
    memmove(&k->key[i], &k->key[i + 1], (size_t)(k->n - i - 1) * sizeof k->key[0]);
    memmove(&k->val[i], &k->val[i + 1], (size_t)(k->n - i - 1) * sizeof k->val[0]);
    k->n--;
    return;
  }
  if (i < 0) {
    i = 0;
    while (i < k->n && strcmp(k->key[i], key) < 0)
      i++;
    memmove(&k->key[i + 1], &k->key[i], (size_t)(k->n - i) * sizeof k->key[0]);
    memmove(&k->val[i + 1], &k->val[i], (size_t)(k->n - i) * sizeof k->val[0]);
    k->n++;
    snprintf(k->key[i], sizeof k->key[0], "%s", key);
    buf_init(&k->val[i], 1u << 24);
  }
  k->val[i].len = 0;
  ck_assert_int_eq(buf_append(&k->val[i], raw, len), 0);
}

static void kvs_set_str(struct kvs *k, const char *key, const char *raw) { kvs_set(k, key, raw, strlen(raw)); }

/* Inserts a second copy of key, with the value raw, just before the first. */
static void kvs_dup_key(struct kvs *k, const char *key, const char *raw)
{
  int p = kvs_find(k, key);
  ck_assert_int_ge(p, 0);
  ck_assert_int_lt(k->n, MAXKV);
  memmove(&k->key[p + 1], &k->key[p], (size_t)(k->n - p) * sizeof k->key[0]);
  memmove(&k->val[p + 1], &k->val[p], (size_t)(k->n - p) * sizeof k->val[0]);
  k->n++;
  buf_init(&k->val[p], 64);
  ck_assert_int_eq(buf_append_str(&k->val[p], raw), 0);
}

/* The whole file for k, sealed with a correct SHA-1. */
static void kvs_seal(const struct kvs *k, struct buf *out)
{
  buf_init(out, 1u << 25);
  ck_assert_int_eq(buf_append_str(out, "d7:content"), 0);
  size_t off = out->len;
  ck_assert_int_eq(bencode_put_dict(out), 0);
  for (int i = 0; i < k->n; i++) {
    ck_assert_int_eq(bencode_put_cstr(out, k->key[i]), 0);
    ck_assert_int_eq(buf_append(out, k->val[i].p, k->val[i].len), 0);
  }
  ck_assert_int_eq(bencode_put_end(out), 0);
  uint8_t h[20];
  hash_sha1(out->p + off, out->len - off, h);
  ck_assert_int_eq(bencode_put_kv_str(out, "sha1", h, 20), 0);
  ck_assert_int_eq(bencode_put_end(out), 0);
}

static int parse_kvs(const struct kvs *k, char *err)
{
  struct buf f;
  struct resume r;
  kvs_seal(k, &f);
  err[0] = 0;
  int rc = resume_parse(f.p, f.len, &r, err, SHOAL_ERRLEN);
  if (rc == 0)
    resume_free(&r);
  else
    assert_empty(&r);
  buf_free(&f);
  return rc;
}

START_TEST(test_resealed_unchanged_ok)
{
  /* The helper itself: the unedited content sealed again parses. */
  struct kvs k;
  char err[SHOAL_ERRLEN];
  kvs_from_sample(&k);
  ck_assert_msg(parse_kvs(&k, err) == 0, "%s", err);
  kvs_free(&k);
}
END_TEST

START_TEST(test_missing_each_key)
{
  static const char *keys[] = { "added", "dir", "downloaded", "error", "files", "format", "have",
                                "info_hash", "max_peers", "name", "peers", "pieces", "position", "rate_down",
                                "rate_up", "seed_idle_limit", "seed_ratio_limit", "sequential", "state",
                                "uploaded" };
  ck_assert_uint_eq(sizeof keys / sizeof keys[0], 20);
  char err[SHOAL_ERRLEN];
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    struct kvs k;
    kvs_from_sample(&k);
    kvs_set(&k, keys[i], NULL, 0);
    int r = parse_kvs(&k, err);
    ck_assert_msg(r == SHOAL_EMANIFEST, "without %s: %d", keys[i], r);
    /* The reason names the key (format: the version check speaks of it). */
    ck_assert_msg(strstr(err, keys[i]) != NULL || strcmp(keys[i], "format") == 0, "without %s: \"%s\"", keys[i], err);
    kvs_free(&k);
  }
}
END_TEST

struct edit {
  const char *key;
  const char *raw;      /* NUL-free raw value */
  const char *why;      /* expected in the reason */
};

START_TEST(test_bad_content)
{
  static const struct edit edits[] = {
    { "format", "i2e", "unsupported format version 2" },
    { "format", "i0e", "unsupported format version 0" },
    { "format", "1:1", "format" },
    { "zzz", "i1e", "unknown key \"zzz\"" },
    { "aaa", "0:", "unknown key \"aaa\"" },
    { "added", "i-1e", "added" },
    { "added", "3:abc", "added" },
    { "downloaded", "i-5e", "downloaded" },
    { "uploaded", "i-1e", "uploaded" },
    { "uploaded", "le", "uploaded" },
    { "seed_idle_limit", "i-2e", "seed_idle_limit" },
    { "seed_ratio_limit", "i-9223372036854775808e", "seed_ratio_limit" },
    { "sequential", "i2e", "sequential" },
    { "sequential", "i-1e", "sequential" },
    { "state", "7:running", "state" },
    { "state", "i1e", "state" },
    { "info_hash", "19:aaaaaaaaaaaaaaaaaaa", "info_hash" },
    { "info_hash", "21:aaaaaaaaaaaaaaaaaaaaa", "info_hash" },
    { "info_hash", "de", "info_hash" },
    { "dir", "0:", "download dir" },
    { "dir", "8:relative", "download dir" },
    { "dir", "i5e", "dir" },
    { "name", "le", "name" },
    { "error", "de", "error" },
    { "pieces", "i-1e", "pieces" },
    { "pieces", "i20e", "have" },            /* 3 bytes of have: 21..24 pieces */
    { "pieces", "i25e", "have" },
    { "pieces", "i3355444e", "pieces" },      /* above RESUME_MAX_PIECES */
    { "pieces", "2:21", "pieces" },
    { "have", "2:ab", "have" },
    { "have", "4:abcd", "have" },
    { "have", "i0e", "have" },
    { "files", "20:aaaaaaaaaaaaaaaaaaaa", "files" },
    { "files", "22:aaaaaaaaaaaaaaaaaaaaaa", "files" },
    { "files", "le", "files" },
    { "position", "i-1e", "\"position\" = -1 out of range" },
    { "position", "i4294967296e", "\"position\" = 4294967296 out of range" },
    { "position", "i-9223372036854775808e", "position" },
    { "position", "1:0", "position" },
    { "position", "le", "position" },
    { "rate_down", "i-1e", "\"rate_down\" = -1 out of range" },
    { "rate_down", "i1099511627777e", "\"rate_down\" = 1099511627777 out of range" },
    { "rate_down", "i9223372036854775807e", "rate_down" },
    { "rate_down", "4:1000", "rate_down" },
    { "rate_down", "de", "rate_down" },
    { "rate_up", "i-1e", "\"rate_up\" = -1 out of range" },
    { "rate_up", "i1099511627777e", "\"rate_up\" = 1099511627777 out of range" },
    { "rate_up", "0:", "rate_up" },
    { "rate_up", "li1ee", "rate_up" },
    { "max_peers", "i-1e", "\"max_peers\" = -1 out of range" },
    { "max_peers", "i10001e", "\"max_peers\" = 10001 out of range" },
    { "max_peers", "i4294967295e", "max_peers" },
    { "max_peers", "2:80", "max_peers" },
    { "max_peers", "de", "max_peers" },
    { "peers", "i0e", "\"peers\" missing or not a string" },
    { "peers", "le", "\"peers\" missing or not a string" },
    { "peers", "de", "\"peers\" missing or not a string" },
    { "peers", "1:a", "\"peers\" is 1 bytes" },
    { "peers", "18:aaaaaaaaaaaaaaaaaa", "\"peers\" is 18 bytes" },
    { "peers", "20:aaaaaaaaaaaaaaaaaaaa", "\"peers\" is 20 bytes" },
  };
  char err[SHOAL_ERRLEN];
  for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
    struct kvs k;
    kvs_from_sample(&k);
    kvs_set_str(&k, edits[i].key, edits[i].raw);
    int r = parse_kvs(&k, err);
    ck_assert_msg(r == SHOAL_EMANIFEST, "%s=%s: %d (%s)", edits[i].key, edits[i].raw, r, err);
    ck_assert_msg(strstr(err, edits[i].why) != NULL, "%s=%s: reason \"%s\"", edits[i].key, edits[i].raw, err);
    ck_assert_ptr_null(strchr(err, '\n'));
    kvs_free(&k);
  }
}
END_TEST

START_TEST(test_bad_binary_content)
{
  char err[SHOAL_ERRLEN];
  struct kvs k;
  /* Spare bits set in the last byte of have (21 pieces: 3 spare bits). */
  kvs_from_sample(&k);
  int h = kvs_find(&k, "have");
  ck_assert_int_ge(h, 0);
  k.val[h].p[k.val[h].len - 1] |= 0x01;
  ck_assert_int_eq(parse_kvs(&k, err), SHOAL_EMANIFEST);
  ck_assert_ptr_nonnull(strstr(err, "spare bits"));
  kvs_free(&k);
  /* A NUL inside name, dir or error. */
  static const char *nul_keys[] = { "name", "dir", "error" };
  for (size_t i = 0; i < 3; i++) {
    kvs_from_sample(&k);
    kvs_set(&k, nul_keys[i], "4:/a\0b", 6);
    ck_assert_int_eq(parse_kvs(&k, err), SHOAL_EMANIFEST);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
    kvs_free(&k);
  }
  /* File records: each field out of range. */
  struct { int field; uint8_t bytes[8]; const char *what; } recs[] = {
    { 0, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe }, "size -2" },
    { 0, { 0x80, 0, 0, 0, 0, 0, 0, 0 }, "size INT64_MIN" },
    { 2, { 0x3b, 0x9a, 0xca, 0x00 }, "ns 10^9" },
    { 2, { 0xff, 0xff, 0xff, 0xff }, "ns 2^32-1" },
    { 3, { 3 }, "priority 3" },
    { 3, { 0xff }, "priority 255" },
  };
  static const size_t field_off[] = { 0, 8, 16, 20 }, field_len[] = { 8, 8, 4, 1 };
  for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
    kvs_from_sample(&k);
    int f = kvs_find(&k, "files");
    /* The value is "63:<records>": the second record starts at 3 + 21. */
    uint8_t *rec = k.val[f].p + 3 + RESUME_FILE_RECORD;
    memcpy(rec + field_off[recs[i].field], recs[i].bytes, field_len[recs[i].field]);
    ck_assert_msg(parse_kvs(&k, err) == SHOAL_EMANIFEST, "%s accepted", recs[i].what);
    ck_assert_ptr_nonnull(strstr(err, "file 1"));
    kvs_free(&k);
  }
  /* Too long strings: name 4097 bytes, error 1025 bytes (and the limits themselves pass). */
  struct { const char *key; size_t max; } longs[] = { { "name", RESUME_MAX_STR }, { "error", RESUME_MAX_ERROR },
                                                     { "dir", RESUME_MAX_STR } };
  for (size_t i = 0; i < 3; i++)
    for (size_t extra = 0; extra <= 1; extra++) {
      size_t n = longs[i].max + extra;
      char *raw = malloc(n + 16);
      int o = snprintf(raw, 16, "%zu:", n);
      memset(raw + o, 'x', n);
      raw[o] = '/';
      kvs_from_sample(&k);
      kvs_set(&k, longs[i].key, raw, (size_t)o + n);
      int r = parse_kvs(&k, err);
      ck_assert_msg(r == (extra ? SHOAL_EMANIFEST : 0), "%s of %zu: %d (%s)", longs[i].key, n, r, err);
      kvs_free(&k);
      free(raw);
    }
  /* 100001 files. */
  kvs_from_sample(&k);
  size_t n = (size_t)(RESUME_MAX_FILES + 1) * RESUME_FILE_RECORD;
  char *raw = calloc(n + 16, 1);
  int o = snprintf(raw, 16, "%zu:", n);
  kvs_set(&k, "files", raw, (size_t)o + n);
  ck_assert_int_eq(parse_kvs(&k, err), SHOAL_EMANIFEST);
  ck_assert_ptr_nonnull(strstr(err, "100000"));
  free(raw);
  kvs_free(&k);
}
END_TEST

START_TEST(test_outer_shape)
{
  struct resume r;
  char err[SHOAL_ERRLEN];
  uint8_t h[20];
  hash_sha1("de", 2, h);
  /* An empty but sealed content: the shape is right, the content is not. */
  struct buf f;
  buf_init(&f, 4096);
  buf_append_str(&f, "d7:contentde4:sha120:");
  buf_append(&f, h, 20);
  buf_append_str(&f, "e");
  ck_assert_int_eq(resume_parse(f.p, f.len, &r, err, sizeof err), SHOAL_EMANIFEST);
  buf_free(&f);
  static const char *shapes[] = {
    "le", "i1e", "4:spam", "de", "d7:contentdee",
    "d7:contentde4:sha119:aaaaaaaaaaaaaaaaaaae",
    "d7:contentde4:sha121:aaaaaaaaaaaaaaaaaaaaae",
    "d7:contentle4:sha120:aaaaaaaaaaaaaaaaaaaae",
    "d7:contenti1e4:sha120:aaaaaaaaaaaaaaaaaaaae",
    "d7:contentde4:sha1i1ee",
    "d4:sha120:aaaaaaaaaaaaaaaaaaaa7:contentdee",            /* keys out of order */
    "d7:contentde4:sha120:aaaaaaaaaaaaaaaaaaaa5:extrai1ee",  /* a third key */
    "d7:contentde4:shb120:aaaaaaaaaaaaaaaaaaaae",
    "d7:contentd1:ad1:ad1:adeeee4:sha120:aaaaaaaaaaaaaaaaaaaae", /* too deep */
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int rc = resume_parse((const uint8_t *)shapes[i], strlen(shapes[i]), &r, err, sizeof err);
    ck_assert_msg(rc == SHOAL_EBENCODE, "%s: %d (%s)", shapes[i], rc, err);
    assert_empty(&r);
  }
  /* A wrong seal on a well-shaped file. */
  const char *bad_seal = "d7:contentde4:sha120:aaaaaaaaaaaaaaaaaaaae";
  ck_assert_int_eq(resume_parse((const uint8_t *)bad_seal, strlen(bad_seal), &r, err, sizeof err), SHOAL_EHASH);
  ck_assert_ptr_nonnull(strstr(err, "SHA-1"));
  /* Too many tokens: a content list of 200 ints. */
  buf_init(&f, 4096);
  buf_append_str(&f, "d7:contentd1:al");
  for (int i = 0; i < 200; i++)
    buf_append_str(&f, "i0e");
  buf_append_str(&f, "ee4:sha120:aaaaaaaaaaaaaaaaaaaae");
  ck_assert_int_eq(resume_parse(f.p, f.len, &r, err, sizeof err), SHOAL_EBENCODE);
  buf_free(&f);
  /* Over the size cap: refused before reading. */
  uint8_t *big = calloc(RESUME_MAX_FILE_SIZE + 1, 1);
  ck_assert_int_eq(resume_parse(big, RESUME_MAX_FILE_SIZE + 1, &r, err, sizeof err), SHOAL_ETOOBIG);
  free(big);
}
END_TEST

START_TEST(test_encode_rejects)
{
  struct resume a;
  struct buf enc;
  sample(&a);
  free(a.download_dir);
  a.download_dir = NULL;
  encode_refused(&a, &enc, "download dir");
  a.download_dir = strdup("rel/dir");
  encode_refused(&a, &enc, NULL);
  free(a.download_dir);
  a.download_dir = strdup("/ok");
  a.files[2].priority = 3;
  encode_refused(&a, &enc, "file 2");
  a.files[2].priority = 2;
  a.files[0].mtime_ns = 1000000000;
  encode_refused(&a, &enc, NULL);
  a.files[0].mtime_ns = 0;
  a.state = 7;
  encode_refused(&a, &enc, NULL);
  a.state = RESUME_ACTIVE;
  a.uploaded = (uint64_t)INT64_MAX + 1;
  encode_refused(&a, &enc, NULL);
  a.uploaded = 0;
  a.seed_idle_s = -2;
  encode_refused(&a, &enc, NULL);
  a.seed_idle_s = -1;
  a.added = -1;
  encode_refused(&a, &enc, NULL);
  a.added = 0;
  /* The per-torrent limits: one past the maximum and the type's maximum. */
  a.rate_down = RATELIMIT_MAX + 1;
  encode_refused(&a, &enc, "rate_down");
  a.rate_down = UINT64_MAX;
  encode_refused(&a, &enc, "rate_down");
  a.rate_down = RATELIMIT_MAX;
  a.rate_up = RATELIMIT_MAX + 1;
  encode_refused(&a, &enc, "rate_up");
  a.rate_up = UINT64_MAX;
  encode_refused(&a, &enc, "rate_up");
  a.rate_up = RATELIMIT_MAX;
  a.max_peers = RESUME_MAX_PEERS + 1;
  encode_refused(&a, &enc, "max_peers");
  a.max_peers = UINT32_MAX;
  encode_refused(&a, &enc, "max_peers");
  a.max_peers = RESUME_MAX_PEERS;
  ck_assert_ptr_null(enc.p);
  encode_ok(&a, &enc);
  buf_free(&enc);
  resume_free(&a);
}
END_TEST

START_TEST(test_round_trip_limits)
{
  /* The queue position and per-torrent limits at both ends of their ranges. */
  static const struct { uint32_t position; uint64_t down, up; uint32_t peers; const char *head, *text; } ends[] = {
    { 0, 0, 0, 0, "9:max_peersi0e4:name14:Some Linux ISO5:peers38:",
      "6:piecesi21e8:positioni0e9:rate_downi0e7:rate_upi0e" },
    { UINT32_MAX, RATELIMIT_MAX, RATELIMIT_MAX, RESUME_MAX_PEERS,
      "9:max_peersi10000e4:name14:Some Linux ISO5:peers38:",
      "6:piecesi21e8:positioni4294967295e9:rate_downi1099511627776e7:rate_upi1099511627776e" },
    { 1, 1, RATELIMIT_MAX - 1, 1, "9:max_peersi1e4:name14:Some Linux ISO5:peers38:",
      "6:piecesi21e8:positioni1e9:rate_downi1e7:rate_upi1099511627775e" },
  };
  char err[SHOAL_ERRLEN];
  for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
    struct resume a, b;
    struct buf enc;
    sample(&a);
    a.position = ends[i].position;
    a.rate_down = ends[i].down;
    a.rate_up = ends[i].up;
    a.max_peers = ends[i].peers;
    encode_ok(&a, &enc);
    /* The keys sit in ascending order with exactly these values. */
    uint8_t want[512];
    size_t hl = strlen(ends[i].head), tl = strlen(ends[i].text);
    memcpy(want, ends[i].head, hl);
    memcpy(want + hl, sample_peer_bytes, sizeof sample_peer_bytes);
    memcpy(want + hl + sizeof sample_peer_bytes, ends[i].text, tl);
    ck_assert_ptr_nonnull(memmem(enc.p, enc.len, want, hl + sizeof sample_peer_bytes + tl));
    ck_assert_msg(resume_parse(enc.p, enc.len, &b, err, sizeof err) == 0, "case %zu: %s", i, err);
    assert_same(&a, &b);
    ck_assert_uint_eq(b.position, ends[i].position);
    ck_assert_uint_eq(b.rate_down, ends[i].down);
    ck_assert_uint_eq(b.rate_up, ends[i].up);
    ck_assert_uint_eq(b.max_peers, ends[i].peers);
    encodes_to(&b, &enc);
    buf_free(&enc);
    resume_free(&a);
    resume_free(&b);
  }
  /* The parse accepts the same extremes written by hand and resealed. */
  struct kvs k;
  kvs_from_sample(&k);
  kvs_set_str(&k, "position", "i4294967295e");
  kvs_set_str(&k, "rate_down", "i1099511627776e");
  kvs_set_str(&k, "rate_up", "i0e");
  kvs_set_str(&k, "max_peers", "i10000e");
  ck_assert_msg(parse_kvs(&k, err) == 0, "%s", err);
  kvs_free(&k);
}
END_TEST

START_TEST(test_content_key_order)
{
  /* The content keys must come in ascending order, as the encoder writes
   * them; swapping a new key with its neighbour is refused as malformed. */
  static const char *pairs[][2] = {
    { "rate_down", "rate_up" }, { "pieces", "position" }, { "max_peers", "name" },
    { "info_hash", "max_peers" }, { "rate_up", "seed_idle_limit" }, { "name", "peers" },
    { "peers", "pieces" },
  };
  char err[SHOAL_ERRLEN];
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    struct kvs k;
    kvs_from_sample(&k);
    int x = kvs_find(&k, pairs[i][0]), y = kvs_find(&k, pairs[i][1]);
    ck_assert_int_ge(x, 0);
    ck_assert_int_eq(y, x + 1);   /* neighbours in the encoder's order */
    char key[32];
    struct buf v;
    memcpy(key, k.key[x], sizeof key);
    memcpy(k.key[x], k.key[y], sizeof key);
    memcpy(k.key[y], key, sizeof key);
    v = k.val[x];
    k.val[x] = k.val[y];
    k.val[y] = v;
    int r = parse_kvs(&k, err);
    ck_assert_msg(r == SHOAL_EBENCODE, "%s before %s: %d (%s)", pairs[i][1], pairs[i][0], r, err);
    kvs_free(&k);
  }
  /* A new key given twice is refused as well. */
  struct kvs k;
  kvs_from_sample(&k);
  kvs_dup_key(&k, "position", "i1e");
  ck_assert_int_eq(parse_kvs(&k, err), SHOAL_EBENCODE);
  kvs_free(&k);
}
END_TEST

/* A peer record: family, 16 address bytes, port big-endian. */
static void peer_bytes(uint8_t *o, uint8_t family, const uint8_t addr[16], uint16_t port)
{
  o[0] = family;
  memcpy(o + 1, addr, 16);
  o[17] = (uint8_t)(port >> 8);
  o[18] = (uint8_t)port;
}

/* n peers: even ones IPv4 10.0.0.i, odd ones IPv6 fd00::i:ff, ports from 1 up
 * and the last one 65535. */
static struct resume_peer *many_peers(uint32_t n)
{
  struct resume_peer *p = calloc(n ? n : 1, sizeof *p);
  for (uint32_t i = 0; i < n; i++) {
    if (i % 2 == 0) {
      p[i].family = 4;
      p[i].addr[0] = 10;
      p[i].addr[3] = (uint8_t)i;
    } else {
      p[i].family = 6;
      p[i].addr[0] = 0xfd;
      p[i].addr[14] = (uint8_t)i;
      p[i].addr[15] = 0xff;
    }
    p[i].port = i + 1 == n ? 65535 : (uint16_t)(i + 1);
  }
  return p;
}

START_TEST(test_peers_round_trip)
{
  static const uint32_t counts[] = { 0, 1, 2, RESUME_MAX_PEERS_SAVED };
  char err[SHOAL_ERRLEN];
  for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
    struct resume a, b;
    struct buf enc;
    sample(&a);
    free(a.peers);
    a.num_peers = counts[c];
    a.peers = counts[c] ? many_peers(counts[c]) : NULL;
    encode_ok(&a, &enc);
    /* The exact bytes of "peers", between "name" and "pieces". */
    uint8_t want[64 + RESUME_MAX_PEERS_SAVED * RESUME_PEER_RECORD];
    int o = snprintf((char *)want, 64, "4:name14:Some Linux ISO5:peers%u:", counts[c] * RESUME_PEER_RECORD);
    size_t wl = (size_t)o;
    for (uint32_t i = 0; i < counts[c]; i++, wl += RESUME_PEER_RECORD)
      peer_bytes(want + wl, a.peers[i].family, a.peers[i].addr, a.peers[i].port);
    memcpy(want + wl, "6:pieces", 8);
    wl += 8;
    ck_assert_msg(memmem(enc.p, enc.len, want, wl) != NULL, "%u peers: bytes differ", counts[c]);
    ck_assert_msg(resume_parse(enc.p, enc.len, &b, err, sizeof err) == 0, "%u peers: %s", counts[c], err);
    assert_same(&a, &b);
    ck_assert_uint_eq(b.num_peers, counts[c]);
    if (counts[c] == 0)
      ck_assert_ptr_null(b.peers);
    if (counts[c] == RESUME_MAX_PEERS_SAVED) {
      ck_assert_uint_eq(b.peers[0].family, 4);
      ck_assert_uint_eq(b.peers[0].port, 1);
      ck_assert_uint_eq(b.peers[15].family, 6);
      ck_assert_uint_eq(b.peers[15].port, 65535);
      ck_assert_uint_eq(b.peers[15].addr[0], 0xfd);
      ck_assert_uint_eq(b.peers[15].addr[14], 15);
    }
    encodes_to(&b, &enc);
    buf_free(&enc);
    resume_free(&a);
    resume_free(&b);
  }
  /* The sample's two peers: fixed bytes, read back as given. */
  struct resume a, b;
  struct buf enc;
  sample(&a);
  encode_ok(&a, &enc);
  uint8_t want[10 + 38];
  memcpy(want, "5:peers38:", 10);
  memcpy(want + 10, sample_peer_bytes, 38);
  ck_assert_ptr_nonnull(memmem(enc.p, enc.len, want, sizeof want));
  ck_assert_int_eq(resume_parse(enc.p, enc.len, &b, err, sizeof err), 0);
  ck_assert_uint_eq(b.num_peers, 2);
  ck_assert_mem_eq(b.peers, sample_peers, sizeof sample_peers);
  resume_free(&b);
  resume_free(&a);
  buf_free(&enc);
}
END_TEST

START_TEST(test_peers_encode_rejects)
{
  struct resume a;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  /* 17 well-formed peers. */
  free(a.peers);
  a.peers = many_peers(RESUME_MAX_PEERS_SAVED + 1);
  a.num_peers = RESUME_MAX_PEERS_SAVED + 1;
  err[0] = 0;
  ck_assert_int_eq(resume_encode(&a, &enc, err, sizeof err), UV_EINVAL);
  ck_assert_ptr_null(enc.p);
  ck_assert_msg(strstr(err, "peers") && strstr(err, "more than 16"), "%s", err);
  a.num_peers = RESUME_MAX_PEERS_SAVED;
  encode_ok(&a, &enc);
  buf_free(&enc);
  /* A count without an array. */
  struct resume_peer *keep = a.peers;
  a.peers = NULL;
  a.num_peers = 1;
  ck_assert_int_eq(resume_encode(&a, &enc, err, sizeof err), UV_EINVAL);
  ck_assert_ptr_nonnull(strstr(err, "peers"));
  a.peers = keep;
  a.num_peers = 2;
  /* Each bad value in the second entry (an IPv6 one at first). */
  static const uint8_t bad_families[] = { 0, 2, 5, 10, 255 };
  for (size_t i = 0; i < sizeof bad_families; i++) {
    a.peers[1].family = bad_families[i];
    err[0] = 0;
    ck_assert_msg(resume_encode(&a, &enc, err, sizeof err) == UV_EINVAL, "family %u accepted", bad_families[i]);
    ck_assert_ptr_null(enc.p);
    ck_assert_msg(strstr(err, "\"peers\" entry 1: family") != NULL, "%s", err);
  }
  a.peers[1].family = 6;
  a.peers[1].port = 0;
  ck_assert_int_eq(resume_encode(&a, &enc, err, sizeof err), UV_EINVAL);
  ck_assert_msg(strstr(err, "\"peers\" entry 1: port 0") != NULL, "%s", err);
  a.peers[1].port = 1;
  /* IPv4 with any of bytes 4..15 set; IPv6 may use all 16. */
  a.peers[1].family = 4;
  memset(a.peers[1].addr, 0, 16);
  for (int b = 4; b < 16; b++) {
    a.peers[1].addr[b] = 1;
    ck_assert_msg(resume_encode(&a, &enc, err, sizeof err) == UV_EINVAL, "byte %d accepted", b);
    ck_assert_msg(strstr(err, "\"peers\" entry 1: IPv4") != NULL, "%s", err);
    a.peers[1].family = 6;
    encode_ok(&a, &enc);
    buf_free(&enc);
    a.peers[1].family = 4;
    a.peers[1].addr[b] = 0;
  }
  a.peers[1].addr[3] = 0xff;
  encode_ok(&a, &enc);
  buf_free(&enc);
  resume_free(&a);
}
END_TEST

/* The sample with "peers" set to the given records. */
static int parse_peers(const uint8_t *recs, size_t len, char *err)
{
  struct kvs k;
  kvs_from_sample(&k);
  uint8_t raw[16 + (RESUME_MAX_PEERS_SAVED + 2) * RESUME_PEER_RECORD];
  ck_assert_uint_le(len, sizeof raw - 16);
  int o = snprintf((char *)raw, 16, "%zu:", len);
  memcpy(raw + o, recs, len);
  kvs_set(&k, "peers", raw, (size_t)o + len);
  int rc = parse_kvs(&k, err);
  kvs_free(&k);
  return rc;
}

START_TEST(test_peers_parse_rejects)
{
  char err[SHOAL_ERRLEN];
  uint8_t recs[(RESUME_MAX_PEERS_SAVED + 2) * RESUME_PEER_RECORD];
  static const uint8_t v4[16] = { 127, 0, 0, 1 }, v6[16] = { 0xfe, 0x80, [15] = 1 };
  for (uint32_t i = 0; i < RESUME_MAX_PEERS_SAVED + 2; i++)
    peer_bytes(recs + i * RESUME_PEER_RECORD, i % 2 ? 6 : 4, i % 2 ? v6 : v4, (uint16_t)(1000 + i));
  /* 0, 1 and 16 records parse; 17 and 18 do not. */
  ck_assert_msg(parse_peers(recs, 0, err) == 0, "%s", err);
  ck_assert_msg(parse_peers(recs, RESUME_PEER_RECORD, err) == 0, "%s", err);
  ck_assert_msg(parse_peers(recs, RESUME_MAX_PEERS_SAVED * RESUME_PEER_RECORD, err) == 0, "%s", err);
  for (uint32_t n = RESUME_MAX_PEERS_SAVED + 1; n <= RESUME_MAX_PEERS_SAVED + 2; n++) {
    ck_assert_int_eq(parse_peers(recs, n * RESUME_PEER_RECORD, err), SHOAL_EMANIFEST);
    ck_assert_msg(strstr(err, "\"peers\"") && strstr(err, "more than 16 peers"), "%s", err);
  }
  /* Lengths that are not whole records. */
  static const size_t lens[] = { 1, 18, 20, 37, 39, 16 * 19 - 1 };
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    ck_assert_msg(parse_peers(recs, lens[i], err) == SHOAL_EMANIFEST, "%zu bytes accepted", lens[i]);
    ck_assert_msg(strstr(err, "\"peers\" is") != NULL, "%zu bytes: %s", lens[i], err);
  }
  /* Bad family, in the first and in the last record. */
  static const uint8_t bad_families[] = { 0, 2, 5, 10, 255 };
  for (size_t i = 0; i < sizeof bad_families; i++)
    for (int at = 0; at < 2; at++) {
      uint8_t r[2 * RESUME_PEER_RECORD];
      memcpy(r, recs, sizeof r);
      r[at * RESUME_PEER_RECORD] = bad_families[i];
      ck_assert_msg(parse_peers(r, sizeof r, err) == SHOAL_EMANIFEST, "family %u accepted", bad_families[i]);
      ck_assert_msg(strstr(err, "\"peers\" entry") && strstr(err, "family"), "%s", err);
      ck_assert_ptr_nonnull(strstr(err, at ? "entry 1" : "entry 0"));
    }
  /* Port 0, v4 and v6; port 1 and 65535 pass. */
  for (int at = 0; at < 2; at++) {
    uint8_t r[2 * RESUME_PEER_RECORD];
    memcpy(r, recs, sizeof r);
    r[at * RESUME_PEER_RECORD + 17] = 0;
    r[at * RESUME_PEER_RECORD + 18] = 0;
    ck_assert_int_eq(parse_peers(r, sizeof r, err), SHOAL_EMANIFEST);
    ck_assert_msg(strstr(err, "\"peers\" entry") && strstr(err, "port 0"), "%s", err);
    r[at * RESUME_PEER_RECORD + 18] = 1;
    ck_assert_msg(parse_peers(r, sizeof r, err) == 0, "%s", err);
    r[at * RESUME_PEER_RECORD + 17] = 0xff;
    r[at * RESUME_PEER_RECORD + 18] = 0xff;
    ck_assert_msg(parse_peers(r, sizeof r, err) == 0, "%s", err);
  }
  /* Dirty IPv4 padding: each of bytes 4..15; the same bytes in an IPv6 record pass. */
  for (int b = 4; b < 16; b++) {
    uint8_t r[RESUME_PEER_RECORD];
    memcpy(r, recs, sizeof r);
    r[1 + b] = 0x80;
    ck_assert_msg(parse_peers(r, sizeof r, err) == SHOAL_EMANIFEST, "byte %d accepted", b);
    ck_assert_msg(strstr(err, "\"peers\" entry 0: IPv4") != NULL, "%s", err);
    r[0] = 6;
    ck_assert_msg(parse_peers(r, sizeof r, err) == 0, "%s", err);
  }
  /* The key missing, mistyped, or given twice. */
  struct kvs k;
  kvs_from_sample(&k);
  kvs_set(&k, "peers", NULL, 0);
  ck_assert_int_eq(parse_kvs(&k, err), SHOAL_EMANIFEST);
  ck_assert_ptr_nonnull(strstr(err, "\"peers\" missing"));
  kvs_free(&k);
  static const char *types[] = { "i0e", "i19e", "le", "l0:e", "de" };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    kvs_from_sample(&k);
    kvs_set_str(&k, "peers", types[i]);
    ck_assert_msg(parse_kvs(&k, err) == SHOAL_EMANIFEST, "peers=%s accepted", types[i]);
    ck_assert_msg(strstr(err, "\"peers\" missing or not a string") != NULL, "%s", err);
    kvs_free(&k);
  }
  kvs_from_sample(&k);
  kvs_dup_key(&k, "peers", "0:");
  ck_assert_int_eq(parse_kvs(&k, err), SHOAL_EBENCODE);
  kvs_free(&k);
}
END_TEST

START_TEST(test_peer_sockaddr)
{
  struct resume_peer pe, keep;
  struct sockaddr_storage ss, zero;
  memset(&zero, 0, sizeof zero);
  /* IPv4 127.0.0.1:6881 and back. */
  struct sockaddr_in s4;
  memset(&s4, 0, sizeof s4);
  s4.sin_family = AF_INET;
  s4.sin_port = htons(6881);
  s4.sin_addr.s_addr = htonl(0x7f000001);
  memset(&pe, 0xaa, sizeof pe);
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&s4, &pe), 0);
  ck_assert_uint_eq(pe.family, 4);
  static const uint8_t lo4[16] = { 127, 0, 0, 1 };
  ck_assert_mem_eq(pe.addr, lo4, 16);
  ck_assert_uint_eq(pe.port, 6881);
  memset(&ss, 0x55, sizeof ss);
  resume_peer_to_sockaddr(&pe, &ss);
  ck_assert_int_eq(ss.ss_family, AF_INET);
  ck_assert_mem_eq(&ss, &s4, sizeof s4);
  ck_assert_mem_eq((uint8_t *)&ss + sizeof s4, (uint8_t *)&zero + sizeof s4, sizeof ss - sizeof s4);
  /* IPv6 [::1]:51413 (bytes c8 d5: the order shows) and back. */
  struct sockaddr_in6 s6;
  memset(&s6, 0, sizeof s6);
  s6.sin6_family = AF_INET6;
  s6.sin6_port = htons(51413);
  s6.sin6_addr = in6addr_loopback;
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&s6, &pe), 0);
  ck_assert_uint_eq(pe.family, 6);
  static const uint8_t lo6[16] = { [15] = 1 };
  ck_assert_mem_eq(pe.addr, lo6, 16);
  ck_assert_uint_eq(pe.port, 51413);
  memset(&ss, 0x55, sizeof ss);
  resume_peer_to_sockaddr(&pe, &ss);
  ck_assert_int_eq(ss.ss_family, AF_INET6);
  ck_assert_mem_eq(&ss, &s6, sizeof s6);
  ck_assert_mem_eq((uint8_t *)&ss + sizeof s6, (uint8_t *)&zero + sizeof s6, sizeof ss - sizeof s6);
  /* What the helper makes, the record takes: encode and parse it. */
  struct resume a, b;
  struct buf enc;
  char err[SHOAL_ERRLEN];
  sample(&a);
  a.peers[1] = pe;
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&s4, &a.peers[0]), 0);
  encode_ok(&a, &enc);
  ck_assert_int_eq(resume_parse(enc.p, enc.len, &b, err, sizeof err), 0);
  assert_same(&a, &b);
  buf_free(&enc);
  resume_free(&a);
  resume_free(&b);
  /* Refused, *out untouched: AF_UNIX, AF_UNSPEC, port 0, NULL. */
  keep = pe;
  struct sockaddr_un su;
  memset(&su, 0, sizeof su);
  su.sun_family = AF_UNIX;
  strcpy(su.sun_path, "/tmp/x");   /* read as a sockaddr_in, its "port" would not be 0 */
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&su, &pe), UV_EINVAL);
  ck_assert_mem_eq(&pe, &keep, sizeof pe);
  struct sockaddr_storage un;
  memset(&un, 0, sizeof un);
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&un, &pe), UV_EINVAL);
  s4.sin_port = 0;
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&s4, &pe), UV_EINVAL);
  s6.sin6_port = 0;
  ck_assert_int_eq(resume_peer_from_sockaddr((const struct sockaddr *)&s6, &pe), UV_EINVAL);
  ck_assert_int_eq(resume_peer_from_sockaddr(NULL, &pe), UV_EINVAL);
  ck_assert_mem_eq(&pe, &keep, sizeof pe);
  /* A record of another family gives a zeroed (AF_UNSPEC) address. */
  pe.family = 5;
  memset(&ss, 0x55, sizeof ss);
  resume_peer_to_sockaddr(&pe, &ss);
  ck_assert_mem_eq(&ss, &zero, sizeof ss);
}
END_TEST

START_TEST(test_path)
{
  uint8_t ih[20];
  for (int i = 0; i < 20; i++)
    ih[i] = (uint8_t)(0xa0 + i);
  char *p = resume_path("/var/lib/shoal/resume", ih);
  ck_assert_str_eq(p, "/var/lib/shoal/resume/a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3.resume");
  free(p);
}
END_TEST

/* A manifest by hand: piece length 16; files A (40 bytes at 0), B (empty),
 * a pad file (8 bytes at 40), C (30 bytes at 48): 78 bytes, 5 pieces.
 * Piece 2 (32..47) spans A and the pad; pieces 3 and 4 are C's alone. */
static void small_manifest(struct manifest *m, struct manifest_file *f)
{
  memset(m, 0, sizeof *m);
  f[0] = (struct manifest_file){ .path = "A", .length = 40, .offset = 0 };
  f[1] = (struct manifest_file){ .path = "B", .length = 0, .offset = 40 };
  f[2] = (struct manifest_file){ .path = ".pad/8", .length = 8, .offset = 40, .attr = MANIFEST_ATTR_PAD };
  f[3] = (struct manifest_file){ .path = "C", .length = 30, .offset = 48 };
  m->files = f;
  m->num_files = 4;
  m->piece_length = 16;
  m->num_pieces = 5;
  m->total_length = 78;
}

static void trust_record(struct resume *r)
{
  memset(r, 0, sizeof *r);
  ck_assert_int_eq(bitfield_init(&r->have, 5), 0);
  bitfield_set_all(&r->have);
  r->num_files = 4;
  r->files = calloc(4, sizeof *r->files);
  r->files[0] = (struct resume_file){ 40, 1000, 1, 1 };
  r->files[1] = (struct resume_file){ 0, 1000, 2, 1 };
  r->files[2] = (struct resume_file){ -1, 0, 0, 1 };
  r->files[3] = (struct resume_file){ 30, 1000, 3, 1 };
}

START_TEST(test_trust)
{
  struct manifest m;
  struct manifest_file mf[4];
  small_manifest(&m, mf);
  struct resume r;
  uint32_t cleared = 99;
  /* Nothing changed: everything kept. */
  trust_record(&r);
  struct resume_file now[4];
  memcpy(now, r.files, sizeof now);
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), 0);
  ck_assert_uint_eq(cleared, 0);
  ck_assert_uint_eq(r.have.count, 5);
  /* C touched (nanoseconds only): its pieces 3 and 4 go. */
  now[3].mtime_ns = 4;
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), 0);
  ck_assert_uint_eq(cleared, 2);
  ck_assert(bitfield_get(&r.have, 2));
  ck_assert(!bitfield_get(&r.have, 3));
  ck_assert(!bitfield_get(&r.have, 4));
  resume_free(&r);
  /* A changed size: pieces 0..2 go (2 shares A with the pad). */
  trust_record(&r);
  memcpy(now, r.files, sizeof now);
  now[0].size = 41;
  ck_assert_int_eq(resume_trust(&r, &m, now, NULL), 0);
  ck_assert_uint_eq(r.have.count, 2);
  ck_assert(bitfield_get(&r.have, 3));
  resume_free(&r);
  /* Empty file and pad file changes touch nothing. */
  trust_record(&r);
  memcpy(now, r.files, sizeof now);
  now[1].mtime_s = 5;
  now[2].size = 8;
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), 0);
  ck_assert_uint_eq(cleared, 0);
  resume_free(&r);
  /* C short on disk (saved short too, stamp unchanged): bytes 20..29 of C
   * (68..77) are missing: piece 4 goes, piece 3 (48..63) stays. */
  trust_record(&r);
  r.files[3].size = 20;
  memcpy(now, r.files, sizeof now);
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), 0);
  ck_assert_uint_eq(cleared, 1);
  ck_assert(bitfield_get(&r.have, 3));
  ck_assert(!bitfield_get(&r.have, 4));
  resume_free(&r);
  /* C missing then and now: all its pieces go. */
  trust_record(&r);
  r.files[3] = (struct resume_file){ -1, 0, 0, 1 };
  memcpy(now, r.files, sizeof now);
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), 0);
  ck_assert_uint_eq(cleared, 2);
  resume_free(&r);
  /* A record for another torrent is refused untouched. */
  trust_record(&r);
  m.num_pieces = 6;
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), SHOAL_EMANIFEST);
  m.num_pieces = 5;
  m.num_files = 3;
  ck_assert_int_eq(resume_trust(&r, &m, now, &cleared), SHOAL_EMANIFEST);
  ck_assert_uint_eq(r.have.count, 5);
  resume_free(&r);
  /* unchanged compares size and both time parts, not priority. */
  struct resume_file x = { 1, 2, 3, 0 }, y = { 1, 2, 3, 2 };
  ck_assert(resume_file_unchanged(&x, &y));
  y.mtime_s = 9;
  ck_assert(!resume_file_unchanged(&x, &y));
}
END_TEST

/* A fresh temporary folder for file tests. */
static char *tmpdir(void)
{
  char *d = strdup("/tmp/shoal-resume-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(d));
  return d;
}

static int count_entries(const char *dir)
{
  DIR *dh = opendir(dir);
  ck_assert_ptr_nonnull(dh);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dh)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(dh);
  return n;
}

static void rm_tree(const char *dir)
{
  DIR *dh = opendir(dir);
  if (dh == NULL)
    return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(dh)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (unlink(p) != 0)
      rmdir(p);
  }
  closedir(dh);
  rmdir(dir);
}

START_TEST(test_write_read)
{
  char *d = tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/x.resume", d);
  struct buf b;
  ck_assert_int_eq(resume_write_atomic(path, "hello", 5), 0);
  ck_assert_int_eq(resume_read_file(path, 100, &b), 0);
  ck_assert_uint_eq(b.len, 5);
  ck_assert_mem_eq(b.p, "hello", 5);
  buf_free(&b);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  /* Overwrite with something shorter: no leftovers, no temporary file. */
  ck_assert_int_eq(resume_write_atomic(path, "hi", 2), 0);
  ck_assert_int_eq(resume_read_file(path, 2, &b), 0);     /* exactly the max */
  ck_assert_mem_eq(b.p, "hi", 2);
  buf_free(&b);
  ck_assert_int_eq(count_entries(d), 1);
  ck_assert_int_eq(resume_read_file(path, 1, &b), SHOAL_ETOOBIG);
  ck_assert_ptr_null(b.p);
  /* Empty data. */
  ck_assert_int_eq(resume_write_atomic(path, "", 0), 0);
  ck_assert_int_eq(resume_read_file(path, 0, &b), 0);
  ck_assert_uint_eq(b.len, 0);
  buf_free(&b);
  /* Larger than one read. */
  size_t n = 300000;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; i++)
    big[i] = (uint8_t)(i * 31 + 7);
  ck_assert_int_eq(resume_write_atomic(path, big, n), 0);
  ck_assert_int_eq(resume_read_file(path, n, &b), 0);
  ck_assert_uint_eq(b.len, n);
  ck_assert_mem_eq(b.p, big, n);
  buf_free(&b);
  ck_assert_int_eq(resume_read_file(path, n - 1, &b), SHOAL_ETOOBIG);
  free(big);
  /* Errors: missing file, a folder, a missing folder, a folder in the way. */
  char other[512];
  snprintf(other, sizeof other, "%s/none", d);
  ck_assert_int_eq(resume_read_file(other, 100, &b), UV_ENOENT);
  ck_assert_int_eq(resume_read_file(d, 100, &b), UV_EINVAL);
  snprintf(other, sizeof other, "%s/no/such/x.resume", d);
  ck_assert_int_eq(resume_write_atomic(other, "x", 1), UV_ENOENT);
  snprintf(other, sizeof other, "%s/sub", d);
  ck_assert_int_eq(mkdir(other, 0700), 0);
  int rc = resume_write_atomic(other, "x", 1);
  ck_assert_msg(rc == UV_EISDIR || rc == UV_ENOTEMPTY || rc == UV_EEXIST, "rename over a folder: %d", rc);
  ck_assert_int_eq(count_entries(d), 2);   /* x.resume and sub: the temporary file is gone */
  ck_assert_int_eq(resume_write_atomic("", "x", 1), UV_EINVAL);
  /* A stale temporary file of this pid (a crash mid-save) does not block a save. */
  char stale[600];
  snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)getpid());
  int sfd = open(stale, O_WRONLY | O_CREAT, 0600);
  ck_assert_int_ge(sfd, 0);
  ck_assert_int_eq(write(sfd, "junk", 4), 4);
  close(sfd);
  ck_assert_int_eq(resume_write_atomic(path, "new", 3), 0);
  ck_assert_int_eq(resume_read_file(path, 10, &b), 0);
  ck_assert_uint_eq(b.len, 3);
  ck_assert_mem_eq(b.p, "new", 3);
  buf_free(&b);
  ck_assert_int_eq(count_entries(d), 2);
  /* A relative path (folder "."). */
  char cwd[512];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(d), 0);
  ck_assert_int_eq(resume_write_atomic("rel.resume", "abc", 3), 0);
  ck_assert_int_eq(chdir(cwd), 0);
  snprintf(other, sizeof other, "%s/rel.resume", d);
  ck_assert_int_eq(resume_read_file(other, 10, &b), 0);
  ck_assert_mem_eq(b.p, "abc", 3);
  buf_free(&b);
  rm_tree(other);
  snprintf(other, sizeof other, "%s/sub", d);
  rmdir(other);
  rm_tree(d);
  free(d);
}
END_TEST

START_TEST(test_file_round_trip)
{
  /* encode -> write -> read -> parse, as the daemon does across a restart. */
  char *d = tmpdir();
  struct resume a, b;
  struct buf enc, rd;
  char err[SHOAL_ERRLEN];
  sample(&a);
  char *path = resume_path(d, a.infohash);
  encode_ok(&a, &enc);
  ck_assert_int_eq(resume_write_atomic(path, enc.p, enc.len), 0);
  ck_assert_int_eq(resume_read_file(path, RESUME_MAX_FILE_SIZE, &rd), 0);
  ck_assert_int_eq(resume_parse(rd.p, rd.len, &b, err, sizeof err), 0);
  assert_same(&a, &b);
  /* A torn write (half the file) is reported, not trusted. */
  resume_free(&b);
  buf_free(&rd);
  int fd = open(path, O_WRONLY | O_TRUNC);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, enc.p, enc.len / 2), (ssize_t)(enc.len / 2));
  close(fd);
  ck_assert_int_eq(resume_read_file(path, RESUME_MAX_FILE_SIZE, &rd), 0);
  ck_assert_int_eq(resume_parse(rd.p, rd.len, &b, err, sizeof err), SHOAL_EBENCODE);
  buf_free(&rd);
  free(path);
  buf_free(&enc);
  resume_free(&a);
  rm_tree(d);
  free(d);
}
END_TEST

Suite *resume_suite(void)
{
  Suite *s = suite_create("resume");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_round_trip_magnet);
  tcase_add_test(tc, test_round_trip_large);
  tcase_add_test(tc, test_truncated_everywhere);
  tcase_add_test(tc, test_bit_flips);
  tcase_add_test(tc, test_resealed_unchanged_ok);
  tcase_add_test(tc, test_missing_each_key);
  tcase_add_test(tc, test_bad_content);
  tcase_add_test(tc, test_bad_binary_content);
  tcase_add_test(tc, test_outer_shape);
  tcase_add_test(tc, test_round_trip_limits);
  tcase_add_test(tc, test_content_key_order);
  tcase_add_test(tc, test_encode_rejects);
  tcase_add_test(tc, test_peers_round_trip);
  tcase_add_test(tc, test_peers_encode_rejects);
  tcase_add_test(tc, test_peers_parse_rejects);
  tcase_add_test(tc, test_peer_sockaddr);
  tcase_add_test(tc, test_path);
  tcase_add_test(tc, test_trust);
  tcase_add_test(tc, test_write_read);
  tcase_add_test(tc, test_file_round_trip);
  suite_add_tcase(s, tc);
  return s;
}
