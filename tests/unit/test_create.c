/* test_create.c -- building torrents from folders: walk rules, parallel hashing checked against an independent hash. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/manifest.h"
#include "peer/create.h"

static char tmp[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void setup(void)
{
  log_level = LOG_LEVEL_ERROR;         /* the walk warns about what it skips */
  snprintf(tmp, sizeof tmp, "/tmp/shoal-test-create-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
  nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tpath(const char *rel)
{
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, rel);
  return buf[k];
}

static void mkdirs(const char *rel)
{
  ck_assert_int_eq(mkdir(tpath(rel), 0755), 0);
}

/* A file of n deterministic bytes (seeded by seed). */
static void mkfile(const char *rel, size_t n, uint32_t seed)
{
  FILE *f = fopen(tpath(rel), "wb");
  ck_assert_ptr_nonnull(f);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    fputc((int)(x & 0xff), f);
  }
  ck_assert_int_eq(fclose(f), 0);
}

/* The torrent's data read back independently: files of m in order, from root. */
static uint8_t *concat(const struct manifest *m, const char *root)
{
  uint8_t *all = malloc(m->total_length);
  ck_assert_ptr_nonnull(all);
  for (uint32_t i = 0; i < m->num_files; i++) {
    char p[1024];
    if (m->multi_file)
      snprintf(p, sizeof p, "%s/%s", root, m->files[i].path);
    else
      snprintf(p, sizeof p, "%s", root);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(all + m->files[i].offset, 1, m->files[i].length, f), m->files[i].length);
    fclose(f);
  }
  return all;
}

static void check_hashes(const struct manifest *m, const char *root)
{
  uint8_t *all = concat(m, root);
  ck_assert_uint_eq(m->num_pieces, (m->total_length + m->piece_length - 1) / m->piece_length);
  for (uint32_t p = 0; p < m->num_pieces; p++) {
    uint64_t off = (uint64_t)p * m->piece_length;
    uint64_t n = m->total_length - off < m->piece_length ? m->total_length - off : m->piece_length;
    uint8_t h[20];
    hash_sha1(all + off, n, h);
    ck_assert_msg(memcmp(h, m->piece_hashes + 20 * (size_t)p, 20) == 0, "piece %u differs", p);
  }
  free(all);
  /* infohash: SHA-1 of the encoded info dict, which the parser finds again */
  uint8_t ih[20];
  ck_assert_ptr_nonnull(m->info);
  hash_sha1(m->info, m->info_len, ih);
  ck_assert_mem_eq(m->infohash, ih, 20);
}

struct prog {
  uint32_t calls, last, total;
  bool monotonic;
};

static void on_progress(void *ctx, uint32_t done, uint32_t total)
{
  struct prog *p = ctx;
  if (done < p->last || done > total)
    p->monotonic = false;
  p->calls++;
  p->last = done;
  p->total = total;
}

static struct manifest *run_ok(const struct create_opts *o, struct prog *pg)
{
  char err[SHOAL_ERRLEN] = "";
  struct manifest *m = NULL;
  int r = create_run(o, pg ? on_progress : NULL, pg, &m, err, sizeof err);
  ck_assert_msg(r == 0, "create failed (%d): %s", r, err);
  ck_assert_ptr_nonnull(m);
  return m;
}

static void run_fails(const struct create_opts *o, int code, const char *needle)
{
  char err[SHOAL_ERRLEN] = "";
  struct manifest *m = (struct manifest *)(uintptr_t)1;
  int r = create_run(o, NULL, NULL, &m, err, sizeof err);
  ck_assert_msg(r == code, "expected %d (%s), got %d: %s", code, shoal_strerror(code), r, err);
  ck_assert_ptr_eq(m, (struct manifest *)(uintptr_t)1);
  ck_assert_msg(strstr(err, needle) != NULL, "message '%s' does not name '%s'", err, needle);
  ck_assert_ptr_null(strchr(err, '\n'));
}

static void make_tree(void)
{
  mkdirs("share");
  mkdirs("share/sub");
  mkdirs("share/sub/deeper");
  mkdirs("share/emptydir");
  mkfile("share/a.txt", 1000, 1);
  mkfile("share/sub/b.bin", 70001, 2);
  mkfile("share/sub/deeper/c", 16384, 3);
  mkfile("share/sub/empty", 0, 4);
  mkfile("share/z", 33333, 5);
  mkfile("share/sub/a-b", 5, 6);       /* '-' sorts before '/' */
  ck_assert_int_eq(symlink("a.txt", tpath("share/link")), 0);
  ck_assert_int_eq(symlink("..", tpath("share/sub/loop")), 0);
  ck_assert_int_eq(mkfifo(tpath("share/fifo"), 0644), 0);
}

