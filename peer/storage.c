/* storage.c -- a torrent's files on disk: verified piece writes, block reads and checks on the libuv threadpool. */
#include "peer/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"

_Static_assert(sizeof(off_t) >= 8, "shoal needs 64-bit file offsets");

#define STORAGE_NAME_MAX 255u            /* bytes of one path component */
#define STORAGE_TP_DEFAULT 4u            /* libuv's threadpool size when not set */
#define STORAGE_TP_MAX 1024u

#define storage__container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

/* One open file.  `cached` entries live in the table; the others are closed
 * by whoever drops the last reference. */
struct storage_fd {
  int fd;
  uint32_t file;
  uint32_t refs;
  bool writable;
  bool cached;
  bool opening;   /* in the table, being opened by one thread; others wait on fd_cond */
  uint64_t last_use;
};

/* Every piece of threadpool work: linked in the storage while in flight so
 * that close can cancel it. */
struct storage_req {
  uv_work_t work;
  struct storage *s;
  struct storage_req *prev, *next;
  void (*run)(struct storage_req *r);                 /* threadpool */
  void (*finish)(struct storage_req *r, int status);  /* loop; status 0 or UV_ECANCELED */
};

/* storage_write_piece, storage_read, storage_finish */
struct storage_io {
  struct storage_req req;
  uint32_t piece;
  uint32_t begin;
  uint32_t len;
  const uint8_t *wdata;
  uint8_t *rdata;
  storage_cb cb;
  void *ctx;
  int result;
};

struct storage_check;

struct storage_check_slot {
  struct storage_req req;
  struct storage_check *chk;
  uint8_t *buf;          /* piece_length bytes, allocated on first use */
  uint32_t piece;
  bool busy;
  bool match;
};

struct storage_check {
  struct storage *s;
  struct bitfield *have;
  storage_progress_cb progress;
  storage_cb done;
  void *ctx;
  struct storage_req scan;       /* stat pass over the files */
  int scan_result;
  struct bitfield candidate;     /* pieces whose files are there and long enough */
  struct bitfield mask;          /* storage_check_some: the pieces to look at */
  bool masked;
  uint32_t next;                 /* next piece to consider */
  uint32_t done_count;           /* pieces examined */
  uint32_t reported;             /* last done_count given to progress */
  uint32_t active;               /* slots in flight */
  uint32_t nslots;
  int error;
  struct storage_check_slot *slots;
};

struct storage {
  uv_loop_t *loop;
  const struct manifest *m;
  char *dir;
  char *root;

  uv_mutex_t fd_mu;              /* guards fds[], fd_clock and every entry's refs/cached/opening */
  uv_cond_t fd_cond;             /* an `opening` entry was resolved */
  struct storage_fd *fds[STORAGE_FD_CACHE];
  uint64_t fd_clock;

  uint8_t *skip;                 /* per file: 1 = not wanted, never written (atomic bytes) */
  int64_t blocked;               /* first file whose place is taken (by the last check), or -1 */

  struct storage_req *reqs;      /* in flight */
  uint32_t inflight;
  struct storage_check *check;

  bool closing;
  bool close_queued;
  uv_work_t close_work;
  void (*close_cb)(void *ctx);
  void *close_ctx;

  /* counters, updated atomically from the threadpool */
  uint64_t bytes_read;
  uint64_t bytes_written;
  uint64_t files_opened;
  uint32_t check_peak;           /* loop thread only */
};

static void storage_close_step(struct storage *s);

/* ---- manifest checks (loop thread, no disk) ---- */

static bool storage_component_ok(const char *p, size_t n)
{
  if (n == 0 || n > STORAGE_NAME_MAX)
    return false;
  if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
    return false;
  return memchr(p, '/', n) == NULL;
}

static bool storage_path_ok(const char *path)
{
  size_t len = strnlen(path, MANIFEST_MAX_PATH_LEN + 1);
  if (len == 0 || len > MANIFEST_MAX_PATH_LEN)
    return false;
  uint32_t depth = 0;
  const char *p = path;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (!storage_component_ok(p, n) || ++depth > MANIFEST_MAX_PATH_DEPTH)
      return false;
    if (slash == NULL)
      return true;
    p = slash + 1;
  }
}

