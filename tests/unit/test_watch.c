/* test_watch.c -- the watch folder on a real libuv loop in a temporary folder: offers, verdicts, renames, stop. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "peer/watch.h"

#define MAX_CALLS 80

struct call {
  char path[512];
  size_t len;
  uint8_t head[64];   /* the first bytes */
  uint64_t at_ms;     /* since the fixture started */
  char parsed[16];    /* what the parser made of it ("" without a parser) */
};

struct fix {
  char root[64];      /* mkdtemp folder */
  char dir[128];      /* the watched folder (root itself or a folder in it) */
  uv_loop_t loop;
  uv_timer_t tick;
  uint64_t t0;        /* uv_hrtime at start, ns */
  struct watch *w;
  int ncalls;
  struct call calls[MAX_CALLS];
  enum watch_verdict verdicts[MAX_CALLS];  /* the answer to the i-th call (default ADDED) */
  bool stop_in_cb;    /* the first call stops the watch */
  const char *invalid_name;  /* a file of this name gets WATCH_INVALID whatever verdicts[] says */
  int stopped;
  int log_fd;         /* stderr saved while it goes to a file, or -1 */
  char log_path[160];
};

static uint64_t elapsed_ms(const struct fix *f)
{
  return (uv_hrtime() - f->t0) / 1000000u;
}

static void on_stopped(void *ctx)
{
  struct fix *f = ctx;
  f->stopped++;
}

static enum watch_verdict on_file(void *ctx, const char *path, const uint8_t *data, size_t len, void *parsed)
{
  struct fix *f = ctx;
  ck_assert_int_eq(f->stopped, 0);
  ck_assert_int_lt(f->ncalls, MAX_CALLS);
  ck_assert_ptr_nonnull(data);
  struct call *c = &f->calls[f->ncalls];
  snprintf(c->path, sizeof c->path, "%s", path);
  c->len = len;
  memcpy(c->head, data, len < sizeof c->head ? len : sizeof c->head);
  c->at_ms = elapsed_ms(f);
  c->parsed[0] = 0;
  if (parsed) {
    snprintf(c->parsed, sizeof c->parsed, "%s", (const char *)parsed);
    free(parsed);                      /* the callback owns it */
  }
  enum watch_verdict v = f->verdicts[f->ncalls];
  const char *base = strrchr(path, '/');
  if (f->invalid_name && base && strcmp(base + 1, f->invalid_name) == 0)
    v = WATCH_INVALID;
  f->ncalls++;
  if (f->stop_in_cb && f->ncalls == 1)
    watch_stop(f->w, on_stopped, f);
  return v;
}

static void on_tick(uv_timer_t *t) { (void)t; }

/* A fresh temporary folder and loop; sub != NULL watches root/sub instead
 * of root (not created here). */