START_TEST(create_folder)
{
  make_tree();
  char *u0[] = { "http://t1.example/announce", "http://t2.example/announce" };
  char *u1[] = { "udp://t3.example:6969" };
  struct manifest_tier tiers[] = { { u0, 2 }, { u1, 1 } };
  struct create_opts o = {
    .path = tpath("share"), .piece_length = 16384, .tiers = tiers, .num_tiers = 2, .private_ = true,
    .comment = "a comment", .created_by = CREATE_CREATED_BY, .creation_date = 1700000000,
  };
  struct prog pg = { .monotonic = true };
  struct manifest *m = run_ok(&o, &pg);
  ck_assert_str_eq(m->name, "share");
  ck_assert(m->multi_file);
  ck_assert_uint_eq(m->num_files, 6);
  const char *want[] = { "a.txt", "sub/a-b", "sub/b.bin", "sub/deeper/c", "sub/empty", "z" };
  const uint64_t len[] = { 1000, 5, 70001, 16384, 0, 33333 };
  uint64_t off = 0;
  for (int i = 0; i < 6; i++) {
    ck_assert_str_eq(m->files[i].path, want[i]);
    ck_assert_uint_eq(m->files[i].length, len[i]);
    ck_assert_uint_eq(m->files[i].offset, off);
    ck_assert_uint_eq(m->files[i].attr, 0);
    off += len[i];
  }
  ck_assert_uint_eq(m->total_length, off);
  ck_assert_uint_eq(m->piece_length, 16384);
  check_hashes(m, tpath("share"));
  ck_assert(pg.monotonic);
  ck_assert_uint_ge(pg.calls, 1);
  ck_assert_uint_eq(pg.last, m->num_pieces);
  ck_assert_uint_eq(pg.total, m->num_pieces);

  /* what is written can be read back, with the same infohash and fields */
  struct buf b;
  buf_init(&b, 1 << 20);
  ck_assert_int_eq(manifest_encode(m, &b), 0);
  char err[SHOAL_ERRLEN];
  struct manifest *p = NULL;
  ck_assert_msg(manifest_parse(b.p, b.len, &p, err, sizeof err) == 0, "%s", err);
  ck_assert_mem_eq(p->infohash, m->infohash, 20);
  ck_assert(p->private_);
  ck_assert_str_eq(p->comment, "a comment");
  ck_assert_str_eq(p->created_by, "shoal/0.1");
  ck_assert_int_eq(p->creation_date, 1700000000);
  ck_assert_uint_eq(p->num_tiers, 2);
  ck_assert_str_eq(p->tiers[0].urls[1], "http://t2.example/announce");
  ck_assert_str_eq(p->tiers[1].urls[0], "udp://t3.example:6969");
  ck_assert_uint_eq(p->num_files, 6);
  ck_assert_str_eq(p->files[3].path, "sub/deeper/c");
  ck_assert_mem_eq(p->piece_hashes, m->piece_hashes, 20 * (size_t)m->num_pieces);
  manifest_free(p);
  buf_free(&b);
  manifest_free(m);
}
END_TEST

START_TEST(same_result_any_parallelism)
{
  /* many small files of odd sizes: files span pieces and work items */
  mkdirs("many");
  for (int i = 0; i < 300; i++) {
    char rel[64];
    if (i % 50 == 0) {
      snprintf(rel, sizeof rel, "many/d%02d", i / 50);
      mkdirs(rel);
    }
    snprintf(rel, sizeof rel, "many/d%02d/f%03d", i / 50, i);
    mkfile(rel, (size_t)(i * 7919) % 5003, (uint32_t)i);
  }
  uint8_t ih[20];
  for (unsigned threads = 1; threads <= 16; threads = threads * 2 + 1) {
    struct create_opts o = { .path = tpath("many"), .piece_length = 16384, .threads = threads };
    struct prog pg = { .monotonic = true };
    struct manifest *m = run_ok(&o, &pg);
    ck_assert_uint_eq(m->num_files, 300);
    check_hashes(m, tpath("many"));
    ck_assert(pg.monotonic);
    ck_assert_uint_eq(pg.last, m->num_pieces);
    if (threads == 1)
      memcpy(ih, m->infohash, 20);
    else
      ck_assert_mem_eq(m->infohash, ih, 20);
    manifest_free(m);
  }
}
END_TEST