static int storage_check_manifest(const struct manifest *m)
{
  if (m->name == NULL)
    return UV_EINVAL;
  if (!storage_component_ok(m->name, strnlen(m->name, STORAGE_NAME_MAX + 1)))
    return SHOAL_EPATH;
  if (m->piece_length == 0 || m->piece_length > MANIFEST_MAX_PIECE_LEN)
    return UV_EINVAL;
  if (m->total_length > MANIFEST_MAX_TOTAL)
    return UV_EINVAL;
  uint64_t pieces = m->total_length == 0 ? 0 : (m->total_length - 1) / m->piece_length + 1;
  if (pieces != m->num_pieces)
    return UV_EINVAL;
  if (m->num_pieces > 0 && m->piece_hashes == NULL)
    return UV_EINVAL;
  if (m->files == NULL || m->num_files == 0 || m->num_files > MANIFEST_MAX_FILES)
    return UV_EINVAL;
  if (!m->multi_file && m->num_files != 1)
    return UV_EINVAL;
  uint64_t off = 0;
  for (uint32_t i = 0; i < m->num_files; i++) {
    const struct manifest_file *f = &m->files[i];
    if (m->multi_file) {
      if (f->path == NULL)
        return UV_EINVAL;
      if (!storage_path_ok(f->path))
        return SHOAL_EPATH;
    }
    if (f->offset != off || f->length > m->total_length - off)
      return UV_EINVAL;
    off += f->length;
  }
  return off == m->total_length ? 0 : UV_EINVAL;
}

/* ---- paths (threadpool) ---- */

static int storage_errno(int e)
{
  /* With O_NOFOLLOW a symlink gives ELOOP (file) or ENOTDIR (folder). */
  if (e == ELOOP || e == ENOTDIR || e == EISDIR)
    return SHOAL_EPATH;
  return -e;
}

static int storage_open_base(const struct storage *s, bool create, int *out)
{
  bool made = false;
  for (;;) {
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      *out = fd;
      return 0;
    }
    int e = errno;
    if (e == EINTR)
      continue;
    if (e == ENOENT && create && !made) {
      made = true;
      if (mkdir(s->dir, 0755) == 0 || errno == EEXIST)
        continue;
      e = errno;
    }
    return -e;
  }
}

/* Replaces *dfd by its sub-folder `name` (never through a symlink), creating
 * it when asked.  On error *dfd is unchanged. */
static int storage_enter_dir(int *dfd, const char *name, bool create)
{
  bool made = false;
  for (;;) {
    int fd = openat(*dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      close(*dfd);
      *dfd = fd;
      return 0;
    }
    int e = errno;
    if (e == EINTR)
      continue;
    if (e == ENOENT && create && !made) {
      made = true;
      if (mkdirat(*dfd, name, 0755) == 0 || errno == EEXIST)
        continue;
      e = errno;
    }
    return storage_errno(e);
  }
}

/* Opens the folder that holds file i; *leaf points at the file's own name
 * (NUL-terminated, inside the manifest). */
static int storage_open_parent(const struct storage *s, uint32_t i, bool create, int *dfd_out, const char **leaf)
{
  const struct manifest *m = s->m;
  int dfd;
  int rc = storage_open_base(s, create, &dfd);
  if (rc < 0)
    return rc;
  if (!m->multi_file) {
    *leaf = m->name;
    *dfd_out = dfd;
    return 0;
  }
  rc = storage_enter_dir(&dfd, m->name, create);
  const char *p = m->files[i].path;
  for (;;) {
    if (rc < 0) {
      close(dfd);
      return rc;
    }
    const char *slash = strchr(p, '/');
    if (slash == NULL)
      break;
    size_t n = (size_t)(slash - p);
    char comp[STORAGE_NAME_MAX + 1];
    if (n == 0 || n > STORAGE_NAME_MAX) {
      rc = SHOAL_EPATH;
      continue;
    }
    memcpy(comp, p, n);
    comp[n] = '\0';
    rc = storage_enter_dir(&dfd, comp, create);
    p = slash + 1;
  }
  *leaf = p;
  *dfd_out = dfd;
  return 0;
}

/* Opens file i: read-only, or read-write and created when missing.  Only a
 * regular file is accepted. */
static int storage_open_file(struct storage *s, uint32_t i, bool write, int *out)
{
  const struct manifest_file *f = &s->m->files[i];
  const char *leaf;
  int dfd;
  int rc = storage_open_parent(s, i, write, &dfd, &leaf);
  if (rc < 0)
    return rc;
  int flags = O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  flags |= write ? O_RDWR | O_CREAT : O_RDONLY;
  mode_t mode = (f->attr & MANIFEST_ATTR_EXEC) ? 0755 : 0644;
  int fd;
  do
    fd = openat(dfd, leaf, flags, mode);
  while (fd < 0 && errno == EINTR);
  int e = errno;
  close(dfd);
  if (fd < 0)
    return storage_errno(e);
  struct stat st;
  if (fstat(fd, &st) < 0) {
    e = errno;
    close(fd);
    return -e;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return SHOAL_EPATH;
  }
  __atomic_fetch_add(&s->files_opened, 1, __ATOMIC_RELAXED);
  *out = fd;
  return 0;
}

