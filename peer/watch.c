/* watch.c -- the daemon's watch folder: settled .torrent files found on the threadpool, handed over once, renamed. */
#include "peer/watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define WATCH_MAX_CANDS 256u    /* files remembered between scans (the rest wait for room) */
#define WATCH_MAX_NAME 4096u    /* bytes of one entry name, NUL included; longer ones are skipped */
#define WATCH_MAX_READS 4u      /* files being read at once */
#define WATCH_MAX_SUFFIX 1000u  /* "<name>.added", "<name>.added.1" .. "<name>.added.999" */
#define WATCH_SOON_MS 200u      /* a change reported by the fs event -> a scan this much later */
#define WATCH_SUFFIX ".torrent"
#define WATCH_SUFFIX_LEN (sizeof WATCH_SUFFIX - 1)

/* One .torrent file the watch knows about, by name, with what it looked
 * like ("identity") at the last scan. */
enum cand_state {
  CAND_SETTLING,  /* waiting for its identity to hold WATCH_SETTLE_MS */
  CAND_QUEUED,    /* settled; waits for a read slot */
  CAND_BUSY,      /* being read, handed over or renamed */
  CAND_DONE,      /* rename failed: not offered again while it stays the same */
};

struct ident {
  uint64_t dev, ino, size;
  int64_t mtime_s, mtime_ns;
};

struct cand {
  char *name;           /* NULL = free slot */
  struct ident id;
  uint64_t since;       /* uv_now when this identity was first seen */
  uint64_t not_before;  /* not offered before (after WATCH_RETRY) */
  enum cand_state state;
  bool seen;            /* listed by the scan being merged */
};

struct watch {
  uv_loop_t *loop;
  char *dir;            /* absolute, no trailing '/' (except "/" itself); never changes */
  watch_cb cb;
  void *ctx;
  watch_parse_fn parse;  /* set before the first read; read by read jobs */
  void (*free_parsed)(void *obj);
  uv_timer_t timer;
  uv_fs_event_t ev;     /* active while it watches the folder */
  uint64_t ev_dev, ev_ino;  /* the folder the fs event watches */
  bool scanning;
  bool rescan;          /* something asked for a scan while one ran */
  bool warned;          /* the folder is missing (or unreadable) and that was said */
  unsigned reads;       /* read jobs on the threadpool */
  unsigned pending;     /* all jobs on the threadpool */
  unsigned closing;     /* handles not closed yet (after watch_stop) */
  bool stopping;
  void (*stop_cb)(void *ctx);
  void *stop_ctx;
  struct cand cands[WATCH_MAX_CANDS];
};

/* ---- jobs (their work functions touch only the job, w->dir and w->parse) ---- */

struct scan_ent {
  char *name;
  struct ident id;
};

struct scan_job {
  uv_work_t req;
  struct watch *w;
  const char *dir;
  int err;              /* 0 or what opendir said */
  uint64_t dir_dev, dir_ino;
  size_t n;
  struct scan_ent ents[WATCH_MAX_CANDS];
};

enum read_result { READ_OK, READ_GONE, READ_CHANGED, READ_TOOBIG, READ_FAIL, READ_INVALID };

struct read_job {
  uv_work_t req;
  struct watch *w;
  size_t slot;
  char *path;
  struct ident expect;
  enum read_result result;
  int err;              /* READ_FAIL: the errno code (negative) */
  uint64_t size;        /* READ_TOOBIG: the size found */
  uint8_t *data;
  size_t len;
  void *parsed;         /* READ_OK with a parser: what it made of data */
  char why[SHOAL_ERRLEN];  /* READ_INVALID: the parser's reason */
};

struct rename_job {
  uv_work_t req;
  struct watch *w;
  size_t slot;
  char *path;
  const char *suffix;   /* ".added" or ".invalid" */
  int err;
  char *to;             /* the name it got (or the last one tried) */
};

static void scan_start(struct watch *w);
static void pump(struct watch *w);

static bool ident_eq(const struct ident *a, const struct ident *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_s == b->mtime_s &&
         a->mtime_ns == b->mtime_ns;
}

