/* test_storage.c -- storage on a real libuv loop in a temporary folder: layouts, checks, reads, symlinks, close. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/bitfield.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/manifest.h"
#include "peer/storage.h"

#define PL 16384u
#define MAX_FILES 64

struct spec {
  const char *path;
  uint64_t length;
  uint32_t attr;
};

/* A torrent built by hand in a fresh temporary folder. */
struct fx {
  char dir[64];
  char root[128];
  uv_loop_t loop;
  uv_thread_t loop_thread;
  struct manifest m;
  struct manifest_file files[MAX_FILES];
  char paths[MAX_FILES][64];
  uint8_t *data;       /* the whole torrent's bytes (pad regions zero) */
  struct storage *s;
};

static void fx_setup(struct fx *f, const char *name, int multi, const struct spec *sp, uint32_t n, uint32_t piece_len)
{
  memset(f, 0, sizeof(*f));
  strcpy(f->dir, "/tmp/shoal-storage-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(f->dir));
  snprintf(f->root, sizeof(f->root), "%s/%s", f->dir, name);
  ck_assert_int_eq(uv_loop_init(&f->loop), 0);
  f->loop_thread = uv_thread_self();
  ck_assert_uint_le(n, MAX_FILES);
  uint64_t off = 0;
  for (uint32_t i = 0; i < n; i++) {
    snprintf(f->paths[i], sizeof(f->paths[i]), "%s", sp[i].path);
    f->files[i].path = f->paths[i];
    f->files[i].length = sp[i].length;
    f->files[i].offset = off;
    f->files[i].attr = sp[i].attr;
    off += sp[i].length;
  }
  f->m.name = (char *)name;
  f->m.multi_file = multi != 0;
  f->m.total_length = off;
  f->m.piece_length = piece_len;
  f->m.num_pieces = (uint32_t)((off + piece_len - 1) / piece_len);
  f->m.files = f->files;
  f->m.num_files = n;
  f->data = malloc(off ? off : 1);
  ck_assert_ptr_nonnull(f->data);
  uint32_t x = 0x9e3779b9u ^ (uint32_t)off;
  for (uint64_t i = 0; i < off; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    f->data[i] = (uint8_t)x;
  }
  for (uint32_t i = 0; i < n; i++)
    if (sp[i].attr & MANIFEST_ATTR_PAD)
      memset(f->data + f->files[i].offset, 0, sp[i].length);
  f->m.piece_hashes = malloc((size_t)f->m.num_pieces * HASH_SHA1_LEN + 1);
  for (uint32_t p = 0; p < f->m.num_pieces; p++) {
    uint64_t po = (uint64_t)p * piece_len;
    uint64_t len = off - po < piece_len ? off - po : piece_len;
    hash_sha1(f->data + po, len, f->m.piece_hashes + (size_t)p * HASH_SHA1_LEN);
  }
  ck_assert_int_eq(storage_open(&f->s, &f->loop, &f->m, f->dir), 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  return remove(path);
}

static void rm_tree(const char *dir)
{
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int close_calls;
static void on_close(void *ctx)
{
  (void)ctx;
  close_calls++;
}

static void fx_close_storage(struct fx *f)
{
  if (f->s == NULL)
    return;
  close_calls = 0;
  storage_close(f->s, on_close, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(close_calls, 1);
  f->s = NULL;
}

static void fx_teardown(struct fx *f)
{
  fx_close_storage(f);
  ck_assert_int_eq(uv_loop_close(&f->loop), 0);
  rm_tree(f->dir);
  free(f->data);
  free(f->m.piece_hashes);
}

/* Reopens the storage (fresh counters and fd cache). */
static void fx_reopen(struct fx *f)
{
  fx_close_storage(f);
  ck_assert_int_eq(storage_open(&f->s, &f->loop, &f->m, f->dir), 0);
}

static uv_thread_t cb_loop_thread;
static int cb_wrong_thread;

struct res {
  int calls;
  int status;
};

static void res_cb(void *ctx, int status)
{
  struct res *r = ctx;
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &cb_loop_thread))
    cb_wrong_thread++;
  r->calls++;
  r->status = status;
}

static uint32_t piece_size(const struct fx *f, uint32_t p)
{
  uint64_t po = (uint64_t)p * f->m.piece_length;
  uint64_t left = f->m.total_length - po;
  return (uint32_t)(left < f->m.piece_length ? left : f->m.piece_length);
}

static int write_piece_sync(struct fx *f, uint32_t p, const uint8_t *data)
{
  struct res r = { 0, 0 };
  cb_loop_thread = f->loop_thread;
  ck_assert_int_eq(storage_write_piece(f->s, p, data, res_cb, &r), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 1);
  return r.status;
}

/* Writes every piece, all in flight at once, last piece first. */
static void write_all(struct fx *f)
{
  uint32_t n = f->m.num_pieces;
  struct res *r = calloc(n, sizeof(*r));
  cb_loop_thread = f->loop_thread;
  cb_wrong_thread = 0;
  for (uint32_t i = n; i-- > 0;)
    ck_assert_int_eq(storage_write_piece(f->s, i, f->data + (uint64_t)i * f->m.piece_length, res_cb, &r[i]), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  for (uint32_t i = 0; i < n; i++) {
    ck_assert_int_eq(r[i].calls, 1);
    ck_assert_msg(r[i].status == 0, "piece %u: %s", i, shoal_strerror(r[i].status));
  }
  ck_assert_int_eq(cb_wrong_thread, 0);
  free(r);
}

static uint32_t progress_last;
static uint32_t progress_calls;
static int progress_bad;
static void progress_cb(void *ctx, uint32_t done)
{
  (void)ctx;
  uv_thread_t self = uv_thread_self();
  if (done < progress_last || !uv_thread_equal(&self, &cb_loop_thread))
    progress_bad++;
  progress_last = done;
  progress_calls++;
}

static void check_sync(struct fx *f, struct bitfield *have)
{
  struct res r = { 0, 0 };
  progress_last = 0;
  progress_calls = 0;
  progress_bad = 0;
  cb_loop_thread = f->loop_thread;
  cb_wrong_thread = 0;
  ck_assert_int_eq(bitfield_init(have, f->m.num_pieces), 0);
  bitfield_set_all(have);  /* must be cleared by the check */
  ck_assert_int_eq(storage_check(f->s, have, progress_cb, res_cb, &r), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(progress_bad, 0);
  ck_assert_int_eq(cb_wrong_thread, 0);
  if (f->m.num_pieces > 0)
    ck_assert_uint_eq(progress_last, f->m.num_pieces);
}

static int read_sync(struct fx *f, uint32_t p, uint32_t begin, uint32_t len, uint8_t *dst)
{
  struct res r = { 0, 0 };
  cb_loop_thread = f->loop_thread;
  int rc = storage_read(f->s, p, begin, len, dst, res_cb, &r);
  if (rc < 0)
    return rc;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 1);
  return r.status;
}

/* Asserts that file i on disk holds exactly its bytes of the torrent. */
static void assert_file(struct fx *f, uint32_t i)
{
  char path[256];
  ck_assert_int_eq(storage_file_path(f->s, i, path, sizeof(path)), 0);
  int fd = open(path, O_RDONLY);
  ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
  struct stat st;
  ck_assert_int_eq(fstat(fd, &st), 0);
  ck_assert_msg((uint64_t)st.st_size == f->files[i].length, "%s: size %lld", path, (long long)st.st_size);
  uint8_t *buf = malloc(f->files[i].length + 1);
  ck_assert_int_eq(pread(fd, buf, f->files[i].length, 0), (ssize_t)f->files[i].length);
  ck_assert(memcmp(buf, f->data + f->files[i].offset, f->files[i].length) == 0);
  free(buf);
  close(fd);
}

static int path_exists(const char *p)
{
  struct stat st;
  return lstat(p, &st) == 0;
}

static void flip_byte(const char *path, off_t at)
{
  int fd = open(path, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t b;
  ck_assert_int_eq(pread(fd, &b, 1, at), 1);
  b ^= 0x5a;
  ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static int dir_entries(const char *dir)
{
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

/* 60353 bytes, 4 pieces of 16 KiB: piece 0 spans a, b, c and d (and the
 * empty file between them). */
static const struct spec multi_spec[] = {
  { "a.bin", 5000, 0 },
  { "sub/b.bin", 7, 0 },
  { "sub/empty", 0, 0 },
  { "sub/deep/c.dat", 3001, 0 },
  { "d.bin", 40000, 0 },
  { "e/f/g.bin", 12345, 0 },
};
#define MULTI_N (sizeof(multi_spec) / sizeof(multi_spec[0]))

static const struct spec single_spec[] = { { "single.bin", 100003, 0 } };

/* ---- tests ---- */

START_TEST(test_open_rejects)
{
  struct fx f;
  fx_setup(&f, "t", 1, multi_spec, MULTI_N, PL);
  struct storage *s = NULL;
  struct manifest m = f.m;
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, ""), UV_EINVAL);
  ck_assert_int_eq(storage_open(&s, &f.loop, NULL, f.dir), UV_EINVAL);
  m.num_pieces = 5;
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), UV_EINVAL);
  m = f.m;
  m.piece_length = 0;
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), UV_EINVAL);
  m = f.m;
  m.total_length++;
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), UV_EINVAL);
  m = f.m;
  m.name = "..";
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), SHOAL_EPATH);
  m.name = "a/b";
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), SHOAL_EPATH);
  m.name = "";
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), SHOAL_EPATH);
  m = f.m;
  m.multi_file = false;  /* six files but single-file */
  ck_assert_int_eq(storage_open(&s, &f.loop, &m, f.dir), UV_EINVAL);

  const char *bad[] = { "../x", "sub/../../x", "/etc/passwd", "sub//x", "./x", "sub/", "sub/." };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(f.paths[1], sizeof(f.paths[1]), "%s", bad[i]);
    ck_assert_msg(storage_open(&s, &f.loop, &f.m, f.dir) == SHOAL_EPATH, "%s accepted", bad[i]);
  }
  snprintf(f.paths[1], sizeof(f.paths[1]), "sub/b.bin");
  f.files[2].offset++;  /* not contiguous */
  ck_assert_int_eq(storage_open(&s, &f.loop, &f.m, f.dir), UV_EINVAL);
  f.files[2].offset--;
  ck_assert_ptr_null(s);

  /* open touches nothing: a folder that does not exist stays so, even after close */
  char nodir[128];
  snprintf(nodir, sizeof(nodir), "%s/not-there", f.dir);
  ck_assert_int_eq(storage_open(&s, &f.loop, &f.m, nodir), 0);
  close_calls = 0;
  storage_close(s, on_close, NULL);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(close_calls, 1);
  ck_assert(!path_exists(nodir));
  ck_assert_int_eq(dir_entries(f.dir), 0);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_single_roundtrip)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  ck_assert_uint_eq(f.m.num_pieces, 7);
  ck_assert_str_eq(storage_root_path(f.s), f.root);
  ck_assert_uint_eq(storage_piece_size(f.s, 6), 100003 - 6 * PL);
  ck_assert_uint_eq(storage_piece_size(f.s, 7), 0);
  write_all(&f);
  assert_file(&f, 0);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_written, 100003);
  ck_assert_uint_eq(st.bytes_read, 0);

  fx_reopen(&f);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 7);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_read, 100003);
  ck_assert_uint_eq(st.files_opened, 1);  /* one fd shared by every piece */
  bitfield_free(&have);

  uint8_t buf[PL];
  ck_assert_int_eq(read_sync(&f, 6, 0, piece_size(&f, 6), buf), 0);
  ck_assert(memcmp(buf, f.data + 6 * PL, piece_size(&f, 6)) == 0);
  ck_assert_int_eq(read_sync(&f, 3, 100, 5000, buf), 0);
  ck_assert(memcmp(buf, f.data + 3 * PL + 100, 5000) == 0);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_multi_layout)
{
  struct fx f;
  fx_setup(&f, "multi", 1, multi_spec, MULTI_N, PL);
  ck_assert_uint_eq(f.m.num_pieces, 4);
  write_all(&f);
  for (uint32_t i = 0; i < MULTI_N; i++)
    if (f.files[i].length > 0)
      assert_file(&f, i);
  char path[256];
  ck_assert_int_eq(storage_file_path(f.s, 2, path, sizeof(path)), 0);
  ck_assert_str_eq(path + strlen(f.dir), "/multi/sub/empty");
  ck_assert(!path_exists(path));  /* empty files only come with finish */
  ck_assert_int_eq(storage_file_path(f.s, 2, path, 10), UV_ENOBUFS);
  ck_assert_int_eq(storage_file_path(f.s, MULTI_N, path, sizeof(path)), UV_EINVAL);

  struct res r = { 0, 0 };
  ck_assert_int_eq(storage_finish(f.s, res_cb, &r), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 1);
  ck_assert_int_eq(r.status, 0);
  ck_assert_int_eq(storage_file_path(f.s, 2, path, sizeof(path)), 0);
  struct stat st;
  ck_assert_int_eq(lstat(path, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_int_eq(st.st_size, 0);

  fx_reopen(&f);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 4);
  bitfield_free(&have);

  /* blocks across file boundaries: a|b|c, c|d, d|g */
  uint8_t buf[PL];
  ck_assert_int_eq(read_sync(&f, 0, 4990, 30, buf), 0);
  ck_assert(memcmp(buf, f.data + 4990, 30) == 0);
  ck_assert_int_eq(read_sync(&f, 0, 0, PL, buf), 0);
  ck_assert(memcmp(buf, f.data, PL) == 0);
  ck_assert_int_eq(read_sync(&f, 2, 15000, 1384, buf), 0);  /* d ends at 48008 = 2*PL + 15240 */
  ck_assert(memcmp(buf, f.data + 2 * PL + 15000, 1384) == 0);
  ck_assert_int_eq(read_sync(&f, 3, 0, piece_size(&f, 3), buf), 0);
  ck_assert(memcmp(buf, f.data + 3 * PL, piece_size(&f, 3)) == 0);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_corrupt_byte)
{
  struct fx f;
  fx_setup(&f, "multi", 1, multi_spec, MULTI_N, PL);
  write_all(&f);
  char path[256];
  ck_assert_int_eq(storage_file_path(f.s, 3, path, sizeof(path)), 0);  /* c.dat: piece 0 */
  flip_byte(path, 10);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 3);
  ck_assert(!bitfield_get(&have, 0));
  ck_assert(bitfield_get(&have, 1) && bitfield_get(&have, 2) && bitfield_get(&have, 3));
  bitfield_free(&have);

  ck_assert_int_eq(storage_file_path(f.s, 5, path, sizeof(path)), 0);  /* last byte of g: piece 3 */
  flip_byte(path, 12344);
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 2);
  ck_assert(bitfield_get(&have, 1) && bitfield_get(&have, 2));
  bitfield_free(&have);

  /* rewriting the piece repairs it */
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), 0);
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 3);
  ck_assert(!bitfield_get(&have, 3));
  bitfield_free(&have);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_wrong_data)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  uint8_t *bad = malloc(PL);
  memcpy(bad, f.data + PL, PL);
  bad[PL - 1] ^= 1;
  ck_assert_int_eq(write_piece_sync(&f, 1, bad), SHOAL_EHASH);
  ck_assert(!path_exists(f.root));  /* nothing created */
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_written, 0);
  ck_assert_uint_eq(st.files_opened, 0);

  write_all(&f);
  /* the right data of another piece is wrong for this one */
  ck_assert_int_eq(write_piece_sync(&f, 2, f.data + PL), SHOAL_EHASH);
  ck_assert_int_eq(write_piece_sync(&f, 1, bad), SHOAL_EHASH);
  fx_reopen(&f);
  assert_file(&f, 0);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_written, 0);

  ck_assert_int_eq(storage_write_piece(f.s, 7, f.data, res_cb, NULL), UV_EINVAL);
  ck_assert_int_eq(storage_write_piece(f.s, 0, NULL, res_cb, NULL), UV_EINVAL);
  ck_assert_int_eq(storage_write_piece(f.s, 0, f.data, NULL, NULL), UV_EINVAL);
  free(bad);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_read_ranges)
{
  struct fx f;
  fx_setup(&f, "multi", 1, multi_spec, MULTI_N, PL);
  uint8_t buf[PL + 1];
  /* nothing on disk: a read fails and creates nothing */
  ck_assert_int_eq(read_sync(&f, 1, 0, 100, buf), UV_ENOENT);
  ck_assert(!path_exists(f.root));
  write_all(&f);

  struct res r = { 0, 0 };
  ck_assert_int_eq(storage_read(f.s, 4, 0, 1, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, UINT32_MAX, 0, 1, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, 0, 0, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, PL - 4, 5, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, 0, PL + 1, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, UINT32_MAX, 2, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, 1, UINT32_MAX, buf, res_cb, &r), UV_EINVAL);
  uint32_t last = piece_size(&f, 3);
  ck_assert_int_eq(storage_read(f.s, 3, last, 1, buf, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, 0, 1, NULL, res_cb, &r), UV_EINVAL);
  ck_assert_int_eq(storage_read(f.s, 0, 0, 1, buf, NULL, &r), UV_EINVAL);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.calls, 0);  /* rejected requests never call back */
  ck_assert_int_eq(read_sync(&f, 3, last - 1, 1, buf), 0);
  ck_assert_uint_eq(buf[0], f.data[f.m.total_length - 1]);

  /* a short file is an error, not zeros */
  char path[256];
  ck_assert_int_eq(storage_file_path(f.s, 4, path, sizeof(path)), 0);
  ck_assert_int_eq(truncate(path, 100), 0);
  ck_assert_int_eq(read_sync(&f, 1, 0, 100, buf), UV_EIO);
  ck_assert_int_eq(read_sync(&f, 0, 8008 + 50, 50, buf), 0);  /* d's first 100 bytes are still there */
  ck_assert(memcmp(buf, f.data + 8058, 50) == 0);
  ck_assert_int_eq(read_sync(&f, 0, 8008 + 50, 51, buf), UV_EIO);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_symlinks)
{
  struct fx f;
  fx_setup(&f, "multi", 1, multi_spec, MULTI_N, PL);
  char elsewhere[] = "/tmp/shoal-elsewhere-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(elsewhere));
  char p[256];

  /* a folder inside the torrent's folder is a link outside */
  ck_assert_int_eq(mkdir(f.root, 0755), 0);
  snprintf(p, sizeof(p), "%s/sub", f.root);
  ck_assert_int_eq(symlink(elsewhere, p), 0);
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), SHOAL_EPATH);
  ck_assert_int_eq(dir_entries(elsewhere), 0);
  /* the same bytes placed behind the link are not seen by a check or a read */
  snprintf(p, sizeof(p), "%s/b.bin", elsewhere);
  FILE *fp = fopen(p, "wb");
  ck_assert_int_eq(fwrite(f.data + 5000, 1, 7, fp), 7);
  fclose(fp);
  uint8_t buf[64];
  ck_assert_int_eq(read_sync(&f, 0, 4999, 2, buf), SHOAL_EPATH);
  for (uint32_t i = 1; i < f.m.num_pieces; i++)
    ck_assert_int_eq(write_piece_sync(&f, i, f.data + (uint64_t)i * PL), 0);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 3);
  ck_assert(!bitfield_get(&have, 0));
  bitfield_free(&have);
  unlink(p);
  ck_assert_int_eq(dir_entries(elsewhere), 0);

  /* a file that is a link to a file outside: not written through, not read
   * (reopened: a descriptor cached before the swap would still be used) */
  fx_reopen(&f);
  snprintf(p, sizeof(p), "%s/d.bin", f.root);
  ck_assert_int_eq(unlink(p), 0);
  char target[128];
  snprintf(target, sizeof(target), "%s/target", elsewhere);
  fp = fopen(target, "wb");
  ck_assert_int_eq(fwrite(f.data + 8008, 1, 40000, fp), 40000);  /* d's right bytes */
  fclose(fp);
  ck_assert_int_eq(symlink(target, p), 0);
  ck_assert_int_eq(write_piece_sync(&f, 2, f.data + 2 * PL), SHOAL_EPATH);
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 1);  /* d spans pieces 0-2 */
  ck_assert(bitfield_get(&have, 3));
  bitfield_free(&have);
  ck_assert_int_eq(read_sync(&f, 1, 0, 10, buf), SHOAL_EPATH);
  struct stat st;
  ck_assert_int_eq(stat(target, &st), 0);
  ck_assert_int_eq(st.st_size, 40000);
  ck_assert_int_eq(dir_entries(elsewhere), 1);

  /* the torrent's folder itself is a link */
  fx_close_storage(&f);
  rm_tree(f.root);
  ck_assert(!path_exists(f.root));
  ck_assert_int_eq(unlink(target), 0);
  ck_assert_int_eq(symlink(elsewhere, f.root), 0);
  ck_assert_int_eq(storage_open(&f.s, &f.loop, &f.m, f.dir), 0);
  for (uint32_t i = 0; i < f.m.num_pieces; i++)
    ck_assert_int_eq(write_piece_sync(&f, i, f.data + (uint64_t)i * PL), SHOAL_EPATH);
  ck_assert_int_eq(dir_entries(elsewhere), 0);
  struct res r = { 0, 0 };
  ck_assert_int_eq(storage_finish(f.s, res_cb, &r), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.status, SHOAL_EPATH);
  ck_assert_int_eq(dir_entries(elsewhere), 0);

  rm_tree(elsewhere);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_single_symlink_and_fifo)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  char elsewhere[] = "/tmp/shoal-elsewhere-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(elsewhere));
  char target[128];
  snprintf(target, sizeof(target), "%s/t", elsewhere);
  ck_assert_int_eq(symlink(target, f.root), 0);  /* dangling link */
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), SHOAL_EPATH);
  ck_assert(!path_exists(target));
  ck_assert_int_eq(unlink(f.root), 0);

  /* a FIFO at the file's place must not hang anything */
  ck_assert_int_eq(mkfifo(f.root, 0644), 0);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 0);
  bitfield_free(&have);
  uint8_t buf[16];
  ck_assert_int_eq(read_sync(&f, 0, 0, 16, buf), SHOAL_EPATH);
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), SHOAL_EPATH);
  ck_assert_int_eq(unlink(f.root), 0);

  /* a folder at the file's place */
  ck_assert_int_eq(mkdir(f.root, 0755), 0);
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), SHOAL_EPATH);
  ck_assert_int_eq(read_sync(&f, 0, 0, 16, buf), SHOAL_EPATH);
  ck_assert_int_eq(rmdir(f.root), 0);
  rm_tree(elsewhere);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_missing_fast)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 0);
  bitfield_free(&have);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_read, 0);
  ck_assert_uint_eq(st.files_opened, 0);
  ck_assert(!path_exists(f.root));
  uint8_t buf[16];
  ck_assert_int_eq(read_sync(&f, 0, 0, 16, buf), UV_ENOENT);  /* a read creates nothing */
  ck_assert(!path_exists(f.root));

  /* a file that holds only the first three pieces: only those are read */
  for (uint32_t i = 0; i < 3; i++)
    ck_assert_int_eq(write_piece_sync(&f, i, f.data + (uint64_t)i * PL), 0);
  fx_reopen(&f);
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 3);
  ck_assert(bitfield_get(&have, 0) && bitfield_get(&have, 1) && bitfield_get(&have, 2));
  bitfield_free(&have);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_read, 3 * PL);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_missing_file_multi)
{
  struct fx f;
  fx_setup(&f, "multi", 1, multi_spec, MULTI_N, PL);
  write_all(&f);
  char path[256];
  ck_assert_int_eq(storage_file_path(f.s, 1, path, sizeof(path)), 0);  /* b: piece 0 only */
  ck_assert_int_eq(unlink(path), 0);
  fx_reopen(&f);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 3);
  ck_assert(!bitfield_get(&have, 0));
  bitfield_free(&have);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_read, f.m.total_length - PL);  /* piece 0 not read at all */
  fx_teardown(&f);
}
END_TEST