/* ---- fd cache (threadpool, mutex) ---- */

static int storage_fd_find(const struct storage *s, uint32_t file)
{
  for (uint32_t i = 0; i < STORAGE_FD_CACHE; i++)
    if (s->fds[i] != NULL && s->fds[i]->file == file)
      return (int)i;
  return -1;
}

static void storage_fd_drop(struct storage_fd *e)
{
  close(e->fd);
  free(e);
}

/* A free slot, or the least recently used idle one (its entry retired into
 * *victim); -1 when every slot is in use. */
static int storage_fd_slot(struct storage *s, struct storage_fd **victim)
{
  int slot = -1;
  for (uint32_t i = 0; i < STORAGE_FD_CACHE; i++) {
    struct storage_fd *e = s->fds[i];
    if (e == NULL) {
      slot = (int)i;
      break;
    }
    if (e->refs == 0 && (slot < 0 || e->last_use < s->fds[slot]->last_use))
      slot = (int)i;
  }
  if (slot >= 0 && s->fds[slot] != NULL) {
    *victim = s->fds[slot];
    (*victim)->cached = false;
    s->fds[slot] = NULL;
  }
  return slot;
}

/* A referenced descriptor for file `file`, writable when asked (a read-only
 * one in the cache is retired and the file reopened).  Threads missing the
 * cache for the same file at once open it once: the first one puts an
 * `opening` entry in the table and the others wait for it.  Release with
 * storage_fd_put. */
static int storage_fd_get(struct storage *s, uint32_t file, bool write, struct storage_fd **out)
{
  struct storage_fd *dead[2] = { NULL, NULL };
  uv_mutex_lock(&s->fd_mu);
  for (;;) {
    int idx = storage_fd_find(s, file);
    if (idx < 0)
      break;
    struct storage_fd *e = s->fds[idx];
    if (e->opening) {
      uv_cond_wait(&s->fd_cond, &s->fd_mu);
      continue;
    }
    if (e->writable || !write) {
      e->refs++;
      e->last_use = ++s->fd_clock;
      uv_mutex_unlock(&s->fd_mu);
      *out = e;
      return 0;
    }
    /* read-only, write needed: retire it (its current users keep it alive) */
    s->fds[idx] = NULL;
    e->cached = false;
    if (e->refs == 0)
      dead[0] = e;
    break;
  }
  struct storage_fd *ne = malloc(sizeof(*ne));
  if (ne == NULL) {
    uv_mutex_unlock(&s->fd_mu);
    if (dead[0] != NULL)
      storage_fd_drop(dead[0]);
    return UV_ENOMEM;
  }
  ne->fd = -1;
  ne->file = file;
  ne->refs = 1;
  ne->writable = write;
  ne->cached = false;
  ne->opening = false;
  ne->last_use = ++s->fd_clock;
  /* with every slot busy the descriptor stays private, closed after use */
  int slot = storage_fd_slot(s, &dead[1]);
  if (slot >= 0) {
    s->fds[slot] = ne;
    ne->cached = true;
    ne->opening = true;
  }
  uv_mutex_unlock(&s->fd_mu);
  for (int i = 0; i < 2; i++)
    if (dead[i] != NULL)
      storage_fd_drop(dead[i]);

  int rc = storage_open_file(s, file, write, &ne->fd);

  if (ne->cached) {
    uv_mutex_lock(&s->fd_mu);
    ne->opening = false;
    if (rc < 0) {
      s->fds[slot] = NULL;
      ne->cached = false;
    }
    uv_cond_broadcast(&s->fd_cond);
    uv_mutex_unlock(&s->fd_mu);
  }
  if (rc < 0) {
    free(ne);
    return rc;
  }
  *out = ne;
  return 0;
}

static void storage_fd_put(struct storage *s, struct storage_fd *e)
{
  uv_mutex_lock(&s->fd_mu);
  bool drop = --e->refs == 0 && !e->cached;
  uv_mutex_unlock(&s->fd_mu);
  if (drop)
    storage_fd_drop(e);
}

/* ---- data I/O (threadpool) ---- */

