/* create.c -- build a torrent from a file or folder: walk on the threadpool, then parallel piece hashing. */
#include "peer/create.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"

#define CREATE_CHUNK_BYTES (32ull << 20)  /* a hashing work item covers at most about this much */
#define CREATE_CHUNKS_PER_THREAD 4u       /* ... and there are at least this many per thread */
#define CREATE_MAX_THREADS 1024u

struct create_job;

/* One hashing work item: pieces [first, first + count). */
struct chunk {
  uv_work_t req;
  struct create_job *job;
  uint32_t first;
  uint32_t count;
  int status;
  char err[SHOAL_ERRLEN];
};

struct create_job {
  uv_loop_t *loop;
  char *path;                  /* as given, trailing '/' removed */
  struct manifest *m;          /* filled by the walk, then by the hashing */
  uint32_t want_piece_length;
  unsigned threads;
  create_progress_cb progress;
  create_done_cb done;
  void *ctx;
  uv_work_t walk_req;
  int status;                  /* first error */
  char err[SHOAL_ERRLEN];
  struct chunk *slots;         /* work items in flight, reused */
  unsigned nslots;
  uint32_t chunk_pieces, num_chunks, next_chunk, in_flight, pieces_done;
};

static int failv(char *err, int code, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static int failv(char *err, int code, const char *fmt, va_list ap)
{
  vsnprintf(err, SHOAL_ERRLEN, fmt, ap);
  return code;
}

static int jfail(struct create_job *job, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jfail(struct create_job *job, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  failv(job->err, code, fmt, ap);
  va_end(ap);
  return code;
}

static int cfail(struct chunk *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(struct chunk *c, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  failv(c->err, code, fmt, ap);
  va_end(ap);
  return code;
}

static unsigned default_threads(void)
{
  unsigned pool = 4;                   /* libuv's default */
  const char *s = getenv("UV_THREADPOOL_SIZE");
  if (s && *s) {
    unsigned long v = strtoul(s, NULL, 10);
    pool = v == 0 ? 1 : v > CREATE_MAX_THREADS ? CREATE_MAX_THREADS : (unsigned)v;
  }
  unsigned cores = uv_available_parallelism();
  return cores && cores < pool ? cores : pool;
}

/* ---- options ---- */

static bool url_ok(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > CREATE_MAX_URL_LEN)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
      return false;
  return true;
}

static int check_opts(struct create_job *job)
{
  const struct manifest *m = job->m;
  uint32_t p = job->want_piece_length;
  if (p && (p < MANIFEST_MIN_PIECE_LEN || p > MANIFEST_MAX_PIECE_LEN || (p & (p - 1))))
    return jfail(job, UV_EINVAL, "piece size %" PRIu32 " is not a power of two between 16 KiB and 16 MiB", p);
  if (m->num_tiers > CREATE_MAX_TIERS)
    return jfail(job, UV_EINVAL, "too many tracker tiers (%" PRIu32 ", at most %u)", m->num_tiers,
                 CREATE_MAX_TIERS);
  for (uint32_t t = 0; t < m->num_tiers; t++) {
    if (m->tiers[t].count > CREATE_MAX_TIER_URLS)
      return jfail(job, UV_EINVAL, "too many trackers in one tier (%" PRIu32 ", at most %u)",
                   m->tiers[t].count, CREATE_MAX_TIER_URLS);
    for (uint32_t u = 0; u < m->tiers[t].count; u++)
      if (!url_ok(m->tiers[t].urls[u]))
        return jfail(job, UV_EINVAL,
                     "invalid announce URL '%.64s' (1 to %u printable characters, no spaces)",
                     m->tiers[t].urls[u], CREATE_MAX_URL_LEN);
  }
  return 0;
}

/* ---- walking the folder (threadpool) ---- */

static char *join(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 2);
  if (s == NULL)
    return NULL;
  memcpy(s, a, la);
  size_t o = la;
  if (la && lb)
    s[o++] = '/';
  memcpy(s + o, b, lb + 1);
  return s;
}

static uint32_t depth_of(const char *rel)
{
  uint32_t d = 1;
  for (; *rel; rel++)
    d += *rel == '/';
  return d;
}

/* The torrent's name: the last component of the path, or of its real path
 * when the path ends in "." or "..". */
static int take_name(struct create_job *job)
{
  const char *b = strrchr(job->path, '/');
  b = b ? b + 1 : job->path;
  char *real = NULL;
  if (*b == '\0' || strcmp(b, ".") == 0 || strcmp(b, "..") == 0) {
    if ((real = realpath(job->path, NULL)) == NULL)
      return jfail(job, -errno, "cannot read %s: %s", job->path, strerror(errno));
    b = strrchr(real, '/');
    b = b ? b + 1 : real;
  }
  int r = 0;
  if (*b == '\0')
    r = jfail(job, UV_EINVAL, "%s: cannot take a torrent name from this path", job->path);
  else if ((job->m->name = strdup(b)) == NULL)
    r = UV_ENOMEM;
  free(real);
  return r;
}

static int add_file(struct create_job *job, uint32_t *cap, char *rel, uint64_t len)
{
  struct manifest *m = job->m;
  if (m->num_files == MANIFEST_MAX_FILES) {
    free(rel);
    return jfail(job, SHOAL_ETOOBIG, "%s: more than %u files", job->path, MANIFEST_MAX_FILES);
  }
  if (m->num_files == *cap) {
    uint32_t ncap = *cap ? *cap * 2 : 64;
    struct manifest_file *f = realloc(m->files, (size_t)ncap * sizeof *f);
    if (f == NULL) {
      free(rel);
      return UV_ENOMEM;
    }
    m->files = f;
    *cap = ncap;
  }
  m->files[m->num_files++] = (struct manifest_file){ .path = rel, .length = len };
  return 0;
}

static int file_cmp(const void *a, const void *b)
{
  return strcmp(((const struct manifest_file *)a)->path, ((const struct manifest_file *)b)->path);
}

/* Iterative walk (explicit stack of relative folder paths): regular files
 * are kept, symlinks and special files skipped with a warning. */
static int walk_dir(struct create_job *job)
{
  char **stack = NULL;
  size_t depth = 0, cap = 0;
  uint32_t fcap = 0;
  int r = 0;
  char *rel = strdup("");
  if (rel == NULL)
    return UV_ENOMEM;
  for (;;) {
    char *full = join(job->path, rel);
    if (full == NULL) {
      r = UV_ENOMEM;
      break;
    }
    int fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
      r = jfail(job, -errno, "cannot read %s: %s", full, strerror(errno));
      if (fd >= 0)
        close(fd);
      free(full);
      break;
    }
    for (;;) {
      errno = 0;
      struct dirent *de = readdir(d);
      if (de == NULL) {
        if (errno)
          r = jfail(job, -errno, "cannot read %s: %s", full, strerror(errno));
        break;
      }
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      char *child = join(rel, de->d_name);
      if (child == NULL) {
        r = UV_ENOMEM;
        break;
      }
      struct stat st;
      if (strlen(child) > MANIFEST_MAX_PATH_LEN) {
        r = jfail(job, SHOAL_EPATH, "%s: a path inside is longer than %u bytes", full,
                  MANIFEST_MAX_PATH_LEN);
      } else if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        r = jfail(job, -errno, "cannot read %s/%s: %s", full, de->d_name, strerror(errno));
      } else if (S_ISLNK(st.st_mode)) {
        LOG_WARN("skipping symlink %s/%s", full, de->d_name);
      } else if (S_ISDIR(st.st_mode)) {
        if (depth_of(child) >= MANIFEST_MAX_PATH_DEPTH) {
          r = jfail(job, SHOAL_EPATH, "%s/%s: folders nested deeper than %u levels", full, de->d_name,
                    MANIFEST_MAX_PATH_DEPTH - 1);
        } else if (depth == cap) {
          size_t ncap = cap ? cap * 2 : 16;
          char **s = realloc(stack, ncap * sizeof *s);
          if (s == NULL) {
            r = UV_ENOMEM;
          } else {
            stack = s;
            cap = ncap;
          }
        }
        if (r == 0) {
          stack[depth++] = child;
          child = NULL;
        }
      } else if (S_ISREG(st.st_mode)) {
        r = add_file(job, &fcap, child, (uint64_t)st.st_size);
        child = NULL;
      } else {
        LOG_WARN("skipping special file %s/%s", full, de->d_name);
      }
      free(child);
      if (r)
        break;
    }
    closedir(d);
    free(full);
    if (r || depth == 0)
      break;
    free(rel);
    rel = stack[--depth];
  }
  free(rel);
  while (depth)
    free(stack[--depth]);
  free(stack);
  if (r)
    return r;
  if (job->m->num_files == 0)
    return jfail(job, SHOAL_EMANIFEST, "%s: folder holds no files", job->path);
  qsort(job->m->files, job->m->num_files, sizeof *job->m->files, file_cmp);
  return 0;
}