/* 49155 bytes: a | pad | b | pad | c; piece 2 is b's tail and a pad, piece 3 is c. */
static const struct spec pad_spec[] = {
  { "a", 10000, 0 },
  { ".pad/6384", 6384, MANIFEST_ATTR_PAD },
  { "b", 20000, 0 },
  { ".pad/12768", 12768, MANIFEST_ATTR_PAD },
  { "c", 3, 0 },
};

START_TEST(test_pad_files)
{
  struct fx f;
  fx_setup(&f, "padded", 1, pad_spec, 5, PL);
  ck_assert_uint_eq(f.m.num_pieces, 4);
  write_all(&f);
  char p[256];
  snprintf(p, sizeof(p), "%s/.pad", f.root);
  ck_assert(!path_exists(p));
  assert_file(&f, 0);
  assert_file(&f, 2);
  assert_file(&f, 4);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_written, 30003);

  struct res r = { 0, 0 };
  ck_assert_int_eq(storage_finish(f.s, res_cb, &r), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r.status, 0);
  ck_assert(!path_exists(p));

  fx_reopen(&f);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 4);
  bitfield_free(&have);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.bytes_read, 30003);

  uint8_t buf[PL];
  memset(buf, 0xee, sizeof(buf));
  ck_assert_int_eq(read_sync(&f, 0, 9990, 6394, buf), 0);  /* a's tail, then pad */
  ck_assert(memcmp(buf, f.data + 9990, 6394) == 0);
  for (uint32_t i = 10; i < 6394; i++)
    ck_assert_uint_eq(buf[i], 0);
  ck_assert_int_eq(read_sync(&f, 2, 0, PL, buf), 0);
  ck_assert(memcmp(buf, f.data + 2 * PL, PL) == 0);
  ck_assert_int_eq(read_sync(&f, 3, 0, 3, buf), 0);
  ck_assert(memcmp(buf, f.data + 3 * PL, 3) == 0);

  /* a wrong byte in b is found even next to a pad */
  snprintf(p, sizeof(p), "%s/b", f.root);
  flip_byte(p, 19999);
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 3);
  ck_assert(!bitfield_get(&have, 2));
  bitfield_free(&have);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_existing_data_kept)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  /* a longer file already holding the right bytes and a tail */
  FILE *fp = fopen(f.root, "wb");
  ck_assert_int_eq(fwrite(f.data, 1, 100003, fp), 100003);
  ck_assert_int_eq(fwrite("TAILTAIL", 1, 8, fp), 8);
  fclose(fp);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 7);
  bitfield_free(&have);
  ck_assert_int_eq(write_piece_sync(&f, 6, f.data + 6 * PL), 0);
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), 0);
  struct stat st;
  ck_assert_int_eq(stat(f.root, &st), 0);
  ck_assert_int_eq(st.st_size, 100011);
  int fd = open(f.root, O_RDONLY);
  char tail[8];
  ck_assert_int_eq(pread(fd, tail, 8, 100003), 8);
  ck_assert(memcmp(tail, "TAILTAIL", 8) == 0);
  close(fd);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_fd_cache)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  write_all(&f);
  fx_reopen(&f);
  uint8_t buf[PL];
  for (uint32_t i = 0; i < 6; i++) {
    ck_assert_int_eq(read_sync(&f, i, 16, 1000, buf), 0);
    ck_assert(memcmp(buf, f.data + (uint64_t)i * PL + 16, 1000) == 0);
  }
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, 1);
  /* a read-only descriptor is reopened read-write for a write ... */
  ck_assert_int_eq(write_piece_sync(&f, 1, f.data + PL), 0);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, 2);
  /* ... which then serves reads too */
  ck_assert_int_eq(read_sync(&f, 1, 0, 10, buf), 0);
  ck_assert_int_eq(write_piece_sync(&f, 2, f.data + 2 * PL), 0);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, 2);
  fx_teardown(&f);
}
END_TEST