static int storage_pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return UV_EIO;  /* file shorter than the manifest says */
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static int storage_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = pwrite(fd, p, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return UV_EIO;
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

/* Index of the last file starting at or before torrent offset off. */
static uint32_t storage_file_index(const struct manifest *m, uint64_t off)
{
  uint32_t lo = 0, hi = m->num_files;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (m->files[mid].offset <= off)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* Reads into rp or writes wp (exactly one is set): len bytes at torrent
 * offset off, across the files they span. */
static int storage_rw(struct storage *s, uint64_t off, uint8_t *rp, const uint8_t *wp, uint64_t len)
{
  const struct manifest *m = s->m;
  bool write = wp != NULL;
  uint32_t i = storage_file_index(m, off);
  while (len > 0) {
    if (i >= m->num_files)
      return UV_EIO;
    const struct manifest_file *f = &m->files[i];
    uint64_t fend = f->offset + f->length;
    if (f->length == 0 || off >= fend) {
      i++;
      continue;
    }
    size_t n = (size_t)(len < fend - off ? len : fend - off);
    if (f->attr & MANIFEST_ATTR_PAD) {
      if (!write)
        memset(rp, 0, n);
    } else if (__atomic_load_n(&s->skip[i], __ATOMIC_RELAXED)) {
      if (!write)
        return UV_ENOENT;                      /* a file left out is never read */
    } else {
      struct storage_fd *e;
      int rc = storage_fd_get(s, i, write, &e);
      if (rc < 0)
        return rc;
      if (write)
        rc = storage_pwrite_all(e->fd, wp, n, off - f->offset);
      else
        rc = storage_pread_all(e->fd, rp, n, off - f->offset);
      storage_fd_put(s, e);
      if (rc < 0)
        return rc;
      __atomic_fetch_add(write ? &s->bytes_written : &s->bytes_read, (uint64_t)n, __ATOMIC_RELAXED);
    }
    off += n;
    len -= n;
    if (write)
      wp += n;
    else
      rp += n;
    i++;
  }
  return 0;
}

static bool storage_piece_matches(const struct storage *s, uint32_t piece, const uint8_t *data, uint32_t size)
{
  uint8_t h[HASH_SHA1_LEN];
  hash_sha1(data, size, h);
  return memcmp(h, s->m->piece_hashes + (size_t)piece * HASH_SHA1_LEN, HASH_SHA1_LEN) == 0;
}

/* ---- requests ---- */

static void storage_work_cb(uv_work_t *w)
{
  struct storage_req *r = storage__container_of(w, struct storage_req, work);
  r->run(r);
}

static void storage_after_work_cb(uv_work_t *w, int status)
{
  struct storage_req *r = storage__container_of(w, struct storage_req, work);
  struct storage *s = r->s;
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    s->reqs = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  s->inflight--;
  r->finish(r, (status < 0 || s->closing) ? UV_ECANCELED : 0);  /* may free r */
  storage_close_step(s);
}

static int storage_queue(struct storage *s, struct storage_req *r,
                         void (*run)(struct storage_req *), void (*finish)(struct storage_req *, int))
{
  r->s = s;
  r->run = run;
  r->finish = finish;
  int rc = uv_queue_work(s->loop, &r->work, storage_work_cb, storage_after_work_cb);
  if (rc < 0)
    return rc;
  r->prev = NULL;
  r->next = s->reqs;
  if (s->reqs != NULL)
    s->reqs->prev = r;
  s->reqs = r;
  s->inflight++;
  return 0;
}

static void storage_io_finish(struct storage_req *r, int status)
{
  struct storage_io *io = storage__container_of(r, struct storage_io, req);
  storage_cb cb = io->cb;
  void *ctx = io->ctx;
  int result = status < 0 ? status : io->result;
  free(io);
  cb(ctx, result);
}

static int storage_io_submit(struct storage *s, struct storage_io *io, void (*run)(struct storage_req *))
{
  int rc = storage_queue(s, &io->req, run, storage_io_finish);
  if (rc < 0)
    free(io);
  return rc;
}

static void storage_write_run(struct storage_req *r)
{
  struct storage_io *io = storage__container_of(r, struct storage_io, req);
  struct storage *s = r->s;
  uint32_t size = storage_piece_size(s, io->piece);
  if (!storage_piece_matches(s, io->piece, io->wdata, size)) {
    io->result = SHOAL_EHASH;
    return;
  }
  io->result = storage_rw(s, (uint64_t)io->piece * s->m->piece_length, NULL, io->wdata, size);
}

static void storage_read_run(struct storage_req *r)
{
  struct storage_io *io = storage__container_of(r, struct storage_io, req);
  struct storage *s = r->s;
  uint64_t off = (uint64_t)io->piece * s->m->piece_length + io->begin;
  io->result = storage_rw(s, off, io->rdata, NULL, io->len);
}

static void storage_finish_run(struct storage_req *r)
{
  struct storage_io *io = storage__container_of(r, struct storage_io, req);
  struct storage *s = r->s;
  const struct manifest *m = s->m;
  io->result = 0;
  for (uint32_t i = 0; i < m->num_files; i++) {
    if (m->files[i].length != 0 || (m->files[i].attr & MANIFEST_ATTR_PAD) ||
        __atomic_load_n(&s->skip[i], __ATOMIC_RELAXED))
      continue;
    int fd;
    int rc = storage_open_file(s, i, true, &fd);
    if (rc == 0)
      close(fd);
    else if (io->result == 0)
      io->result = rc;
  }
}

/* ---- check ---- */

static unsigned storage_threadpool_size(void)
{
  const char *v = getenv("UV_THREADPOOL_SIZE");
  if (v == NULL || *v == '\0')
    return STORAGE_TP_DEFAULT;
  unsigned n = 0;
  for (; *v >= '0' && *v <= '9'; v++) {
    n = n * 10 + (unsigned)(*v - '0');
    if (n > STORAGE_TP_MAX) {
      n = STORAGE_TP_MAX;
      break;
    }
  }
  return n == 0 ? 1 : n;
}

/* Size of every non-pad, non-empty file (-1: missing, unusable or not a
 * regular file).  Folders are walked once per run of files sharing one. */
static void storage_scan_files(struct storage *s, int64_t *sizes)
{
  const struct manifest *m = s->m;
  int dfd = -1;
  int dir_rc = 0;
  const char *prev = NULL;
  size_t prev_len = 0;
  for (uint32_t i = 0; i < m->num_files; i++) {
    const struct manifest_file *f = &m->files[i];
    sizes[i] = -1;
    if (f->length == 0 || (f->attr & MANIFEST_ATTR_PAD)) {
      sizes[i] = 0;
      continue;
    }
    const char *leaf;
    size_t plen = 0;
    if (m->multi_file) {
      const char *slash = strrchr(f->path, '/');
      plen = slash ? (size_t)(slash - f->path) : 0;
    }
    if (prev == NULL || plen != prev_len || memcmp(prev, f->path, plen) != 0) {
      if (dfd >= 0)
        close(dfd);
      dfd = -1;
      dir_rc = storage_open_parent(s, i, false, &dfd, &leaf);
      if (dir_rc < 0)
        dfd = -1;
      prev = m->multi_file ? f->path : "";
      prev_len = plen;
    }
    if (dir_rc < 0) {
      if (dir_rc == SHOAL_EPATH && s->blocked < 0)
        s->blocked = i;                        /* a link or a file where a folder belongs */
      continue;
    }
    leaf = m->multi_file ? f->path + plen + (plen ? 1 : 0) : m->name;
    struct stat st;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISREG(st.st_mode))
        sizes[i] = (int64_t)st.st_size;
      else if (s->blocked < 0)
        s->blocked = i;                        /* a folder, link or special file in its place */
    }
  }
  if (dfd >= 0)
    close(dfd);
}