START_TEST(piece_sizes)
{
  /* pieces larger than the read buffer (hashed incrementally), pieces that
   * fill it, and the automatic choice */
  mkdirs("big");
  mkfile("big/one", 9u << 20, 11);
  mkfile("big/two", (3u << 20) + 12345, 12);
  const uint32_t sizes[] = { 16u << 20, 8u << 20, 2u << 20, 1u << 20, 16384, 0 };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    struct create_opts o = { .path = tpath("big"), .piece_length = sizes[i], .threads = 3 };
    struct manifest *m = run_ok(&o, NULL);
    ck_assert_uint_eq(m->piece_length, sizes[i] ? sizes[i] : manifest_choose_piece_length(m->total_length));
    check_hashes(m, tpath("big"));
    manifest_free(m);
  }
}
END_TEST

START_TEST(single_file_and_names)
{
  mkdirs("d");
  mkfile("d/file.bin", 50000, 7);
  struct create_opts o = { .path = tpath("d/file.bin"), .piece_length = 32768 };
  struct manifest *m = run_ok(&o, NULL);
  ck_assert(!m->multi_file);
  ck_assert_str_eq(m->name, "file.bin");
  ck_assert_uint_eq(m->num_files, 1);
  ck_assert_str_eq(m->files[0].path, "file.bin");
  ck_assert_uint_eq(m->total_length, 50000);
  ck_assert_uint_eq(m->num_pieces, 2);
  ck_assert_uint_eq(m->num_tiers, 0);
  ck_assert_ptr_null(m->comment);
  check_hashes(m, tpath("d/file.bin"));
  manifest_free(m);

  /* a trailing slash, and "." / ".." take the real folder's name */
  char p[600];
  snprintf(p, sizeof p, "%s//", tpath("d"));
  o.path = p;
  m = run_ok(&o, NULL);
  ck_assert_str_eq(m->name, "d");
  ck_assert(m->multi_file);
  ck_assert_str_eq(m->files[0].path, "file.bin");
  manifest_free(m);
  snprintf(p, sizeof p, "%s/.", tpath("d"));
  m = run_ok(&o, NULL);
  ck_assert_str_eq(m->name, "d");
  manifest_free(m);
  ck_assert_int_eq(chdir(tpath("d")), 0);
  o.path = ".";
  m = run_ok(&o, NULL);
  ck_assert_str_eq(m->name, "d");
  manifest_free(m);
  o.path = "./file.bin";
  m = run_ok(&o, NULL);
  ck_assert_str_eq(m->name, "file.bin");
  manifest_free(m);
}
END_TEST

static void never_called(void *ctx, int status, struct manifest *m, const char *err)
{
  (void)ctx, (void)status, (void)m, (void)err;
  ck_abort_msg("done called after a synchronous refusal");
}