/* Releasing idle descriptors: the open file is closed, and the next read
 * opens it again and still gets the right bytes. */
START_TEST(test_release_fds)
{
  struct fx f;
  fx_setup(&f, "single.bin", 0, single_spec, 1, PL);
  write_all(&f);
  fx_reopen(&f);
  uint8_t buf[PL];
  ck_assert_int_eq(read_sync(&f, 0, 0, 100, buf), 0);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, 1);
  ck_assert_int_eq(storage_release_fds(f.s), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(read_sync(&f, 4, 8, 1000, buf), 0);
  ck_assert(memcmp(buf, f.data + 4 * PL + 8, 1000) == 0);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, 2);
  /* without a release the descriptor stays cached */
  ck_assert_int_eq(read_sync(&f, 5, 0, 10, buf), 0);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, 2);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_many_files)
{
  /* more files than the fd cache holds, 700 bytes each, 4 KiB pieces */
  enum { NF = 45 };
  struct spec sp[NF];
  char names[NF][24];
  for (int i = 0; i < NF; i++) {
    snprintf(names[i], sizeof(names[i]), "d%d/f%02d", i % 3, i);
    sp[i].path = names[i];
    sp[i].length = 700 + (uint64_t)i;
    sp[i].attr = 0;
  }
  struct fx f;
  fx_setup(&f, "many", 1, sp, NF, 4096);
  write_all(&f);
  for (uint32_t i = 0; i < NF; i++)
    assert_file(&f, i);
  fx_reopen(&f);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, f.m.num_pieces);
  bitfield_free(&have);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_ge(st.files_opened, NF);
  /* the most recently used file is still open */
  uint8_t buf[64];
  uint32_t lastp = f.m.num_pieces - 1;
  ck_assert_int_eq(read_sync(&f, lastp, piece_size(&f, lastp) - 10, 10, buf), 0);
  ck_assert(memcmp(buf, f.data + f.m.total_length - 10, 10) == 0);
  storage_get_stats(f.s, &st);
  uint64_t opened = st.files_opened;
  ck_assert_int_eq(read_sync(&f, lastp, piece_size(&f, lastp) - 5, 5, buf), 0);
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.files_opened, opened);
  fx_teardown(&f);
}
END_TEST