static void storage_check_scan_run(struct storage_req *r)
{
  struct storage_check *c = storage__container_of(r, struct storage_check, scan);
  struct storage *s = c->s;
  const struct manifest *m = s->m;
  int64_t *sizes = malloc(sizeof(*sizes) * m->num_files);
  if (sizes == NULL) {
    c->scan_result = UV_ENOMEM;
    return;
  }
  s->blocked = -1;
  storage_scan_files(s, sizes);
  uint32_t f = 0;
  for (uint32_t p = 0; p < m->num_pieces; p++) {
    uint64_t off = (uint64_t)p * m->piece_length;
    uint64_t end = off + storage_piece_size(s, p);
    while (f + 1 < m->num_files && m->files[f].offset + m->files[f].length <= off)
      f++;
    bool ok = true;
    for (uint32_t g = f; g < m->num_files && m->files[g].offset < end; g++) {
      const struct manifest_file *mf = &m->files[g];
      if (mf->length == 0 || (mf->attr & MANIFEST_ATTR_PAD))
        continue;
      uint64_t fend = mf->offset + mf->length;
      uint64_t need = (end < fend ? end : fend) - mf->offset;  /* bytes of the file up to the piece's end */
      if (sizes[g] < 0 || (uint64_t)sizes[g] < need) {
        ok = false;
        break;
      }
    }
    if (ok && (!c->masked || bitfield_get(&c->mask, p)))
      bitfield_set(&c->candidate, p);
  }
  free(sizes);
  c->scan_result = 0;
}