static void ident_of(const struct stat *st, struct ident *id)
{
  id->dev = (uint64_t)st->st_dev;
  id->ino = (uint64_t)st->st_ino;
  id->size = (uint64_t)st->st_size;
  id->mtime_s = (int64_t)st->st_mtim.tv_sec;
  id->mtime_ns = (int64_t)st->st_mtim.tv_nsec;
}

/* "<dir>/<name>" as a new string, or NULL. */
static char *join(const char *dir, const char *name)
{
  size_t dl = strlen(dir), nl = strlen(name);
  bool slash = dl > 0 && dir[dl - 1] == '/';
  char *p = malloc(dl + nl + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, dir, dl);
  size_t o = dl;
  if (!slash)
    p[o++] = '/';
  memcpy(p + o, name, nl + 1);
  return p;
}

static void cand_drop(struct cand *c)
{
  free(c->name);
  memset(c, 0, sizeof *c);
}

/* ---- lifetime ---- */

static void maybe_finish(struct watch *w)
{
  if (!w->stopping || w->closing > 0 || w->pending > 0)
    return;
  for (size_t i = 0; i < WATCH_MAX_CANDS; i++)
    cand_drop(&w->cands[i]);
  void (*cb)(void *) = w->stop_cb;
  void *ctx = w->stop_ctx;
  free(w->dir);
  free(w);
  if (cb)
    cb(ctx);
}

static void on_close(uv_handle_t *h)
{
  struct watch *w = h->data;
  w->closing--;
  maybe_finish(w);
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t)
{
  struct watch *w = container_of(t, struct watch, timer);
  scan_start(w);
}