static void fix_init(struct fix *f, const char *sub)
{
  memset(f, 0, sizeof *f);
  f->log_fd = -1;
  snprintf(f->root, sizeof f->root, "/tmp/shoal-watch.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(f->root));
  if (sub)
    snprintf(f->dir, sizeof f->dir, "%s/%s", f->root, sub);
  else
    snprintf(f->dir, sizeof f->dir, "%s", f->root);
  ck_assert_int_eq(uv_loop_init(&f->loop), 0);
  ck_assert_int_eq(uv_timer_init(&f->loop, &f->tick), 0);
  for (int i = 0; i < MAX_CALLS; i++)
    f->verdicts[i] = WATCH_ADDED;
}

/* Sends stderr (the log) to a file until fix_log_text. */
static void fix_capture_log(struct fix *f)
{
  snprintf(f->log_path, sizeof f->log_path, "%s.log", f->root);
  int fd = open(f->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_int_ge(fd, 0);
  fflush(stderr);
  f->log_fd = dup(2);
  ck_assert_int_ge(f->log_fd, 0);
  ck_assert_int_eq(dup2(fd, 2), 2);
  close(fd);
}

/* Restores stderr and returns what was logged (caller frees). */
static char *fix_log_text(struct fix *f)
{
  fflush(stderr);
  ck_assert_int_eq(dup2(f->log_fd, 2), 2);
  close(f->log_fd);
  f->log_fd = -1;
  FILE *fp = fopen(f->log_path, "r");
  ck_assert_ptr_nonnull(fp);
  char *text = calloc(1, 65536);
  size_t n = fread(text, 1, 65535, fp);
  text[n] = 0;
  fclose(fp);
  unlink(f->log_path);
  return text;
}

static void fix_start(struct fix *f)
{
  uv_update_time(&f->loop);
  f->t0 = uv_hrtime();
  ck_assert_int_eq(watch_start(&f->loop, f->dir, on_file, f, &f->w), 0);
}

/* Runs the loop until cond(f) holds or ms passed; returns cond (true without one). */
static bool run_until(struct fix *f, uint64_t ms, bool (*cond)(struct fix *))
{
  uv_update_time(&f->loop);
  uint64_t end = uv_now(&f->loop) + ms;
  uv_timer_start(&f->tick, on_tick, 10, 10);
  for (;;) {
    if (cond && cond(f))
      break;
    uv_update_time(&f->loop);
    if (uv_now(&f->loop) >= end)
      break;
    uv_run(&f->loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&f->tick);
  return cond ? cond(f) : true;
}

static bool is_stopped(struct fix *f) { return f->stopped > 0; }

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st; (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

/* Stops the watch (if still running), checks that it ends cleanly, removes the folder. */
static void fix_done(struct fix *f)
{
  if (f->w && f->stopped == 0 && !f->stop_in_cb)
    watch_stop(f->w, on_stopped, f);
  ck_assert(run_until(f, 5000, is_stopped));
  ck_assert_int_eq(f->stopped, 1);
  uv_close((uv_handle_t *)&f->tick, NULL);
  ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&f->loop), 0);   /* every handle closed, no work left */
  ck_assert_int_eq(f->stopped, 1);
  if (f->log_fd >= 0)
    free(fix_log_text(f));
  nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(const struct fix *f, const char *name, char *out, size_t len)
{
  snprintf(out, len, "%s/%s", f->dir, name);
}

static void write_at(const char *path, const void *data, size_t len, int flags)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
  ck_assert_int_eq(close(fd), 0);
}

static void put(const struct fix *f, const char *name, const char *text)
{
  char p[512];
  path_in(f, name, p, sizeof p);
  write_at(p, text, strlen(text), O_TRUNC);
}

static void append(const struct fix *f, const char *name, const char *text)
{
  char p[512];
  path_in(f, name, p, sizeof p);
  write_at(p, text, strlen(text), O_APPEND);
}

/* n files f00.torrent, f01.torrent, ...; each holds text, or its own name when text is NULL. */
static void put_numbered(const struct fix *f, int n, const char *text)
{
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%02d.torrent", i);
    put(f, name, text ? text : name);
  }
}

/* dir/name of exactly size bytes that start with head. */
static void put_sized(const struct fix *f, const char *name, const char *head, off_t size)
{
  char p[512];
  path_in(f, name, p, sizeof p);
  int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ck_assert_int_ge(fd, 0);
  size_t hl = strlen(head);
  ck_assert_int_eq(write(fd, head, hl), (ssize_t)hl);
  ck_assert_int_eq(ftruncate(fd, size), 0);
  close(fd);
}

static bool exists(const struct fix *f, const char *name)
{
  char p[512];
  struct stat st;
  path_in(f, name, p, sizeof p);
  return lstat(p, &st) == 0;
}

/* The whole content of dir/name (at most 255 bytes) as a string. */
static void content(const struct fix *f, const char *name, char *out, size_t len)
{
  char p[512];
  path_in(f, name, p, sizeof p);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  ck_assert_msg(fd >= 0, "cannot open %s", p);
  ssize_t n = read(fd, out, len - 1);
  ck_assert_int_ge(n, 0);
  out[n] = 0;
  close(fd);
}

static bool called_with(const struct fix *f, int i, const char *name, const char *text)
{
  char p[512];
  path_in(f, name, p, sizeof p);
  size_t tl = strlen(text);
  return strcmp(f->calls[i].path, p) == 0 && f->calls[i].len == tl &&
         memcmp(f->calls[i].head, text, tl < 64 ? tl : 64) == 0;
}

/* ---- conditions ---- */

static bool two_added(struct fix *f)
{
  return f->ncalls >= 2 && exists(f, "a.torrent.added") && exists(f, "B.Torrent.added");
}
static bool one_invalid(struct fix *f) { return f->ncalls >= 1 && exists(f, "a.torrent.invalid"); }
static bool two_calls_added(struct fix *f) { return f->ncalls >= 2 && exists(f, "a.torrent.added"); }
static bool one_call(struct fix *f) { return f->ncalls >= 1; }
static bool real_added(struct fix *f) { return f->ncalls >= 1 && exists(f, "real.torrent.added"); }
static bool g_added(struct fix *f) { return f->ncalls >= 1 && exists(f, "g.torrent.added"); }
static bool x_renamed(struct fix *f)
{
  return f->ncalls >= 2 && exists(f, "x.torrent.added.1") && exists(f, "y.torrent.invalid.2");
}
static bool big_invalid(struct fix *f) { return exists(f, "big.torrent.invalid") && exists(f, "max.torrent.added"); }
static bool seventy(struct fix *f) { return f->ncalls >= 70; }
static bool late_added(struct fix *f) { return f->ncalls >= 1 && exists(f, "late.torrent.added"); }

/* ---- tests ---- */

START_TEST(test_start_args)
{
  uv_loop_t loop;
  struct watch *w = NULL;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  ck_assert_int_eq(watch_start(&loop, "relative/dir", on_file, NULL, &w), UV_EINVAL);
  ck_assert_int_eq(watch_start(&loop, "", on_file, NULL, &w), UV_EINVAL);
  ck_assert_int_eq(watch_start(&loop, NULL, on_file, NULL, &w), UV_EINVAL);
  ck_assert_int_eq(watch_start(&loop, "/tmp", NULL, NULL, &w), UV_EINVAL);
  ck_assert_int_eq(watch_start(NULL, "/tmp", on_file, NULL, &w), UV_EINVAL);
  ck_assert_int_eq(watch_start(&loop, "/tmp", on_file, NULL, NULL), UV_EINVAL);
  char *longdir = malloc(5000);
  longdir[0] = '/';
  memset(longdir + 1, 'd', 4998);
  longdir[4999] = 0;
  ck_assert_int_eq(watch_start(&loop, longdir, on_file, NULL, &w), UV_EINVAL);
  free(longdir);
  ck_assert_ptr_null(w);
  ck_assert_int_eq(uv_loop_close(&loop), 0);   /* nothing was left behind */
}
END_TEST

/* A dropped file is offered once, after it settled, with its bytes, then
 * renamed .added; the suffix is matched without regard to case. */
START_TEST(test_added)
{
  struct fix f;
  fix_init(&f, NULL);
  put(&f, "a.torrent", "d8:announce3:urle");
  put(&f, "B.Torrent", "second file");
  fix_start(&f);
  ck_assert(run_until(&f, 4000, two_added));
  ck_assert_int_eq(f.ncalls, 2);
  int ia = strstr(f.calls[0].path, "a.torrent") ? 0 : 1;
  ck_assert(called_with(&f, ia, "a.torrent", "d8:announce3:urle"));
  ck_assert(called_with(&f, 1 - ia, "B.Torrent", "second file"));
  /* Not before it kept its size and mtime for WATCH_SETTLE_MS. */
  ck_assert_uint_ge(f.calls[0].at_ms, WATCH_SETTLE_MS - 5);
  ck_assert(!exists(&f, "a.torrent"));
  ck_assert(!exists(&f, "B.Torrent"));
  char text[256];
  content(&f, "a.torrent.added", text, sizeof text);
  ck_assert_str_eq(text, "d8:announce3:urle");
  /* Offered once: nothing more at later scans. */
  run_until(&f, 200, NULL);
  ck_assert_int_eq(f.ncalls, 2);
  fix_done(&f);
}
END_TEST

START_TEST(test_invalid)
{
  struct fix f;
  fix_init(&f, NULL);
  f.verdicts[0] = WATCH_INVALID;
  put(&f, "a.torrent", "not bencode");
  fix_start(&f);
  ck_assert(run_until(&f, 4000, one_invalid));
  ck_assert_int_eq(f.ncalls, 1);
  ck_assert(called_with(&f, 0, "a.torrent", "not bencode"));
  ck_assert(!exists(&f, "a.torrent"));
  ck_assert(!exists(&f, "a.torrent.added"));
  run_until(&f, 200, NULL);
  ck_assert_int_eq(f.ncalls, 1);
  fix_done(&f);
}
END_TEST

/* WATCH_RETRY leaves the file; it is offered again at a later scan, not at once. */
START_TEST(test_retry)
{
  struct fix f;
  fix_init(&f, NULL);
  f.verdicts[0] = WATCH_RETRY;
  put(&f, "a.torrent", "busy now");
  fix_start(&f);
  ck_assert(run_until(&f, 3000, one_call));
  ck_assert_int_eq(f.ncalls, 1);
  run_until(&f, 100, NULL);
  ck_assert(exists(&f, "a.torrent"));
  ck_assert(!exists(&f, "a.torrent.added"));
  ck_assert(!exists(&f, "a.torrent.invalid"));
  ck_assert(run_until(&f, 5000, two_calls_added));
  ck_assert_int_eq(f.ncalls, 2);
  ck_assert(called_with(&f, 1, "a.torrent", "busy now"));
  ck_assert_uint_ge(f.calls[1].at_ms - f.calls[0].at_ms, 1000);
  ck_assert(!exists(&f, "a.torrent"));
  fix_done(&f);
}
END_TEST

/* Only regular files named *.torrent: not other names, links, folders,
 * FIFOs, nor files already marked .added / .invalid. */
START_TEST(test_ignored)
{
  struct fix f;
  fix_init(&f, NULL);
  char outside[128], p[512];
  snprintf(outside, sizeof outside, "%s.outside.torrent", f.root);
  write_at(outside, "outside", 7, O_TRUNC);
  put(&f, "notes.txt", "text");
  put(&f, "a.torrent.part", "partial");
  put(&f, "x.torrentx", "x");
  put(&f, ".torrent", "no name before the suffix");
  put(&f, "done.torrent.added", "old");
  put(&f, "bad.torrent.invalid", "old");
  put(&f, "real.torrent", "real");
  path_in(&f, "link.torrent", p, sizeof p);
  ck_assert_int_eq(symlink(outside, p), 0);
  path_in(&f, "dangling.torrent", p, sizeof p);
  ck_assert_int_eq(symlink("/nonexistent/shoal", p), 0);
  path_in(&f, "dir.torrent", p, sizeof p);
  ck_assert_int_eq(mkdir(p, 0755), 0);
  path_in(&f, "fifo.torrent", p, sizeof p);
  ck_assert_int_eq(mkfifo(p, 0644), 0);
  fix_start(&f);
  ck_assert(run_until(&f, 4000, real_added));
  run_until(&f, 200, NULL);
  ck_assert_int_eq(f.ncalls, 1);
  ck_assert(called_with(&f, 0, "real.torrent", "real"));
  static const char *const kept[] = { "notes.txt", "a.torrent.part", "x.torrentx", ".torrent", "done.torrent.added",
                                      "bad.torrent.invalid", "link.torrent", "dangling.torrent", "dir.torrent",
                                      "fifo.torrent" };
  for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
    ck_assert_msg(exists(&f, kept[i]), "%s was touched", kept[i]);
  ck_assert(!exists(&f, "done.torrent.added.added"));
  ck_assert(!exists(&f, "link.torrent.added"));
  ck_assert(!exists(&f, "link.torrent.invalid"));
  struct stat st;
  path_in(&f, "link.torrent", p, sizeof p);
  ck_assert_int_eq(lstat(p, &st), 0);
  ck_assert(S_ISLNK(st.st_mode));
  fix_done(&f);
  unlink(outside);
}
END_TEST

/* A file still being written is not taken until it stops changing. */
START_TEST(test_growing)
{
  struct fix f;
  fix_init(&f, NULL);
  put(&f, "g.torrent", "0123456789");
  fix_start(&f);
  size_t size = 10;
  for (int i = 0; i < 6; i++) {   /* 1.2 s of growth, a write every 200 ms */
    run_until(&f, 200, NULL);
    ck_assert_int_eq(f.ncalls, 0);
    append(&f, "g.torrent", "0123456789");
    size += 10;
  }
  uint64_t last_write = elapsed_ms(&f);
  ck_assert(run_until(&f, 4000, g_added));
  ck_assert_int_eq(f.ncalls, 1);
  ck_assert_uint_eq(f.calls[0].len, size);
  ck_assert_uint_ge(f.calls[0].at_ms, last_write + WATCH_SETTLE_MS - 5);
  fix_done(&f);
}
END_TEST

/* The new name never replaces an existing file: .1, .2, ... */
START_TEST(test_rename_taken)
{
  struct fix f;
  fix_init(&f, NULL);
  put(&f, "x.torrent.added", "old x");
  put(&f, "x.torrent", "new x");
  put(&f, "y.torrent.invalid", "old y");
  put(&f, "y.torrent.invalid.1", "old y1");
  put(&f, "y.torrent", "new y");
  f.invalid_name = "y.torrent";
  fix_start(&f);
  ck_assert(run_until(&f, 4000, x_renamed));
  ck_assert_int_eq(f.ncalls, 2);
  char text[256];
  content(&f, "x.torrent.added", text, sizeof text);
  ck_assert_str_eq(text, "old x");
  content(&f, "x.torrent.added.1", text, sizeof text);
  ck_assert_str_eq(text, "new x");
  content(&f, "y.torrent.invalid", text, sizeof text);
  ck_assert_str_eq(text, "old y");
  content(&f, "y.torrent.invalid.1", text, sizeof text);
  ck_assert_str_eq(text, "old y1");
  content(&f, "y.torrent.invalid.2", text, sizeof text);
  ck_assert_str_eq(text, "new y");
  ck_assert(!exists(&f, "x.torrent"));
  ck_assert(!exists(&f, "y.torrent"));
  ck_assert(!exists(&f, "x.torrent.added.2"));
  fix_done(&f);
}
END_TEST

/* A parser that runs on the threadpool: takes files starting with 'd',
 * refuses the others with a reason. */
static void *parse_dict(const uint8_t *data, size_t len, char *err, size_t errlen)
{
  if (len == 0 || data[0] != 'd') {
    snprintf(err, errlen, "does not start with a dictionary");
    return NULL;
  }
  char *out = malloc(32);
  if (out)
    snprintf(out, 32, "dict%zu", len);
  return out;
}

static bool parsed_both(struct fix *f)
{
  return f->ncalls >= 1 && exists(f, "good.torrent.added") && exists(f, "bad.torrent.invalid");
}

START_TEST(test_parser)
{
  struct fix f;
  fix_init(&f, NULL);
  put(&f, "good.torrent", "d1:ai1ee");
  put(&f, "bad.torrent", "garbage");
  fix_capture_log(&f);
  fix_start(&f);
  watch_set_parser(f.w, parse_dict, free);   /* before the loop runs again */
  bool ok = run_until(&f, 5000, parsed_both);
  char *log = fix_log_text(&f);
  ck_assert_msg(ok, "log: %s", log);
  ck_assert_int_eq(f.ncalls, 1);                  /* the refused file never reaches the callback */
  ck_assert(called_with(&f, 0, "good.torrent", "d1:ai1ee"));
  ck_assert_str_eq(f.calls[0].parsed, "dict8");
  ck_assert_msg(strstr(log, "bad.torrent") != NULL && strstr(log, "does not start with a dictionary") != NULL,
                "log: %s", log);
  free(log);
  fix_done(&f);
}
END_TEST

START_TEST(test_too_large)
{
  struct fix f;
  fix_init(&f, NULL);
  put_sized(&f, "big.torrent", "", (off_t)WATCH_MAX_FILE + 1);
  put_sized(&f, "max.torrent", "d4:", (off_t)WATCH_MAX_FILE);   /* exactly the limit is fine */
  fix_capture_log(&f);
  fix_start(&f);
  bool ok = run_until(&f, 5000, big_invalid);
  char *log = fix_log_text(&f);
  ck_assert_msg(ok, "log: %s", log);
  ck_assert_int_eq(f.ncalls, 1);
  ck_assert(strstr(f.calls[0].path, "/max.torrent") != NULL);
  ck_assert_uint_eq(f.calls[0].len, WATCH_MAX_FILE);
  ck_assert(memcmp(f.calls[0].head, "d4:\0", 4) == 0);
  ck_assert(!exists(&f, "big.torrent"));
  ck_assert_msg(strstr(log, "big.torrent") != NULL && strstr(log, "too large") != NULL, "log: %s", log);
  ck_assert(strstr(log, "max.torrent") == NULL);
  free(log);
  fix_done(&f);
}
END_TEST

/* At most WATCH_MAX_PER_SCAN files are taken by one scan; the rest come
 * with a later one. */
START_TEST(test_per_scan_cap)
{
  struct fix f;
  fix_init(&f, NULL);
  put_numbered(&f, 70, NULL);
  fix_start(&f);
  ck_assert(run_until(&f, 5000, seventy));
  run_until(&f, 100, NULL);
  ck_assert_int_eq(f.ncalls, 70);
  /* The first batch is read at once; the next scan comes later (at least
   * the delay after the change events of the first renames). */
  uint64_t first = f.calls[0].at_ms;
  ck_assert_uint_le(f.calls[WATCH_MAX_PER_SCAN - 1].at_ms, first + 150);
  ck_assert_uint_ge(f.calls[WATCH_MAX_PER_SCAN].at_ms, first + 150);
  /* Each offered once. */
  for (int i = 0; i < 70; i++) {
    for (int k = i + 1; k < 70; k++)
      ck_assert_str_ne(f.calls[i].path, f.calls[k].path);
    char name[40];
    snprintf(name, sizeof name, "f%02d.torrent.added", i);
    ck_assert_msg(exists(&f, name), "%s missing", name);
  }
  fix_done(&f);
}
END_TEST

/* Stopping while a scan is on the threadpool: no callback, everything freed
 * once it came back (ASan/LSan watch the rest); also with a NULL cb. */
START_TEST(test_stop_in_flight)
{
  struct fix f;
  fix_init(&f, NULL);
  put_numbered(&f, 20, "data");
  fix_start(&f);   /* the first scan is queued at once */
  watch_stop(f.w, on_stopped, &f);
  watch_stop(f.w, on_stopped, &f);   /* a second call is ignored */
  ck_assert_int_eq(f.stopped, 0);    /* never from inside watch_stop */
  ck_assert(run_until(&f, 4000, is_stopped));
  ck_assert_int_eq(f.ncalls, 0);
  ck_assert(exists(&f, "f00.torrent"));
  ck_assert(!exists(&f, "f00.torrent.added"));
  fix_done(&f);

  uv_loop_t loop;
  struct watch *w;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  ck_assert_int_eq(watch_start(&loop, "/nonexistent/shoal-watch", on_file, NULL, &w), 0);
  watch_stop(w, NULL, NULL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* The callback stops the watch while other reads are in flight: no more
 * callbacks, the file it answered for is still renamed, the rest untouched. */
START_TEST(test_stop_in_callback)
{
  struct fix f;
  fix_init(&f, NULL);
  put_numbered(&f, 20, "data");
  f.stop_in_cb = true;
  fix_start(&f);
  ck_assert(run_until(&f, 4000, is_stopped));
  ck_assert_int_eq(f.ncalls, 1);
  run_until(&f, 200, NULL);   /* nothing is running any more: the loop just idles */
  ck_assert_int_eq(f.ncalls, 1);
  const char *p = strrchr(f.calls[0].path, '/');
  ck_assert_ptr_nonnull(p);
  char added[64];
  snprintf(added, sizeof added, "%s.added", p + 1);
  ck_assert(exists(&f, added));
  int left = 0;
  for (int i = 0; i < 20; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%02d.torrent", i);
    left += exists(&f, name);
  }
  ck_assert_int_eq(left, 19);
  fix_done(&f);
}
END_TEST

/* A missing folder: one warning, then found when it appears. */
START_TEST(test_dir_later)
{
  struct fix f;
  fix_init(&f, "later");
  fix_capture_log(&f);
  fix_start(&f);
  run_until(&f, WATCH_SCAN_MS + 300, NULL);   /* two scans find nothing */
  ck_assert_int_eq(mkdir(f.dir, 0755), 0);
  put(&f, "late.torrent", "late");
  bool ok = run_until(&f, WATCH_SCAN_MS + WATCH_SETTLE_MS + 1500, late_added);
  char *log = fix_log_text(&f);
  ck_assert_msg(ok, "log: %s", log);
  ck_assert_int_eq(f.ncalls, 1);
  ck_assert(called_with(&f, 0, "late.torrent", "late"));
  int warnings = 0;
  for (const char *s = log; (s = strstr(s, "warning: watch folder")) != NULL; s++)
    warnings++;
  ck_assert_msg(warnings == 1, "log: %s", log);
  ck_assert(strstr(log, f.dir) != NULL);
  free(log);
  fix_done(&f);
}
END_TEST

Suite *watch_suite(void)
{
  Suite *s = suite_create("watch");
  TCase *tc = tcase_create("watch");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_start_args);
  tcase_add_test(tc, test_added);
  tcase_add_test(tc, test_invalid);
  tcase_add_test(tc, test_retry);
  tcase_add_test(tc, test_ignored);
  tcase_add_test(tc, test_growing);
  tcase_add_test(tc, test_rename_taken);
  tcase_add_test(tc, test_too_large);
  tcase_add_test(tc, test_parser);
  tcase_add_test(tc, test_per_scan_cap);
  tcase_add_test(tc, test_stop_in_flight);
  tcase_add_test(tc, test_stop_in_callback);
  tcase_add_test(tc, test_dir_later);
  suite_add_tcase(s, tc);
  return s;
}