static void storage_check_slot_run(struct storage_req *r)
{
  struct storage_check_slot *slot = storage__container_of(r, struct storage_check_slot, req);
  struct storage *s = r->s;
  uint32_t size = storage_piece_size(s, slot->piece);
  int rc = storage_rw(s, (uint64_t)slot->piece * s->m->piece_length, slot->buf, NULL, size);
  if (rc < 0) {
    LOG_DEBUG("storage: check: piece %u unreadable: %s", slot->piece, shoal_strerror(rc));
    slot->match = false;
    return;
  }
  slot->match = storage_piece_matches(s, slot->piece, slot->buf, size);
}

static void storage_check_complete(struct storage_check *c, int status)
{
  storage_cb done = c->done;
  void *ctx = c->ctx;
  c->s->check = NULL;
  for (uint32_t i = 0; i < c->nslots; i++)
    free(c->slots[i].buf);
  free(c->slots);
  bitfield_free(&c->candidate);
  bitfield_free(&c->mask);
  free(c);
  done(ctx, status);
}

static void storage_check_slot_finish(struct storage_req *r, int status);

/* Queues candidate pieces up to the slot limit; counts the others as done. */
static void storage_check_pump(struct storage_check *c)
{
  struct storage *s = c->s;
  uint32_t n = s->m->num_pieces;
  while (c->next < n && c->active < c->nslots) {
    uint32_t p = c->next;
    if (!bitfield_get(&c->candidate, p)) {
      c->next++;
      c->done_count++;
      continue;
    }
    struct storage_check_slot *slot = NULL;
    for (uint32_t i = 0; i < c->nslots && slot == NULL; i++)
      if (!c->slots[i].busy)
        slot = &c->slots[i];
    if (slot->buf == NULL)
      slot->buf = malloc(s->m->piece_length);
    int rc = slot->buf == NULL ? UV_ENOMEM : 0;
    if (rc == 0) {
      slot->chk = c;
      slot->piece = p;
      slot->match = false;
      rc = storage_queue(s, &slot->req, storage_check_slot_run, storage_check_slot_finish);
    }
    if (rc < 0) {
      if (c->active == 0)
        c->error = rc;   /* nothing running that would retry later */
      return;
    }
    slot->busy = true;
    c->next++;
    c->active++;
    if (c->active > s->check_peak)
      s->check_peak = c->active;
  }
}

static void storage_check_step(struct storage_check *c)
{
  struct storage *s = c->s;
  if (!s->closing && c->error == 0)
    storage_check_pump(c);
  if (!s->closing && c->progress != NULL && c->done_count != c->reported) {
    c->reported = c->done_count;
    c->progress(c->ctx, c->done_count);  /* may start closing */
  }
  if (c->active > 0)
    return;
  if (s->closing)
    storage_check_complete(c, UV_ECANCELED);
  else if (c->error < 0)
    storage_check_complete(c, c->error);
  else if (c->next >= s->m->num_pieces)
    storage_check_complete(c, 0);
}

static void storage_check_scan_finish(struct storage_req *r, int status)
{
  struct storage_check *c = storage__container_of(r, struct storage_check, scan);
  if (status == 0 && c->scan_result < 0)
    c->error = c->scan_result;
  storage_check_step(c);
}

static void storage_check_slot_finish(struct storage_req *r, int status)
{
  struct storage_check_slot *slot = storage__container_of(r, struct storage_check_slot, req);
  struct storage_check *c = slot->chk;
  slot->busy = false;
  c->active--;
  if (status == 0) {
    c->done_count++;
    if (slot->match)
      bitfield_set(c->have, slot->piece);
  }
  storage_check_step(c);
}

/* ---- close ---- */

static void storage_close_work(uv_work_t *w)
{
  struct storage *s = storage__container_of(w, struct storage, close_work);
  for (uint32_t i = 0; i < STORAGE_FD_CACHE; i++)
    if (s->fds[i] != NULL)
      close(s->fds[i]->fd);
}

static void storage_close_done(uv_work_t *w, int status)
{
  (void)status;
  struct storage *s = storage__container_of(w, struct storage, close_work);
  void (*cb)(void *) = s->close_cb;
  void *ctx = s->close_ctx;
  for (uint32_t i = 0; i < STORAGE_FD_CACHE; i++)
    free(s->fds[i]);
  uv_cond_destroy(&s->fd_cond);
  uv_mutex_destroy(&s->fd_mu);
  free(s->dir);
  free(s->root);
  free(s->skip);
  free(s);
  if (cb != NULL)
    cb(ctx);
}