static int walk(struct create_job *job)
{
  struct manifest *m = job->m;
  struct stat st;
  int r;
  if (stat(job->path, &st) != 0)
    return jfail(job, -errno, "cannot read %s: %s", job->path, strerror(errno));
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return jfail(job, UV_EINVAL, "%s: not a regular file or a folder", job->path);
  if ((r = take_name(job)) != 0)
    return r;
  if (S_ISREG(st.st_mode)) {
    m->multi_file = false;
    if ((m->files = calloc(1, sizeof *m->files)) == NULL || (m->files[0].path = strdup(m->name)) == NULL)
      return UV_ENOMEM;
    m->num_files = 1;
    m->files[0].length = (uint64_t)st.st_size;
  } else {
    m->multi_file = true;
    if ((r = walk_dir(job)) != 0)
      return r;
  }
  uint64_t total = 0;
  for (uint32_t i = 0; i < m->num_files; i++) {
    m->files[i].offset = total;
    if (m->files[i].length > MANIFEST_MAX_TOTAL - total)
      return jfail(job, SHOAL_ETOOBIG, "%s: more than 1 PiB of data", job->path);
    total += m->files[i].length;
  }
  m->total_length = total;
  if (total == 0)
    return jfail(job, SHOAL_EMANIFEST, "%s: nothing to share: all files are empty", job->path);
  return 0;
}