/* Makes the timer fire at `due` (uv_now time) unless it fires earlier already. */
static void timer_at(struct watch *w, uint64_t due)
{
  if (w->stopping)
    return;
  uint64_t now = uv_now(w->loop);
  if (uv_is_active((uv_handle_t *)&w->timer) && now + uv_timer_get_due_in(&w->timer) <= due)
    return;
  uv_timer_start(&w->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- fs event ---- */

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
  struct watch *w = container_of(h, struct watch, ev);
  if (w->stopping)
    return;
  if (status < 0) {
    /* The watch broke; the rescan timer carries on, the next scan that
     * finds the folder starts a new one. */
    LOG_DEBUG("watch folder %s: change events stopped: %s", w->dir, uv_strerror(status));
    uv_fs_event_stop(&w->ev);
    return;
  }
  timer_at(w, uv_now(w->loop) + WATCH_SOON_MS);
}

/* The folder (dev, ino) exists: watch it for changes if not done already
 * (a folder removed and made again is a new one). */
static void fs_event_on(struct watch *w, uint64_t dev, uint64_t ino)
{
  if (uv_is_active((uv_handle_t *)&w->ev) && w->ev_dev == dev && w->ev_ino == ino)
    return;
  uv_fs_event_stop(&w->ev);   /* a no-op when not watching */
  int r = uv_fs_event_start(&w->ev, on_fs_event, w->dir, 0);
  if (r < 0) {
    LOG_DEBUG("watch folder %s: no change events (%s); rescanning every %u ms", w->dir, uv_strerror(r),
              WATCH_SCAN_MS);
    return;
  }
  w->ev_dev = dev;
  w->ev_ino = ino;
}

/* ---- scan ---- */

static void scan_work(uv_work_t *req)
{
  struct scan_job *j = container_of(req, struct scan_job, req);
  DIR *d = opendir(j->dir);
  if (d == NULL) {
    j->err = -errno;
    return;
  }
  int dfd = dirfd(d);
  struct stat st;
  if (fstat(dfd, &st) == 0) {
    j->dir_dev = (uint64_t)st.st_dev;
    j->dir_ino = (uint64_t)st.st_ino;
  }
  struct dirent *de;
  while (j->n < WATCH_MAX_CANDS && (de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    size_t len = strlen(name);   /* d_name is NUL-terminated (at most NAME_MAX bytes on Linux) */
    if (len >= WATCH_MAX_NAME || len <= WATCH_SUFFIX_LEN ||
        strcasecmp(name + len - WATCH_SUFFIX_LEN, WATCH_SUFFIX) != 0)
      continue;
    if (de->d_type != DT_UNKNOWN && de->d_type != DT_REG)
      continue;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    char *copy = strdup(name);
    if (copy == NULL)
      break;
    j->ents[j->n].name = copy;
    ident_of(&st, &j->ents[j->n].id);
    j->n++;
  }
  closedir(d);
}

static void scan_job_free(struct scan_job *j)
{
  for (size_t i = 0; i < j->n; i++)
    free(j->ents[i].name);
  free(j);
}

static struct cand *cand_find(struct watch *w, const char *name)
{
  for (size_t i = 0; i < WATCH_MAX_CANDS; i++)
    if (w->cands[i].name && strcmp(w->cands[i].name, name) == 0)
      return &w->cands[i];
  return NULL;
}

static struct cand *cand_free_slot(struct watch *w)
{
  for (size_t i = 0; i < WATCH_MAX_CANDS; i++)
    if (w->cands[i].name == NULL)
      return &w->cands[i];
  return NULL;
}

/* Folds a listing into the candidates and queues those that settled. */
static void merge(struct watch *w, struct scan_job *j, uint64_t now)
{
  for (size_t i = 0; i < WATCH_MAX_CANDS; i++)
    w->cands[i].seen = false;
  for (size_t k = 0; k < j->n; k++) {
    struct scan_ent *e = &j->ents[k];
    struct cand *c = cand_find(w, e->name);
    if (c) {
      c->seen = true;
      if (c->state == CAND_QUEUED || c->state == CAND_BUSY)
        continue;
      if (!ident_eq(&c->id, &e->id)) {
        c->id = e->id;
        c->since = now;
        c->state = CAND_SETTLING;
      }
      continue;
    }
    c = cand_free_slot(w);
    if (c == NULL)
      continue;   /* the table is full: it waits for room */
    c->name = e->name;
    e->name = NULL;
    c->id = e->id;
    c->since = now;
    c->not_before = 0;
    c->state = CAND_SETTLING;
    c->seen = true;
  }
  unsigned inflight = 0;
  for (size_t i = 0; i < WATCH_MAX_CANDS; i++) {
    struct cand *c = &w->cands[i];
    if (c->name == NULL)
      continue;
    if (!c->seen && c->state != CAND_BUSY)
      cand_drop(c);   /* gone (or renamed by someone else) */
    else if (c->state == CAND_QUEUED || c->state == CAND_BUSY)
      inflight++;
  }
  unsigned budget = inflight < WATCH_MAX_PER_SCAN ? WATCH_MAX_PER_SCAN - inflight : 0;
  for (size_t i = 0; i < WATCH_MAX_CANDS && budget > 0; i++) {
    struct cand *c = &w->cands[i];
    if (c->name && c->state == CAND_SETTLING && now >= c->since + WATCH_SETTLE_MS && now >= c->not_before) {
      c->state = CAND_QUEUED;
      budget--;
    }
  }
}

/* Arms the timer for the next scan: the periodic one, sooner when a
 * candidate settles or a change was reported during the scan. */
static void schedule(struct watch *w, uint64_t now)
{
  uint64_t next = now + WATCH_SCAN_MS;
  if (w->rescan) {
    w->rescan = false;
    next = now + WATCH_SOON_MS;
  }
  for (size_t i = 0; i < WATCH_MAX_CANDS; i++) {
    const struct cand *c = &w->cands[i];
    if (c->name == NULL || c->state != CAND_SETTLING)
      continue;
    uint64_t t = c->since + WATCH_SETTLE_MS;
    if (t < c->not_before)
      t = c->not_before;
    /* One ready already but left out (the per-scan budget is spent) waits
     * for the periodic scan: no scanning back to back. */
    if (t > now && t < next)
      next = t;
  }
  timer_at(w, next);
}

static void scan_done(uv_work_t *req, int status)
{
  struct scan_job *j = container_of(req, struct scan_job, req);
  struct watch *w = j->w;
  w->scanning = false;
  w->pending--;
  if (w->stopping) {
    scan_job_free(j);
    maybe_finish(w);
    return;
  }
  uint64_t now = uv_now(w->loop);
  int err = status < 0 ? status : j->err;
  if (err < 0) {
    if (!w->warned) {
      LOG_WARN("watch folder %s: %s; looking for it again every %u ms", w->dir, uv_strerror(err),
               WATCH_SCAN_MS);
      w->warned = true;
    }
    uv_fs_event_stop(&w->ev);
    for (size_t i = 0; i < WATCH_MAX_CANDS; i++)
      if (w->cands[i].name && w->cands[i].state != CAND_BUSY)
        cand_drop(&w->cands[i]);
  } else {
    if (w->warned) {
      LOG_INFO("watch folder %s: found", w->dir);
      w->warned = false;
    }
    fs_event_on(w, j->dir_dev, j->dir_ino);
    merge(w, j, now);
  }
  scan_job_free(j);
  schedule(w, now);
  pump(w);
}

static void scan_start(struct watch *w)
{
  if (w->stopping)
    return;
  if (w->scanning) {
    w->rescan = true;
    return;
  }
  struct scan_job *j = calloc(1, sizeof *j);
  if (j) {
    j->w = w;
    j->dir = w->dir;
  }
  if (j == NULL || uv_queue_work(w->loop, &j->req, scan_work, scan_done) < 0) {
    free(j);
    LOG_WARN("watch folder %s: cannot scan (out of memory); trying again in %u ms", w->dir, WATCH_SCAN_MS);
    timer_at(w, uv_now(w->loop) + WATCH_SCAN_MS);
    return;
  }
  w->scanning = true;
  w->pending++;
}

/* ---- rename ---- */

/* rename(from, to) that fails with EEXIST instead of replacing to.  0 or -1
 * with errno. */
static int rename_noreplace(const char *from, const char *to)
{
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    return -1;
  /* The file system cannot do that: a hard link refuses an existing name too. */
  if (link(from, to) == 0) {
    if (unlink(from) == 0)
      return 0;
    int e = errno;
    unlink(to);
    errno = e;
    return -1;
  }
  if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP)
    return -1;
  /* Neither (FAT and the like): look first.  Only another writer choosing
   * the very same new name at the same moment could be overwritten. */
  struct stat st;
  if (lstat(to, &st) == 0) {
    errno = EEXIST;
    return -1;
  }
  if (errno != ENOENT)
    return -1;
  return rename(from, to);
}

static void rename_work(uv_work_t *req)
{
  struct rename_job *j = container_of(req, struct rename_job, req);
  size_t base = strlen(j->path) + strlen(j->suffix);
  size_t cap = base + 16;
  j->to = malloc(cap);
  if (j->to == NULL) {
    j->err = UV_ENOMEM;
    return;
  }
  j->err = UV_EEXIST;
  for (unsigned i = 0; i < WATCH_MAX_SUFFIX; i++) {
    if (i == 0)
      snprintf(j->to, cap, "%s%s", j->path, j->suffix);
    else
      snprintf(j->to, cap, "%s%s.%u", j->path, j->suffix, i);
    if (rename_noreplace(j->path, j->to) == 0) {
      j->err = 0;
      return;
    }
    if (errno != EEXIST) {
      j->err = -errno;
      return;
    }
  }
}

static void rename_done(uv_work_t *req, int status)
{
  struct rename_job *j = container_of(req, struct rename_job, req);
  struct watch *w = j->w;
  struct cand *c = &w->cands[j->slot];
  w->pending--;
  int err = status < 0 ? status : j->err;
  if (err == 0) {
    LOG_DEBUG("watch: renamed %s to %s", j->path, j->to);
    cand_drop(c);
  } else {
    LOG_WARN("watch: cannot rename %s to %s%s: %s", j->path, j->to ? j->to : j->path,
             j->to ? "" : j->suffix, uv_strerror(err));
    c->state = CAND_DONE;
  }
  free(j->path);
  free(j->to);
  free(j);
  if (w->stopping)
    maybe_finish(w);
  else
    pump(w);
}

/* Renames the candidate's file to path+suffix (takes path).  Also while
 * stopping: the daemon has the file already. */
static void rename_start(struct watch *w, size_t slot, char *path, const char *suffix)
{
  struct rename_job *j = calloc(1, sizeof *j);
  if (j) {
    j->w = w;
    j->slot = slot;
    j->path = path;
    j->suffix = suffix;
  }
  if (j == NULL || uv_queue_work(w->loop, &j->req, rename_work, rename_done) < 0) {
    LOG_WARN("watch: cannot rename %s to %s: out of memory", path, suffix);
    free(j);
    free(path);
    w->cands[slot].state = CAND_DONE;
    return;
  }
  w->cands[slot].state = CAND_BUSY;
  w->pending++;
}

/* ---- read ---- */

static void read_work(uv_work_t *req)
{
  struct read_job *j = container_of(req, struct read_job, req);
  /* O_NONBLOCK: if a FIFO took the file's place, open must not wait. */
  int fd = open(j->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT || errno == ELOOP || errno == ENXIO) {
      j->result = READ_GONE;   /* gone, or no longer a regular file */
    } else {
      j->result = READ_FAIL;
      j->err = -errno;
    }
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    j->result = READ_FAIL;
    j->err = -errno;
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    j->result = READ_GONE;
    goto out;
  }
  struct ident now;
  ident_of(&st, &now);
  if (st.st_size < 0 || (uint64_t)st.st_size > WATCH_MAX_FILE) {
    if (now.dev == j->expect.dev && now.ino == j->expect.ino && now.size == j->expect.size) {
      j->result = READ_TOOBIG;
      j->size = (uint64_t)st.st_size;
    } else {
      j->result = READ_CHANGED;
    }
    goto out;
  }
  if (!ident_eq(&now, &j->expect)) {
    j->result = READ_CHANGED;
    goto out;
  }
  /* One byte more than expected, to see a file that still grows. */
  size_t want = (size_t)st.st_size;
  j->data = malloc(want + 1);
  if (j->data == NULL) {
    j->result = READ_FAIL;
    j->err = UV_ENOMEM;
    goto out;
  }
  size_t got = 0;
  while (got < want + 1) {
    ssize_t n = read(fd, j->data + got, want + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      j->result = READ_FAIL;
      j->err = -errno;
      goto out;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (got != want) {
    j->result = READ_CHANGED;
    goto out;
  }
  j->len = got;
  j->result = READ_OK;
  if (j->w->parse && (j->parsed = j->w->parse(j->data, j->len, j->why, sizeof j->why)) == NULL)
    j->result = READ_INVALID;
out:
  close(fd);
}

static void read_done(uv_work_t *req, int status)
{
  struct read_job *j = container_of(req, struct read_job, req);
  struct watch *w = j->w;
  struct cand *c = &w->cands[j->slot];
  w->pending--;
  w->reads--;
  if (w->stopping) {
    if (j->parsed && w->free_parsed)
      w->free_parsed(j->parsed);
    free(j->data);
    free(j->path);
    free(j);
    maybe_finish(w);
    return;
  }
  uint64_t now = uv_now(w->loop);
  enum read_result result = status < 0 ? READ_FAIL : j->result;
  int err = status < 0 ? status : j->err;
  char *path = j->path;
  j->path = NULL;
  switch (result) {
  case READ_GONE:
    cand_drop(c);
    break;
  case READ_CHANGED:
    /* Seen changing: it settles again from now (the next scan gives its
     * new identity). */
    c->state = CAND_SETTLING;
    c->since = now;
    c->id.size = UINT64_MAX;
    timer_at(w, now + WATCH_SETTLE_MS);
    break;
  case READ_TOOBIG:
    LOG_WARN("watch: %s: too large (%" PRIu64 " bytes, at most %u); renaming it .invalid", path, j->size,
             WATCH_MAX_FILE);
    rename_start(w, j->slot, path, ".invalid");
    path = NULL;
    break;
  case READ_FAIL:
    if (err == UV_ENOMEM) {   /* our problem, not the file's: later */
      c->state = CAND_SETTLING;
      c->not_before = now + WATCH_SCAN_MS;
      timer_at(w, c->not_before);
      break;
    }
    LOG_WARN("watch: %s: cannot read it (%s); renaming it .invalid", path, uv_strerror(err));
    rename_start(w, j->slot, path, ".invalid");
    path = NULL;
    break;
  case READ_INVALID:
    LOG_WARN("watch: %s is invalid (%s); renaming it .invalid", path, j->why);
    rename_start(w, j->slot, path, ".invalid");
    path = NULL;
    break;
  case READ_OK: {
    enum watch_verdict v = w->cb(w->ctx, path, j->data, j->len, j->parsed);
    j->parsed = NULL;
    free(j->data);
    j->data = NULL;
    /* The callback may have called watch_stop: the verdict still counts
     * (the daemon may hold the torrent now), so the rename goes on. */
    if (v == WATCH_ADDED || v == WATCH_INVALID) {
      rename_start(w, j->slot, path, v == WATCH_ADDED ? ".added" : ".invalid");
      path = NULL;
    } else {
      c->state = CAND_SETTLING;
      c->not_before = now + WATCH_SCAN_MS;
      timer_at(w, c->not_before);
    }
    break;
  }
  }
  free(path);
  free(j->data);
  free(j);
  if (w->stopping)
    maybe_finish(w);
  else
    pump(w);
}

/* Starts reading queued candidates while read slots are free. */
static void pump(struct watch *w)
{
  for (size_t i = 0; i < WATCH_MAX_CANDS && !w->stopping && w->reads < WATCH_MAX_READS; i++) {
    struct cand *c = &w->cands[i];
    if (c->name == NULL || c->state != CAND_QUEUED)
      continue;
    struct read_job *j = calloc(1, sizeof *j);
    char *path = join(w->dir, c->name);
    if (j == NULL || path == NULL) {
      free(j);
      free(path);
      return;   /* it stays queued */
    }
    j->w = w;
    j->slot = i;
    j->path = path;
    j->expect = c->id;
    if (uv_queue_work(w->loop, &j->req, read_work, read_done) < 0) {
      free(path);
      free(j);
      return;
    }
    c->state = CAND_BUSY;
    w->reads++;
    w->pending++;
  }
}

/* ---- public ---- */

void watch_set_parser(struct watch *w, watch_parse_fn parse, void (*free_parsed)(void *obj))
{
  w->parse = parse;
  w->free_parsed = free_parsed;
}

int watch_start(uv_loop_t *loop, const char *dir, watch_cb cb, void *ctx, struct watch **out)
{
  if (loop == NULL || dir == NULL || cb == NULL || out == NULL || dir[0] != '/' ||
      strnlen(dir, WATCH_MAX_NAME) >= WATCH_MAX_NAME)
    return UV_EINVAL;
  struct watch *w = calloc(1, sizeof *w);
  if (w == NULL)
    return UV_ENOMEM;
  w->dir = strdup(dir);
  if (w->dir == NULL) {
    free(w);
    return UV_ENOMEM;
  }
  size_t dl = strlen(w->dir);
  while (dl > 1 && w->dir[dl - 1] == '/')
    w->dir[--dl] = 0;
  w->loop = loop;
  w->cb = cb;
  w->ctx = ctx;
  uv_timer_init(loop, &w->timer);
  w->timer.data = w;
  uv_fs_event_init(loop, &w->ev);
  w->ev.data = w;
  scan_start(w);
  *out = w;
  return 0;
}

void watch_stop(struct watch *w, void (*cb)(void *ctx), void *ctx)
{
  if (w == NULL || w->stopping)
    return;
  w->stopping = true;
  w->stop_cb = cb;
  w->stop_ctx = ctx;
  w->closing = 2;
  uv_close((uv_handle_t *)&w->timer, on_close);
  uv_close((uv_handle_t *)&w->ev, on_close);
}