static void storage_close_step(struct storage *s)
{
  if (!s->closing || s->inflight > 0 || s->close_queued)
    return;
  s->close_queued = true;
  if (uv_queue_work(s->loop, &s->close_work, storage_close_work, storage_close_done) < 0) {
    /* cannot happen with valid arguments; do not leak the descriptors */
    storage_close_work(&s->close_work);
    storage_close_done(&s->close_work, 0);
  }
}

/* ---- public ---- */

int storage_open(struct storage **out, uv_loop_t *loop, const struct manifest *m, const char *dir)
{
  if (out == NULL || loop == NULL || m == NULL || dir == NULL || dir[0] == '\0')
    return UV_EINVAL;
  if (strnlen(dir, MANIFEST_MAX_PATH_LEN + 1) > MANIFEST_MAX_PATH_LEN)
    return UV_EINVAL;
  int rc = storage_check_manifest(m);
  if (rc < 0)
    return rc;
  struct storage *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return UV_ENOMEM;
  size_t dlen = strlen(dir), nlen = strlen(m->name);
  bool slash = dir[dlen - 1] == '/';
  s->dir = strdup(dir);
  s->root = malloc(dlen + 1 + nlen + 1);
  s->skip = calloc(m->num_files ? m->num_files : 1, 1);
  if (s->dir == NULL || s->root == NULL || s->skip == NULL) {
    free(s->dir);
    free(s->root);
    free(s->skip);
    free(s);
    return UV_ENOMEM;
  }
  snprintf(s->root, dlen + 1 + nlen + 1, "%s%s%s", dir, slash ? "" : "/", m->name);
  rc = uv_mutex_init(&s->fd_mu);
  if (rc == 0) {
    rc = uv_cond_init(&s->fd_cond);
    if (rc < 0)
      uv_mutex_destroy(&s->fd_mu);
  }
  if (rc < 0) {
    free(s->dir);
    free(s->root);
    free(s->skip);
    free(s);
    return rc;
  }
  s->loop = loop;
  s->m = m;
  s->blocked = -1;
  *out = s;
  return 0;
}

void storage_close(struct storage *s, void (*cb)(void *ctx), void *ctx)
{
  if (s->closing)
    return;
  s->closing = true;
  s->close_cb = cb;
  s->close_ctx = ctx;
  for (struct storage_req *r = s->reqs; r != NULL; r = r->next)
    uv_cancel((uv_req_t *)&r->work);  /* UV_EBUSY for running work: waited for */
  storage_close_step(s);
}

int storage_blocked_file(const struct storage *s)
{
  return s->blocked < 0 ? -1 : (int)s->blocked;
}

int storage_set_skip(struct storage *s, uint32_t file, bool skip)
{
  if (s == NULL || file >= s->m->num_files)
    return UV_EINVAL;
  __atomic_store_n(&s->skip[file], (uint8_t)skip, __ATOMIC_RELAXED);
  return 0;
}

uint32_t storage_piece_size(const struct storage *s, uint32_t piece)
{
  const struct manifest *m = s->m;
  if (piece >= m->num_pieces)
    return 0;
  if (piece + 1 < m->num_pieces)
    return m->piece_length;
  return (uint32_t)(m->total_length - (uint64_t)piece * m->piece_length);
}

int storage_write_piece(struct storage *s, uint32_t piece, const uint8_t *data, storage_cb cb, void *ctx)
{
  if (s->closing)
    return UV_ECANCELED;
  if (data == NULL || cb == NULL || piece >= s->m->num_pieces)
    return UV_EINVAL;
  struct storage_io *io = calloc(1, sizeof(*io));
  if (io == NULL)
    return UV_ENOMEM;
  io->piece = piece;
  io->wdata = data;
  io->cb = cb;
  io->ctx = ctx;
  return storage_io_submit(s, io, storage_write_run);
}

int storage_read(struct storage *s, uint32_t piece, uint32_t begin, uint32_t len, uint8_t *dst, storage_cb cb, void *ctx)
{
  if (s->closing)
    return UV_ECANCELED;
  if (dst == NULL || cb == NULL || piece >= s->m->num_pieces || len == 0)
    return UV_EINVAL;
  if ((uint64_t)begin + len > storage_piece_size(s, piece))
    return UV_EINVAL;
  struct storage_io *io = calloc(1, sizeof(*io));
  if (io == NULL)
    return UV_ENOMEM;
  io->piece = piece;
  io->begin = begin;
  io->len = len;
  io->rdata = dst;
  io->cb = cb;
  io->ctx = ctx;
  return storage_io_submit(s, io, storage_read_run);
}

int storage_check(struct storage *s, struct bitfield *have, storage_progress_cb progress, storage_cb done, void *ctx)
{
  return storage_check_some(s, have, NULL, progress, done, ctx);
}