/* Piece layout, then a dry run through manifest_encode + manifest_parse
 * with zero hashes: whatever the parser would refuse (names, paths, sizes)
 * is refused now, before any data is read. */
static int plan(struct create_job *job)
{
  struct manifest *m = job->m;
  m->piece_length = job->want_piece_length ? job->want_piece_length
                                           : manifest_choose_piece_length(m->total_length);
  uint64_t pieces = (m->total_length + m->piece_length - 1) / m->piece_length;
  if (pieces > MANIFEST_MAX_FILE_SIZE / HASH_SHA1_LEN)
    return jfail(job, SHOAL_ETOOBIG, "%s: %" PRIu64 " pieces would not fit in a torrent file: choose a larger piece size",
                 job->path, pieces);
  m->num_pieces = (uint32_t)pieces;
  if ((m->piece_hashes = calloc(pieces, HASH_SHA1_LEN)) == NULL)
    return UV_ENOMEM;

  struct buf b;
  buf_init(&b, MANIFEST_MAX_FILE_SIZE);
  int r = manifest_encode(m, &b);
  if (r == UV_E2BIG)
    r = jfail(job, SHOAL_ETOOBIG, "%s: the torrent file would be larger than %u MiB", job->path,
              MANIFEST_MAX_FILE_SIZE >> 20);
  if (r == 0) {
    struct manifest *p = NULL;
    char perr[SHOAL_ERRLEN];
    r = manifest_parse(b.p, b.len, &p, perr, sizeof perr);
    if (r) {
      const char *why = strncmp(perr, "invalid torrent file: ", 22) == 0 ? perr + 22 : perr;
      jfail(job, r, "cannot make a valid torrent of %s: %s", job->path, why);
    } else if (m->comment && p->comment == NULL) {
      r = jfail(job, UV_EINVAL, "the comment is not valid UTF-8 or is longer than 64 KiB");
    } else if (m->created_by && p->created_by == NULL) {
      r = jfail(job, UV_EINVAL, "'created by' is not valid UTF-8 or is longer than 64 KiB");
    }
    manifest_free(p);
  }
  buf_free(&b);
  free(m->info);                       /* built again once the hashes are known */
  m->info = NULL;
  m->info_len = 0;
  return r;
}

static void walk_work(uv_work_t *req)
{
  struct create_job *job = req->data;
  int r = check_opts(job);
  if (r == 0)
    r = walk(job);
  if (r == 0)
    r = plan(job);
  if (r == UV_ENOMEM)
    jfail(job, r, "out of memory");
  job->status = r;
}

/* ---- hashing (threadpool) ---- */

struct reader {
  struct create_job *job;
  struct chunk *c;
  uint32_t file;       /* current file */
  uint64_t pos;        /* position in it */
  int fd;
  char *pathbuf;
  size_t pathlen;
};