START_TEST(test_check_bounded)
{
  setenv("UV_THREADPOOL_SIZE", "3", 1);
  static const struct spec big[] = { { "big.bin", 64 * 4096 + 17, 0 } };
  struct fx f;
  fx_setup(&f, "big.bin", 0, big, 1, 4096);
  ck_assert_uint_eq(f.m.num_pieces, 65);
  write_all(&f);
  struct bitfield have;
  check_sync(&f, &have);
  ck_assert_uint_eq(have.count, 65);
  ck_assert_uint_ge(progress_calls, 2);
  struct storage_stats st;
  storage_get_stats(f.s, &st);
  ck_assert_uint_eq(st.check_peak_inflight, 6);  /* 2 x threadpool size */

  /* one check at a time; the bitfield must fit */
  struct res r1 = { 0, 0 }, r2 = { 0, 0 };
  ck_assert_int_eq(storage_check(f.s, &have, NULL, res_cb, &r1), 0);
  ck_assert_int_eq(storage_check(f.s, &have, NULL, res_cb, &r2), UV_EBUSY);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(r1.calls, 1);
  ck_assert_int_eq(r1.status, 0);
  ck_assert_int_eq(r2.calls, 0);
  ck_assert_uint_eq(have.count, 65);
  bitfield_free(&have);
  ck_assert_int_eq(bitfield_init(&have, 64), 0);
  ck_assert_int_eq(storage_check(f.s, &have, NULL, res_cb, &r2), UV_EINVAL);
  bitfield_free(&have);
  fx_teardown(&f);
}
END_TEST