int storage_check_some(struct storage *s, struct bitfield *have, const struct bitfield *only,
                       storage_progress_cb progress, storage_cb done, void *ctx)
{
  if (s->closing)
    return UV_ECANCELED;
  if (have == NULL || done == NULL || have->nbits != s->m->num_pieces || (only && only->nbits != have->nbits))
    return UV_EINVAL;
  if (s->check != NULL)
    return UV_EBUSY;
  struct storage_check *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return UV_ENOMEM;
  uint64_t n = 2ull * storage_threadpool_size();
  if (n > STORAGE_CHECK_MAX_INFLIGHT)
    n = STORAGE_CHECK_MAX_INFLIGHT;
  uint64_t by_mem = STORAGE_CHECK_MAX_BYTES / s->m->piece_length;
  if (n > by_mem)
    n = by_mem;
  if (n == 0)
    n = 1;
  c->nslots = (uint32_t)n;
  c->slots = calloc(c->nslots, sizeof(*c->slots));
  if (c->slots == NULL || bitfield_init(&c->candidate, s->m->num_pieces) < 0 ||
      (only && bitfield_dup(&c->mask, only) < 0)) {
    bitfield_free(&c->candidate);
    free(c->slots);
    free(c);
    return UV_ENOMEM;
  }
  c->s = s;
  c->have = have;
  c->progress = progress;
  c->done = done;
  c->ctx = ctx;
  c->masked = only != NULL;
  int rc = storage_queue(s, &c->scan, storage_check_scan_run, storage_check_scan_finish);
  if (rc < 0) {
    bitfield_free(&c->mask);
    bitfield_free(&c->candidate);
    free(c->slots);
    free(c);
    return rc;
  }
  if (only) {
    for (uint32_t i = 0; i < only->nbits; i++)
      if (bitfield_get(only, i))
        bitfield_clear(have, i);
  } else {
    bitfield_clear_all(have);
  }
  s->check = c;
  return 0;
}

int storage_finish(struct storage *s, storage_cb cb, void *ctx)
{
  if (s->closing)
    return UV_ECANCELED;
  if (cb == NULL)
    return UV_EINVAL;
  struct storage_io *io = calloc(1, sizeof(*io));
  if (io == NULL)
    return UV_ENOMEM;
  io->cb = cb;
  io->ctx = ctx;
  return storage_io_submit(s, io, storage_finish_run);
}

/* ---- releasing idle descriptors ---- */

static void storage_release_run(struct storage_req *r)
{
  struct storage *s = r->s;
  struct storage_fd *dead[STORAGE_FD_CACHE];
  uint32_t n = 0;
  uv_mutex_lock(&s->fd_mu);
  for (uint32_t i = 0; i < STORAGE_FD_CACHE; i++) {
    struct storage_fd *e = s->fds[i];
    if (e == NULL || e->refs > 0 || e->opening)
      continue;
    e->cached = false;
    s->fds[i] = NULL;
    dead[n++] = e;
  }
  uv_mutex_unlock(&s->fd_mu);
  for (uint32_t i = 0; i < n; i++)
    storage_fd_drop(dead[i]);
}

static void storage_release_finish(struct storage_req *r, int status)
{
  (void)status;
  free(r);
}

int storage_release_fds(struct storage *s)
{
  if (s->closing)
    return UV_ECANCELED;
  struct storage_req *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return UV_ENOMEM;
  int rc = storage_queue(s, r, storage_release_run, storage_release_finish);
  if (rc < 0)
    free(r);
  return rc;
}

const char *storage_root_path(const struct storage *s)
{
  return s->root;
}

int storage_file_path(const struct storage *s, uint32_t i, char *out, size_t outlen)
{
  if (i >= s->m->num_files || out == NULL || outlen == 0)
    return UV_EINVAL;
  int n = s->m->multi_file ? snprintf(out, outlen, "%s/%s", s->root, s->m->files[i].path)
                           : snprintf(out, outlen, "%s", s->root);
  if (n < 0 || (size_t)n >= outlen) {
    out[0] = '\0';
    return UV_ENOBUFS;
  }
  return 0;
}

void storage_get_stats(const struct storage *s, struct storage_stats *out)
{
  out->bytes_read = __atomic_load_n(&s->bytes_read, __ATOMIC_RELAXED);
  out->bytes_written = __atomic_load_n(&s->bytes_written, __ATOMIC_RELAXED);
  out->files_opened = __atomic_load_n(&s->files_opened, __ATOMIC_RELAXED);
  out->check_peak_inflight = s->check_peak;
}