START_TEST(errors)
{
  struct create_opts o = { .path = tpath("missing") };
  char want[600];
  snprintf(want, sizeof want, "cannot read %s: No such file or directory", tpath("missing"));
  run_fails(&o, UV_ENOENT, want);

  mkdirs("empty");
  mkdirs("empty/sub");
  ck_assert_int_eq(symlink("/etc/passwd", tpath("empty/sub/l")), 0);
  o.path = tpath("empty");
  run_fails(&o, SHOAL_EMANIFEST, "folder holds no files");

  mkdirs("zeros");
  mkfile("zeros/a", 0, 1);
  mkfile("zeros/b", 0, 1);
  o.path = tpath("zeros");
  run_fails(&o, SHOAL_EMANIFEST, "nothing to share: all files are empty");
  o.path = tpath("zeros/a");
  run_fails(&o, SHOAL_EMANIFEST, "nothing to share");

  ck_assert_int_eq(mkfifo(tpath("fifo"), 0644), 0);
  o.path = tpath("fifo");
  run_fails(&o, UV_EINVAL, "not a regular file or a folder");

  mkdirs("ok");
  mkfile("ok/x", 10, 1);
  o.path = tpath("ok");
  o.piece_length = 1000;
  run_fails(&o, UV_EINVAL, "piece size 1000 is not a power of two");
  o.piece_length = 8192;
  run_fails(&o, UV_EINVAL, "piece size 8192");
  o.piece_length = 32u << 20;
  run_fails(&o, UV_EINVAL, "piece size 33554432");
  o.piece_length = 0;

  char *bad[] = { "http://a b/" };
  struct manifest_tier t = { bad, 1 };
  o.tiers = &t;
  o.num_tiers = 1;
  run_fails(&o, UV_EINVAL, "invalid announce URL 'http://a b/'");
  o.tiers = NULL;
  o.num_tiers = 0;
  o.comment = "\xff\xfe";
  run_fails(&o, UV_EINVAL, "comment is not valid UTF-8");
  o.comment = NULL;

  /* names the parser would refuse are refused before hashing */
  mkdirs("badname");
  mkfile("badname/ok", 10, 1);
  mkfile("badname/\xff.bin", 10, 1);
  o.path = tpath("badname");
  run_fails(&o, SHOAL_EPATH, "path component '\\xff.bin' is not valid UTF-8");
  mkdirs("dots");
  mkfile("dots/...", 10, 1);
  o.path = tpath("dots");
  run_fails(&o, SHOAL_EPATH, "made only of dots");
  mkdirs("bs");
  mkfile("bs/a\\b", 10, 1);
  o.path = tpath("bs");
  run_fails(&o, SHOAL_EPATH, "contains '\\'");
  mkdirs("n\xc3(");
  mkfile("n\xc3(/f", 10, 1);
  o.path = tpath("n\xc3(");
  run_fails(&o, SHOAL_EPATH, "name 'n\\xc3(' is not valid UTF-8");

  /* a folder that cannot be read */
  if (geteuid() != 0) {
    mkdirs("ok/locked");
    mkfile("ok/locked/f", 1, 1);
    chmod(tpath("ok/locked"), 0);
    o.path = tpath("ok");
    run_fails(&o, UV_EACCES, "Permission denied");
    chmod(tpath("ok/locked"), 0755);
  }

  /* synchronous refusals: done is never called */
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct create_opts none = { 0 };
  ck_assert_int_eq(create_start(&loop, &none, NULL, never_called, NULL), UV_EINVAL);
  ck_assert_int_eq(create_start(&loop, &o, NULL, NULL, NULL), UV_EINVAL);
  char *nullurl[] = { NULL };
  struct manifest_tier nt = { nullurl, 1 };
  o.tiers = &nt;
  o.num_tiers = 1;
  ck_assert_int_eq(create_start(&loop, &o, NULL, never_called, NULL), UV_EINVAL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_NOWAIT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(too_deep)
{
  char rel[1024] = "deep";
  size_t n = strlen(rel);
  mkdirs(rel);
  for (int i = 0; i < 64; i++) {
    n += (size_t)snprintf(rel + n, sizeof rel - n, "/d");
    mkdirs(rel);
  }
  snprintf(rel + n, sizeof rel - n, "/f");
  mkfile(rel, 10, 1);
  struct create_opts o = { .path = tpath("deep") };
  run_fails(&o, SHOAL_EPATH, "folders nested deeper than 63 levels");
}
END_TEST

/* ---- files that change while being hashed ---- */

struct change {
  const char *victim;
  int how;            /* 0: shrink, 1: grow */
  bool done_called;
  int status;
  char err[SHOAL_ERRLEN];
  struct manifest *m;
};

static void change_progress(void *ctx, uint32_t done, uint32_t total)
{
  struct change *c = ctx;
  (void)total;
  if (done == 2) {     /* first chunk done; the victim's chunks come later */
    int fd = open(c->victim, O_WRONLY | (c->how ? O_APPEND : 0));
    ck_assert_int_ge(fd, 0);
    if (c->how)
      ck_assert_int_eq(write(fd, "more", 4), 4);
    else
      ck_assert_int_eq(ftruncate(fd, 10), 0);
    close(fd);
  }
}

static void change_done(void *ctx, int status, struct manifest *m, const char *err)
{
  struct change *c = ctx;
  c->done_called = true;
  c->status = status;
  c->m = m;
  if (err)
    snprintf(c->err, sizeof c->err, "%s", err);
}

START_TEST(changed_while_hashing)
{
  mkdirs("ch");
  mkfile("ch/a", 65536, 1);          /* pieces 0-3 */
  mkfile("ch/b", 65536, 2);          /* pieces 4-7 */
  for (int how = 0; how < 2; how++) {
    struct change c = { .victim = tpath("ch/b"), .how = how };
    /* one work item at a time, 4 chunks of 2 pieces: deterministic order */
    struct create_opts o = { .path = tpath("ch"), .piece_length = 16384, .threads = 1 };
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(create_start(&loop, &o, change_progress, change_done, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ck_assert(c.done_called);
    ck_assert_int_eq(c.status, UV_EIO);
    ck_assert_ptr_null(c.m);
    ck_assert_msg(strstr(c.err, "ch/b changed while being hashed") != NULL, "%s", c.err);
    mkfile("ch/b", 65536, 2);
  }
}
END_TEST

Suite *create_suite(void)
{
  Suite *s = suite_create("create");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, create_folder);
  tcase_add_test(tc, same_result_any_parallelism);
  tcase_add_test(tc, piece_sizes);
  tcase_add_test(tc, single_file_and_names);
  tcase_add_test(tc, errors);
  tcase_add_test(tc, too_deep);
  tcase_add_test(tc, changed_while_hashing);
  suite_add_tcase(s, tc);
  return s;
}