static int cancel_seen;
static int cancel_other;
static int cancel_close_after;   /* callbacks seen when the close callback ran */
static void cancel_cb(void *ctx, int status)
{
  (void)ctx;
  if (status == UV_ECANCELED)
    cancel_seen++;
  else
    cancel_other++;
}
static void cancel_close_cb(void *ctx)
{
  (void)ctx;
  close_calls++;
  cancel_close_after = cancel_seen + cancel_other;
}

START_TEST(test_close_inflight)
{
  static const struct spec big[] = { { "big.bin", 200 * 4096, 0 } };
  struct fx f;
  fx_setup(&f, "big.bin", 0, big, 1, 4096);
  write_all(&f);
  fx_reopen(&f);
  cancel_seen = cancel_other = 0;
  close_calls = 0;
  uint8_t *rbuf = malloc(200 * 16);
  for (uint32_t i = 0; i < 200; i++)
    ck_assert_int_eq(storage_write_piece(f.s, i, f.data + (uint64_t)i * 4096, cancel_cb, NULL), 0);
  for (uint32_t i = 0; i < 200; i++)
    ck_assert_int_eq(storage_read(f.s, i, 0, 16, rbuf + i * 16, cancel_cb, NULL), 0);
  struct bitfield have;
  ck_assert_int_eq(bitfield_init(&have, 200), 0);
  progress_calls = 0;
  ck_assert_int_eq(storage_check(f.s, &have, progress_cb, cancel_cb, NULL), 0);
  storage_close(f.s, cancel_close_cb, NULL);
  /* closing: nothing new is accepted */
  ck_assert_int_eq(storage_read(f.s, 0, 0, 16, rbuf, cancel_cb, NULL), UV_ECANCELED);
  ck_assert_int_eq(storage_write_piece(f.s, 0, f.data, cancel_cb, NULL), UV_ECANCELED);
  ck_assert_int_eq(storage_check(f.s, &have, NULL, cancel_cb, NULL), UV_ECANCELED);
  ck_assert_int_eq(storage_finish(f.s, cancel_cb, NULL), UV_ECANCELED);
  f.s = NULL;
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(close_calls, 1);
  ck_assert_int_eq(cancel_seen, 401);
  ck_assert_int_eq(cancel_other, 0);
  ck_assert_int_eq(cancel_close_after, 401);
  ck_assert_uint_eq(progress_calls, 0);
  bitfield_free(&have);
  free(rbuf);
  fx_teardown(&f);
}
END_TEST