static const char *reader_path(struct reader *rd)
{
  const struct create_job *job = rd->job;
  if (!job->m->multi_file)
    return job->path;
  snprintf(rd->pathbuf, rd->pathlen, "%s/%s", job->path, job->m->files[rd->file].path);
  return rd->pathbuf;
}

static int reader_open(struct reader *rd)
{
  const struct manifest_file *f = &rd->job->m->files[rd->file];
  const char *path = reader_path(rd);
  struct stat st;
  rd->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (rd->fd < 0)
    return cfail(rd->c, -errno, "cannot read %s: %s", path, strerror(errno));
  if (fstat(rd->fd, &st) != 0)
    return cfail(rd->c, -errno, "cannot read %s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->length)
    return cfail(rd->c, UV_EIO, "%s changed while being hashed (size %jd, was %" PRIu64 ")", path,
                 (intmax_t)st.st_size, f->length);
  posix_fadvise(rd->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return 0;
}

static void reader_close(struct reader *rd)
{
  if (rd->fd >= 0)
    close(rd->fd);
  rd->fd = -1;
}

/* The next n bytes of the torrent's data, across file boundaries. */
static int reader_read(struct reader *rd, uint8_t *dst, uint64_t n)
{
  const struct manifest *m = rd->job->m;
  while (n > 0) {
    const struct manifest_file *f = &m->files[rd->file];
    if (rd->pos == f->length) {
      reader_close(rd);
      if (rd->file + 1 >= m->num_files)
        return cfail(rd->c, UV_EIO, "data ended early");   /* not reached: sizes add up */
      rd->file++;
      rd->pos = 0;
      continue;
    }
    if (rd->fd < 0) {
      int r = reader_open(rd);
      if (r)
        return r;
    }
    uint64_t left = f->length - rd->pos;
    size_t want = (size_t)(n < left ? n : left);
    ssize_t k = pread(rd->fd, dst, want, (off_t)rd->pos);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return cfail(rd->c, -errno, "cannot read %s: %s", reader_path(rd), strerror(errno));
    if (k == 0)
      return cfail(rd->c, UV_EIO, "%s changed while being hashed (it is shorter now)", reader_path(rd));
    dst += k;
    n -= (uint64_t)k;
    rd->pos += (uint64_t)k;
  }
  return 0;
}

static void hash_work(uv_work_t *req)
{
  struct chunk *c = req->data;
  struct create_job *job = c->job;
  const struct manifest *m = job->m;
  uint32_t plen = m->piece_length;
  size_t bsize = plen <= CREATE_READ_BUF ? (CREATE_READ_BUF / plen) * plen : CREATE_READ_BUF;
  struct reader rd = { .job = job, .c = c, .fd = -1 };
  rd.pathlen = strlen(job->path) + MANIFEST_MAX_PATH_LEN + 2;
  uint8_t *buf = malloc(bsize);
  rd.pathbuf = malloc(rd.pathlen);
  int r = 0;
  if (buf == NULL || rd.pathbuf == NULL) {
    r = cfail(c, UV_ENOMEM, "out of memory");
    goto out;
  }
  uint64_t off = (uint64_t)c->first * plen;
  int fi = manifest_file_at(m, off);
  if (fi < 0) {
    r = cfail(c, UV_EINVAL, "piece %" PRIu32 " out of range", c->first);
    goto out;
  }
  rd.file = (uint32_t)fi;
  rd.pos = off - m->files[fi].offset;
  uint32_t end = c->first + c->count;
  if (plen <= CREATE_READ_BUF) {
    /* whole pieces in the buffer, each hashed in one go */
    uint32_t per = (uint32_t)(bsize / plen);
    for (uint32_t p = c->first; p < end && r == 0; p += per) {
      uint32_t k = end - p < per ? end - p : per;
      uint64_t start = (uint64_t)p * plen;
      uint64_t bytes = (uint64_t)k * plen;
      if (bytes > m->total_length - start)
        bytes = m->total_length - start;
      if ((r = reader_read(&rd, buf, bytes)) != 0)
        break;
      for (uint32_t j = 0; j < k; j++)
        hash_sha1(buf + (size_t)j * plen, manifest_piece_size(m, p + j),
                  m->piece_hashes + (size_t)(p + j) * HASH_SHA1_LEN);
    }
  } else {
    /* pieces larger than the buffer: incremental */
    for (uint32_t p = c->first; p < end && r == 0; p++) {
      struct hash_sha1_ctx h;
      if ((r = hash_sha1_init(&h)) != 0) {
        cfail(c, r, "out of memory");
        break;
      }
      uint64_t left = manifest_piece_size(m, p);
      while (left > 0) {
        size_t n = left < bsize ? (size_t)left : bsize;
        if ((r = reader_read(&rd, buf, n)) != 0)
          break;
        hash_sha1_update(&h, buf, n);
        left -= n;
      }
      if (r)
        hash_sha1_abort(&h);
      else
        hash_sha1_final(&h, m->piece_hashes + (size_t)p * HASH_SHA1_LEN);
    }
  }
out:
  reader_close(&rd);
  free(rd.pathbuf);
  free(buf);
  c->status = r;
}

/* ---- scheduling and completion (loop thread) ---- */

static void hash_after(uv_work_t *req, int status);

static void job_free(struct create_job *job)
{
  manifest_free(job->m);
  free(job->slots);
  free(job->path);
  free(job);
}

static void finish(struct create_job *job)
{
  struct manifest *m = job->m;
  if (job->status == 0) {
    struct buf b;
    buf_init(&b, MANIFEST_MAX_FILE_SIZE + (1u << 20));
    int r = manifest_encode(m, &b);     /* fills m->info and m->infohash */
    buf_free(&b);
    if (r)
      job->status = jfail(job, r == UV_E2BIG ? SHOAL_ETOOBIG : r, "cannot encode the torrent: %s",
                          shoal_strerror(r));
  }
  if (job->status == 0) {
    job->m = NULL;
    job->done(job->ctx, 0, m, NULL);
  } else {
    job->done(job->ctx, job->status, NULL, job->err);
  }
  job_free(job);
}

static void queue_next(struct create_job *job, struct chunk *c)
{
  if (job->status || job->next_chunk == job->num_chunks)
    return;
  uint32_t first = job->next_chunk * job->chunk_pieces;
  uint32_t left = job->m->num_pieces - first;
  c->job = job;
  c->first = first;
  c->count = left < job->chunk_pieces ? left : job->chunk_pieces;
  c->status = 0;
  c->err[0] = '\0';
  c->req.data = c;
  int r = uv_queue_work(job->loop, &c->req, hash_work, hash_after);
  if (r) {
    job->status = jfail(job, r, "cannot queue work: %s", uv_strerror(r));
    return;
  }
  job->next_chunk++;
  job->in_flight++;
}

static void hash_after(uv_work_t *req, int status)
{
  struct chunk *c = req->data;
  struct create_job *job = c->job;
  job->in_flight--;
  if (job->status == 0 && status != 0)
    job->status = jfail(job, status, "hashing stopped: %s", uv_strerror(status));
  if (job->status == 0 && c->status != 0) {
    job->status = c->status;
    memcpy(job->err, c->err, sizeof job->err);
  }
  if (job->status == 0) {
    job->pieces_done += c->count;
    if (job->progress)
      job->progress(job->ctx, job->pieces_done, job->m->num_pieces);
  }
  queue_next(job, c);
  if (job->in_flight == 0)
    finish(job);
}

static void hash_start(struct create_job *job)
{
  const struct manifest *m = job->m;
  uint32_t pieces = m->num_pieces;
  uint64_t want = (uint64_t)job->threads * CREATE_CHUNKS_PER_THREAD;
  uint64_t by_size = (m->total_length + CREATE_CHUNK_BYTES - 1) / CREATE_CHUNK_BYTES;
  if (want < by_size)
    want = by_size;
  if (want > pieces)
    want = pieces;
  job->chunk_pieces = (uint32_t)((pieces + want - 1) / want);
  job->num_chunks = (pieces + job->chunk_pieces - 1) / job->chunk_pieces;
  job->nslots = job->threads < job->num_chunks ? job->threads : job->num_chunks;
  job->slots = calloc(job->nslots, sizeof *job->slots);
  if (job->slots == NULL) {
    job->status = jfail(job, UV_ENOMEM, "out of memory");
    finish(job);
    return;
  }
  for (unsigned i = 0; i < job->nslots; i++)
    queue_next(job, &job->slots[i]);
  if (job->in_flight == 0)
    finish(job);
}

static void walk_after(uv_work_t *req, int status)
{
  struct create_job *job = req->data;
  if (job->status == 0 && status != 0)
    job->status = jfail(job, status, "cannot read %s: %s", job->path, uv_strerror(status));
  if (job->status)
    finish(job);
  else
    hash_start(job);
}

/* ---- entry points ---- */

static char *dup_or_null(const char *s, bool *fail)
{
  if (s == NULL)
    return NULL;
  char *d = strdup(s);
  if (d == NULL)
    *fail = true;
  return d;
}

int create_start(uv_loop_t *loop, const struct create_opts *opts, create_progress_cb progress,
                 create_done_cb done, void *ctx)
{
  if (loop == NULL || opts == NULL || opts->path == NULL || opts->path[0] == '\0' || done == NULL ||
      (opts->num_tiers && opts->tiers == NULL))
    return UV_EINVAL;
  struct create_job *job = calloc(1, sizeof *job);
  struct manifest *m = calloc(1, sizeof *m);
  bool oom = job == NULL || m == NULL;
  if (oom) {
    free(job);
    free(m);
    return UV_ENOMEM;
  }
  job->m = m;
  job->loop = loop;
  job->want_piece_length = opts->piece_length;
  job->threads = opts->threads ? opts->threads : default_threads();
  if (job->threads > CREATE_MAX_THREADS)
    job->threads = CREATE_MAX_THREADS;
  job->progress = progress;
  job->done = done;
  job->ctx = ctx;
  job->path = dup_or_null(opts->path, &oom);
  if (job->path) {
    size_t n = strlen(job->path);
    while (n > 1 && job->path[n - 1] == '/')
      job->path[--n] = '\0';
  }
  m->private_ = opts->private_;
  m->comment = dup_or_null(opts->comment, &oom);
  m->created_by = dup_or_null(opts->created_by, &oom);
  m->creation_date = opts->creation_date;
  if (opts->num_tiers) {
    m->tiers = calloc(opts->num_tiers, sizeof *m->tiers);
    oom |= m->tiers == NULL;
  }
  bool bad = false;
  for (uint32_t t = 0; !oom && !bad && t < opts->num_tiers; t++) {
    const struct manifest_tier *src = &opts->tiers[t];
    struct manifest_tier *dst = &m->tiers[t];
    m->num_tiers = t + 1;
    if (src->count == 0)
      continue;
    if (src->urls == NULL) {
      bad = true;
    } else if ((dst->urls = calloc(src->count, sizeof *dst->urls)) == NULL) {
      oom = true;
    }
    for (uint32_t u = 0; dst->urls && !oom && !bad && u < src->count; u++) {
      if (src->urls[u] == NULL)
        bad = true;
      else if ((dst->urls[u] = strdup(src->urls[u])) == NULL)
        oom = true;
      else
        dst->count = u + 1;
    }
  }
  if (oom || bad) {
    job_free(job);
    return oom ? UV_ENOMEM : UV_EINVAL;
  }
  job->walk_req.data = job;
  int r = uv_queue_work(loop, &job->walk_req, walk_work, walk_after);
  if (r) {
    job_free(job);
    return r;
  }
  return 0;
}

struct run_state {
  int status;
  struct manifest *m;
  char *err;
  size_t errlen;
  create_progress_cb progress;
  void *ctx;
};

static void run_progress(void *ctx, uint32_t done, uint32_t total)
{
  struct run_state *rs = ctx;
  if (rs->progress)
    rs->progress(rs->ctx, done, total);
}

static void run_done(void *ctx, int status, struct manifest *m, const char *err)
{
  struct run_state *rs = ctx;
  rs->status = status;
  rs->m = m;
  if (status && rs->err && rs->errlen)
    snprintf(rs->err, rs->errlen, "%s", err);
}

int create_run(const struct create_opts *opts, create_progress_cb progress, void *ctx,
               struct manifest **out, char *err, size_t errlen)
{
  uv_loop_t loop;
  struct run_state rs = { .status = UV_EINVAL, .err = err, .errlen = errlen,
                          .progress = progress, .ctx = ctx };
  int r = uv_loop_init(&loop);
  if (r) {
    if (err && errlen)
      snprintf(err, errlen, "cannot start an event loop: %s", uv_strerror(r));
    return r;
  }
  r = create_start(&loop, opts, run_progress, run_done, &rs);
  if (r) {
    if (err && errlen)
      snprintf(err, errlen, "cannot create a torrent: %s", uv_strerror(r));
  } else {
    uv_run(&loop, UV_RUN_DEFAULT);
    r = rs.status;
    if (r == 0)
      *out = rs.m;
  }
  uv_loop_close(&loop);
  return r;
}