static int close_from_progress_done;
static void close_progress_cb(void *ctx, uint32_t done)
{
  (void)done;
  struct fx *f = ctx;
  progress_calls++;
  if (progress_calls == 1)
    storage_close(f->s, on_close, NULL);
}
static void close_done_cb(void *ctx, int status)
{
  (void)ctx;
  close_from_progress_done++;
  ck_assert_int_eq(status, UV_ECANCELED);
  ck_assert_int_eq(close_calls, 0);
}

static int close_from_write_first;
static void close_write_cb(void *ctx, int status)
{
  struct fx *f = ctx;
  close_from_write_first++;
  if (close_from_write_first == 1) {
    ck_assert_int_eq(status, 0);  /* nothing closing yet: a real result */
    return;
  }
  /* the other writes may have completed before this one: they then saw 0 */
  ck_assert(status == 0 || status == UV_ECANCELED);
  storage_close(f->s, on_close, NULL);
  storage_close(f->s, on_close, NULL);  /* a second call is ignored */
}

START_TEST(test_close_from_callback)
{
  static const struct spec big[] = { { "big.bin", 100 * 4096, 0 } };
  struct fx f;
  fx_setup(&f, "big.bin", 0, big, 1, 4096);
  write_all(&f);
  struct bitfield have;
  ck_assert_int_eq(bitfield_init(&have, 100), 0);
  progress_calls = 0;
  close_calls = 0;
  close_from_progress_done = 0;
  ck_assert_int_eq(storage_check(f.s, &have, close_progress_cb, close_done_cb, &f), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_uint_eq(progress_calls, 1);
  ck_assert_int_eq(close_from_progress_done, 1);
  ck_assert_int_eq(close_calls, 1);
  ck_assert_uint_lt(have.count, 100);
  f.s = NULL;
  bitfield_free(&have);

  /* closing with nothing in flight */
  ck_assert_int_eq(storage_open(&f.s, &f.loop, &f.m, f.dir), 0);
  fx_close_storage(&f);

  /* closing from a write callback while other writes are queued */
  ck_assert_int_eq(storage_open(&f.s, &f.loop, &f.m, f.dir), 0);
  close_calls = 0;
  cancel_seen = cancel_other = 0;
  close_from_write_first = 0;
  ck_assert_int_eq(storage_write_piece(f.s, 0, f.data, close_write_cb, &f), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(close_from_write_first, 1);
  for (uint32_t i = 1; i < 100; i++)
    ck_assert_int_eq(storage_write_piece(f.s, i, f.data + (uint64_t)i * 4096, cancel_cb, NULL), 0);
  ck_assert_int_eq(storage_write_piece(f.s, 0, f.data, close_write_cb, &f), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(close_from_write_first, 2);
  ck_assert_int_eq(close_calls, 1);
  ck_assert_int_eq(cancel_other + cancel_seen, 99);
  f.s = NULL;
  fx_teardown(&f);
}
END_TEST

START_TEST(test_creates_dir_and_exec)
{
  static const struct spec sp[] = {
    { "bin/tool", 3000, MANIFEST_ATTR_EXEC },
    { "doc.txt", 100, 0 },
  };
  struct fx f;
  fx_setup(&f, "pkg", 1, sp, 2, PL);
  /* the download folder itself does not exist yet */
  char dl[128];
  snprintf(dl, sizeof(dl), "%s/downloads", f.dir);
  fx_close_storage(&f);
  ck_assert_int_eq(storage_open(&f.s, &f.loop, &f.m, dl), 0);
  mode_t old = umask(022);
  ck_assert_int_eq(write_piece_sync(&f, 0, f.data), 0);
  umask(old);
  char p[256];
  ck_assert_int_eq(storage_file_path(f.s, 0, p, sizeof(p)), 0);
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0755);
  ck_assert_int_eq(storage_file_path(f.s, 1, p, sizeof(p)), 0);
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0644);
  snprintf(p, sizeof(p), "%s/pkg/bin", dl);
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 0777, 0755);
  fx_teardown(&f);
}
END_TEST

Suite *storage_suite(void)
{
  Suite *s = suite_create("storage");
  TCase *tc = tcase_create("storage");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_open_rejects);
  tcase_add_test(tc, test_single_roundtrip);
  tcase_add_test(tc, test_multi_layout);
  tcase_add_test(tc, test_corrupt_byte);
  tcase_add_test(tc, test_wrong_data);
  tcase_add_test(tc, test_read_ranges);
  tcase_add_test(tc, test_symlinks);
  tcase_add_test(tc, test_single_symlink_and_fifo);
  tcase_add_test(tc, test_missing_fast);
  tcase_add_test(tc, test_missing_file_multi);
  tcase_add_test(tc, test_pad_files);
  tcase_add_test(tc, test_existing_data_kept);
  tcase_add_test(tc, test_fd_cache);
  tcase_add_test(tc, test_release_fds);
  tcase_add_test(tc, test_many_files);
  tcase_add_test(tc, test_check_bounded);
  tcase_add_test(tc, test_close_inflight);
  tcase_add_test(tc, test_close_from_callback);
  tcase_add_test(tc, test_creates_dir_and_exec);
  suite_add_tcase(s, tc);
  return s;
}
