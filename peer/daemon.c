/* daemon.c -- `shoal daemon`: the engine with a queue, persistence, a control API, a watch folder and signals. */
#include "peer/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "common/err.h"
#include "common/filesel.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/magnet.h"
#include "common/util.h"
#include "peer/daemon-int.h"
#include "peer/queue.h"
#include "peer/watch.h"

#define EXIT_USAGE 2
#define EXIT_RUNTIME 1

static void reconcile(struct daemon *d);
static void dt_save(struct dt *x);
static void dt_free(struct dt *x);
static void maybe_finish(struct dt *x);

/* ---- small helpers ---- */

static char *path_join(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *p = malloc(la + 1 + lb + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, a, la);
  p[la] = '/';
  memcpy(p + la + 1, b, lb + 1);
  return p;
}

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

/* mkdir -p with mode for the last component (blocking: start-up only). */
static int make_dirs(const char *path, mode_t mode)
{
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
    return UV_ENAMETOOLONG;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(tmp, mode) != 0 && errno != EEXIST)
    return -errno;
  struct stat st;
  if (stat(tmp, &st) != 0)
    return -errno;
  return S_ISDIR(st.st_mode) ? 0 : UV_ENOTDIR;
}

static void set_str(char **dst, const char *s)
{
  char *n = xstrdup(s);
  if (n == NULL)
    return;
  free(*dst);
  *dst = n;
}

/* Deep copy of a resume record (dst owns nothing before).  0 or UV_ENOMEM. */
static int rs_copy(struct resume *dst, const struct resume *src)
{
  *dst = *src;
  dst->name = xstrdup(src->name);
  dst->download_dir = xstrdup(src->download_dir);
  dst->error = xstrdup(src->error);
  dst->files = NULL;
  dst->peers = NULL;
  memset(&dst->have, 0, sizeof dst->have);
  bool ok = dst->name && dst->download_dir && dst->error;
  if (ok && src->num_files) {
    dst->files = malloc(src->num_files * sizeof *dst->files);
    ok = dst->files != NULL;
    if (ok)
      memcpy(dst->files, src->files, src->num_files * sizeof *dst->files);
  }
  if (ok && src->num_peers) {
    dst->peers = malloc(src->num_peers * sizeof *dst->peers);
    ok = dst->peers != NULL;
    if (ok)
      memcpy(dst->peers, src->peers, src->num_peers * sizeof *dst->peers);
  }
  if (ok && src->have.nbits)
    ok = bitfield_dup(&dst->have, &src->have) == 0;
  if (!ok) {
    resume_free(dst);
    return UV_ENOMEM;
  }
  return 0;
}

/* ---- sd_notify (systemd Type=notify), written out: one datagram ---- */

static void sd_notify_send(const char *msg)
{
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || (path[0] != '/' && path[0] != '@'))
    return;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  size_t len = strlen(path);
  if (len >= sizeof sa.sun_path)
    return;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = 0;                      /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
    LOG_DEBUG("sd_notify: %s", strerror(errno));
  close(fd);
}

/* ---- files of a torrent ---- */

static char **make_paths(const char *dir, const struct manifest *m)
{
  char **p = calloc(m->num_files ? m->num_files : 1, sizeof *p);
  if (p == NULL)
    return NULL;
  for (uint32_t i = 0; i < m->num_files; i++) {
    const char *rel = m->files[i].path;
    size_t n = strlen(dir) + strlen(m->name) + strlen(rel) + 3;
    if ((p[i] = malloc(n)) == NULL)
      goto fail;
    if (m->multi_file)
      snprintf(p[i], n, "%s/%s/%s", dir, m->name, rel);
    else
      snprintf(p[i], n, "%s/%s", dir, m->name);
  }
  return p;
fail:
  for (uint32_t i = 0; i < m->num_files; i++)
    free(p[i]);
  free(p);
  return NULL;
}

static void free_paths(char **p, uint32_t n)
{
  if (p == NULL)
    return;
  for (uint32_t i = 0; i < n; i++)
    free(p[i]);
  free(p);
}

/* Threadpool: the stamp of each file (size -1 when missing or not a regular
 * file); each entry's priority is left as it is. */
static void stat_files(char *const *paths, uint32_t n, struct resume_file *out)
{
  for (uint32_t i = 0; i < n; i++) {
    struct stat st;
    out[i].size = -1;
    out[i].mtime_s = 0;
    out[i].mtime_ns = 0;
    if (lstat(paths[i], &st) == 0 && S_ISREG(st.st_mode)) {
      out[i].size = (int64_t)st.st_size;
      out[i].mtime_s = (int64_t)st.st_mtim.tv_sec;
      out[i].mtime_ns = (int32_t)st.st_mtim.tv_nsec;
    }
  }
}

/* Wanted bytes and whether every wanted piece is held, from a bitfield and priorities. */
static void count_have(const struct manifest *m, const struct bitfield *have, const struct resume_file *files,
                       uint64_t *wanted, uint64_t *held, bool *complete)
{
  *wanted = 0;
  *held = 0;
  bool all = true;
  for (uint32_t p = 0; p < m->num_pieces; p++) {
    uint64_t start = (uint64_t)p * m->piece_length, end = start + manifest_piece_size(m, p);
    bool want = files == NULL;
    for (int f = manifest_file_at(m, start); !want && f >= 0 && (uint32_t)f < m->num_files && m->files[f].offset < end; f++)
      want = files[f].priority > 0 && m->files[f].length > 0 && !(m->files[f].attr & MANIFEST_ATTR_PAD);
    if (!want)
      continue;
    uint32_t sz = manifest_piece_size(m, p);
    *wanted += sz;
    if (have->nbits == m->num_pieces && bitfield_get(have, p))
      *held += sz;
    else
      all = false;
  }
  *complete = all;
}

/* ---- one torrent ---- */

static struct dt *dt_new(struct daemon *d, const uint8_t ih[20])
{
  struct dt *x = calloc(1, sizeof *x);
  if (x == NULL)
    return NULL;
  x->d = d;
  memcpy(x->ih, ih, 20);
  hash_hex(ih, 20, x->hex);
  memcpy(x->rs.infohash, ih, 20);
  x->rs.seed_ratio_milli = -1;
  x->rs.seed_idle_s = -1;
  x->rs.state = RESUME_ACTIVE;
  x->rs.name = xstrdup("");
  x->rs.download_dir = xstrdup(d->set.download_dir);
  x->rs.error = xstrdup("");
  if (x->rs.name == NULL || x->rs.download_dir == NULL || x->rs.error == NULL) {
    resume_free(&x->rs);
    free(x);
    return NULL;
  }
  return x;
}

static void dt_free(struct dt *x)
{
  resume_free(&x->rs);
  if (x->m)
    manifest_free(x->m);
  free(x->magnet);
  free(x->pending_only);
  free_paths(x->paths, x->num_files);
  free(x);
}

/* The manifest is known: sizes, paths, a record that fits it. */
static int dt_take_manifest(struct dt *x, const struct manifest *m)
{
  char **paths = make_paths(x->rs.download_dir, m);
  if (paths == NULL)
    return UV_ENOMEM;
  free_paths(x->paths, x->num_files);
  x->paths = paths;
  x->num_files = m->num_files;
  x->num_pieces = m->num_pieces;
  x->size = m->total_length;
  set_str(&x->rs.name, m->name);
  if (x->rs.num_files != m->num_files || x->rs.have.nbits != m->num_pieces) {
    /* a fresh record (a new add, a magnet's metadata, or one that did not fit) */
    free(x->rs.files);
    x->rs.files = calloc(m->num_files ? m->num_files : 1, sizeof *x->rs.files);
    bitfield_free(&x->rs.have);
    if (x->rs.files == NULL || bitfield_init(&x->rs.have, m->num_pieces) < 0)
      return UV_ENOMEM;
    x->rs.num_files = m->num_files;
    for (uint32_t i = 0; i < m->num_files; i++)
      x->rs.files[i] = (struct resume_file){ .size = -1, .priority = 1 };
    x->has_hint = false;
  }
  count_have(m, &x->rs.have, x->rs.files, &x->wanted, &x->have, &x->complete);
  return 0;
}

const char *dt_error(const struct dt *x) { return x->rs.error ? x->rs.error : ""; }

void dt_stats(const struct dt *x, struct torrent_stats *st, uint64_t *up_total, uint64_t *down_total)
{
  if (x->t) {
    torrent_get_stats(x->t, st);
    *up_total = x->base_up + st->uploaded;
    *down_total = x->base_down + st->downloaded;
    return;
  }
  memset(st, 0, sizeof *st);
  st->total_bytes = x->wanted;
  st->have_bytes = x->have;
  st->num_pieces = x->num_pieces;
  st->have_pieces = x->rs.have.count;
  *up_total = x->rs.uploaded;
  *down_total = x->rs.downloaded;
}

const char *dt_state_name(const struct dt *x)
{
  if (x->rs.error && x->rs.error[0])
    return "error";
  if (x->t) {
    struct torrent_stats st;
    torrent_get_stats(x->t, &st);
    switch (st.state) {
    case TORRENT_METADATA: return "metadata";
    case TORRENT_CHECKING: return "checking";
    case TORRENT_DOWNLOADING: return "downloading";
    case TORRENT_SEEDING: return "seeding";
    case TORRENT_STOPPING: return "stopping";
    case TORRENT_ERROR: return "error";
    }
  }
  if (x->starting)
    return "checking";
  if (x->rs.state == RESUME_PAUSED)
    return "paused";
  if (x->qstate == QUEUE_WAIT_DOWNLOAD || x->qstate == QUEUE_WAIT_SEED)
    return "queued";
  return "stopped";
}

/* Takes the running torrent's state into the record (loop thread). */
static void dt_snapshot(struct dt *x)
{
  if (x->t == NULL)
    return;
  struct torrent_stats st;
  torrent_get_stats(x->t, &st);
  uint64_t up = x->base_up + st.uploaded, down = x->base_down + st.downloaded;
  if (up != x->rs.uploaded || down != x->rs.downloaded)
    x->dirty = true;
  x->rs.uploaded = up;
  x->rs.downloaded = down;
  const struct manifest *m = torrent_manifest(x->t);
  if (x->paths == NULL || st.state == TORRENT_METADATA)
    return;
  if (st.state != TORRENT_CHECKING) {
    struct bitfield have;
    if (torrent_copy_have(x->t, &have) == 0) {
      if (have.count != x->rs.have.count || have.nbits != x->rs.have.nbits)
        x->dirty = true;
      bitfield_free(&x->rs.have);
      x->rs.have = have;
      x->has_hint = true;
    }
  }
  const uint8_t *prio = torrent_file_priorities(x->t);
  for (uint32_t i = 0; i < x->rs.num_files && i < m->num_files; i++)
    x->rs.files[i].priority = prio ? prio[i] : 1;
  count_have(m, &x->rs.have, x->rs.files, &x->wanted, &x->have, &x->complete);
  if (st.state == TORRENT_SEEDING)
    x->complete = true;
}

/* ---- saving a record (threadpool) ---- */

struct save_job {
  uv_work_t req;
  struct dt *x;
  struct resume rs;
  char *path;
  int err;
  char msg[SHOAL_ERRLEN];
};

static void save_work(uv_work_t *req)
{
  struct save_job *j = container_of(req, struct save_job, req);
  if (j->rs.num_files && j->x->paths)
    stat_files(j->x->paths, j->rs.num_files, j->rs.files);
  struct buf b;
  j->err = resume_encode(&j->rs, &b, j->msg, sizeof j->msg);
  if (j->err < 0)
    return;
  j->err = resume_write_atomic(j->path, b.p, b.len);
  if (j->err < 0)
    snprintf(j->msg, sizeof j->msg, "%s", uv_strerror(j->err));
  buf_free(&b);
}

static void save_done(uv_work_t *req, int status)
{
  struct save_job *j = container_of(req, struct save_job, req);
  struct dt *x = j->x;
  x->saving = false;
  x->busy--;
  if (status == 0 && j->err == 0) {
    /* the stamps just taken vouch for the have bits of the snapshot */
    for (uint32_t i = 0; j->rs.num_files == x->rs.num_files && i < x->rs.num_files; i++) {
      x->rs.files[i].size = j->rs.files[i].size;   /* stamps only: priorities may have changed since */
      x->rs.files[i].mtime_s = j->rs.files[i].mtime_s;
      x->rs.files[i].mtime_ns = j->rs.files[i].mtime_ns;
    }
    LOG_DEBUG("%s: resume record saved", x->hex);
  } else {
    LOG_ERROR("%s: cannot save the resume record %s: %s", x->rs.name, j->path,
              status < 0 ? uv_strerror(status) : j->msg);
  }
  resume_free(&j->rs);
  free(j->path);
  free(j);
  if (x->save_again && !x->removed) {
    x->save_again = false;
    dt_save(x);
  }
  maybe_finish(x);
  daemon_kick(x->d);
}

static void dt_save(struct dt *x)
{
  if (x->removed)
    return;
  if (x->saving) {
    x->save_again = true;
    return;
  }
  struct save_job *j = calloc(1, sizeof *j);
  if (j == NULL || rs_copy(&j->rs, &x->rs) < 0 || (j->path = resume_path(x->d->resume_dir, x->ih)) == NULL) {
    if (j)
      resume_free(&j->rs);
    free(j);
    LOG_ERROR("%s: out of memory saving the resume record", x->hex);
    return;
  }
  j->x = x;
  x->dirty = false;
  if (uv_queue_work(x->d->loop, &j->req, save_work, save_done) < 0) {
    resume_free(&j->rs);
    free(j->path);
    free(j);
    return;
  }
  x->saving = true;
  x->busy++;
}

void dt_mark_dirty(struct dt *x, bool now)
{
  x->dirty = true;
  if (now) {
    dt_snapshot(x);
    dt_save(x);
  }
}

/* ---- writing and deleting files of the config dir (threadpool) ---- */

struct file_job {
  uv_work_t req;
  struct dt *x;                 /* may be NULL */
  char *path;                   /* write data here (NULL: nothing to write) */
  struct buf data;
  char *unlink_after;           /* then remove this (may be NULL) */
  int err;
};

static void file_work(uv_work_t *req)
{
  struct file_job *j = container_of(req, struct file_job, req);
  if (j->path)
    j->err = resume_write_atomic(j->path, j->data.p, j->data.len);
  if (j->err == 0 && j->unlink_after && unlink(j->unlink_after) != 0 && errno != ENOENT)
    j->err = -errno;
}

static void file_done(uv_work_t *req, int status)
{
  struct file_job *j = container_of(req, struct file_job, req);
  if (status < 0 || j->err < 0)
    LOG_ERROR("cannot write %s: %s", j->path ? j->path : j->unlink_after, uv_strerror(status < 0 ? status : j->err));
  if (j->x) {
    j->x->busy--;
    maybe_finish(j->x);
  }
  buf_free(&j->data);
  free(j->path);
  free(j->unlink_after);
  free(j);
}

/* Writes data (taken over: *data is left empty) to path atomically on the
 * threadpool, then removes unlink_after; both paths are taken over too (NULL:
 * nothing to do; a NULL path after a failed allocation is logged).  x, when
 * not NULL, stays alive until the job is back. */
static void queue_file_job(struct daemon *d, struct dt *x, char *path, struct buf *data, char *unlink_after)
{
  struct file_job *j = calloc(1, sizeof *j);
  if (j == NULL || path == NULL) {
    LOG_ERROR("cannot save %s: out of memory", path ? path : "a file in the config dir");
    free(j);
    free(path);
    free(unlink_after);
    buf_free(data);
    return;
  }
  j->x = x;
  j->path = path;
  j->data = *data;
  buf_init(data, 0);
  j->unlink_after = unlink_after;
  if (uv_queue_work(d->loop, &j->req, file_work, file_done) < 0) {
    LOG_ERROR("cannot save %s: the threadpool refused the job", path);
    buf_free(&j->data);
    free(j->path);
    free(j->unlink_after);
    free(j);
    return;
  }
  if (x)
    x->busy++;
}

/* Writes data (taken over) to torrents/<hex><ext>, then removes torrents/<hex><ext_gone>. */
static void write_config_file(struct dt *x, struct buf *data, const char *ext, const char *ext_gone)
{
  char name[64];
  snprintf(name, sizeof name, "%s%s", x->hex, ext);
  char *path = path_join(x->d->torrents_dir, name);
  char *gone = NULL;
  if (ext_gone) {
    snprintf(name, sizeof name, "%s%s", x->hex, ext_gone);
    gone = path_join(x->d->torrents_dir, name);
  }
  queue_file_job(x->d, x, path, data, gone);
}

/* The same for bytes the caller keeps. */
static void write_config_copy(struct dt *x, const void *p, size_t len, const char *ext)
{
  struct buf b;
  buf_init(&b, len + 1);
  if (buf_append(&b, p, len) < 0) {
    LOG_ERROR("%s: cannot save %s: out of memory", x->hex, ext);
    buf_free(&b);
    return;
  }
  write_config_file(x, &b, ext, NULL);
}

/* ---- removing a torrent for good (threadpool) ---- */

/* Removes dir/rel without following a link anywhere below dir: each folder
 * is opened with O_NOFOLLOW, the last component is unlinked (a link itself,
 * never its target).  AT_REMOVEDIR in flags removes an empty folder. */
static int unlink_under(const char *dir, const char *rel, int flags)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  char part[PATH_MAX];
  const char *p = rel;
  int r = 0;
  for (;;) {
    const char *slash = strchr(p, '/');
    if (slash == NULL)
      break;
    size_t n = (size_t)(slash - p);
    if (n == 0 || n >= sizeof part) {
      r = UV_EINVAL;
      break;
    }
    memcpy(part, p, n);
    part[n] = 0;
    int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      r = -errno;
      break;
    }
    close(fd);
    fd = next;
    p = slash + 1;
  }
  if (r == 0 && unlinkat(fd, p, flags) != 0)
    r = -errno;
  close(fd);
  return r;
}

struct remove_job {
  uv_work_t req;
  struct dt *x;
  char *files[3];               /* config files: .torrent, .magnet, .resume */
  char *dir;                    /* data folder, when deleting data */
  char **rel;                   /* data files relative to dir */
  uint32_t nrel;
};

static int by_length_desc(const void *a, const void *b)
{
  size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
  return la < lb ? 1 : la > lb ? -1 : 0;
}

static void remove_work(uv_work_t *req)
{
  struct remove_job *j = container_of(req, struct remove_job, req);
  for (int i = 0; i < 3; i++)
    if (j->files[i])
      unlink(j->files[i]);
  if (j->dir == NULL)
    return;
  for (uint32_t i = 0; i < j->nrel; i++)
    unlink_under(j->dir, j->rel[i], 0);
  /* then the folders they were in, deepest first, when empty */
  for (uint32_t i = 0; i < j->nrel; i++) {
    char *slash = strrchr(j->rel[i], '/');
    if (slash)
      *slash = 0;
    else
      j->rel[i][0] = 0;
  }
  qsort(j->rel, j->nrel, sizeof *j->rel, by_length_desc);
  for (uint32_t i = 0; i < j->nrel; i++) {
    for (char *r = j->rel[i]; *r;) {
      unlink_under(j->dir, r, AT_REMOVEDIR);
      char *slash = strrchr(r, '/');
      if (slash == NULL)
        break;
      *slash = 0;
    }
  }
}

static void remove_done(uv_work_t *req, int status)
{
  struct remove_job *j = container_of(req, struct remove_job, req);
  struct dt *x = j->x;
  struct daemon *d = x->d;
  LOG_INFO("%s: removed%s", x->rs.name, j->dir ? " with its data" : "");
  for (int i = 0; i < 3; i++)
    free(j->files[i]);
  for (uint32_t i = 0; i < j->nrel; i++)
    free(j->rel[i]);
  free(j->rel);
  free(j->dir);
  free(j);
  DLIST_REMOVE(d->list, x);
  d->count--;
  dt_free(x);
}

static void finish_remove(struct dt *x)
{
  struct remove_job *j = calloc(1, sizeof *j);
  if (j == NULL)
    return;
  j->x = x;
  char name[64];
  snprintf(name, sizeof name, "%s.torrent", x->hex);
  j->files[0] = path_join(x->d->torrents_dir, name);
  snprintf(name, sizeof name, "%s.magnet", x->hex);
  j->files[1] = path_join(x->d->torrents_dir, name);
  j->files[2] = resume_path(x->d->resume_dir, x->ih);
  if (x->delete_data && x->paths) {
    size_t dl = strlen(x->rs.download_dir);
    j->dir = xstrdup(x->rs.download_dir);
    j->rel = calloc(x->num_files ? x->num_files : 1, sizeof *j->rel);
    for (uint32_t i = 0; j->rel && i < x->num_files; i++)
      if ((j->rel[j->nrel] = xstrdup(x->paths[i] + dl + 1)) != NULL)
        j->nrel++;
  }
  x->busy++;
  if (uv_queue_work(x->d->loop, &j->req, remove_work, remove_done) < 0) {
    x->busy--;
    LOG_ERROR("%s: cannot queue the removal", x->hex);
  }
}

/* A removed torrent goes once nothing points at it any more. */
static void maybe_finish(struct dt *x)
{
  if (x->removed && x->busy == 0 && x->t == NULL && !x->stopping && !x->starting && !x->saving)
    finish_remove(x);
}

/* ---- engine events ---- */

static void ev_metadata(struct torrent *t, void *ctx)
{
  struct dt *x = ctx;
  const struct manifest *m = torrent_manifest(t);
  if (dt_take_manifest(x, m) < 0) {
    LOG_ERROR("%s: out of memory", x->hex);
    return;
  }
  if (x->pending_only) {
    uint8_t *prio = calloc(m->num_files ? m->num_files : 1, 1);
    char err[SHOAL_ERRLEN];
    if (prio && filesel_parse(x->pending_only, prio, m->num_files, err, sizeof err) == 0) {
      torrent_set_file_priorities(t, prio, m->num_files);
      for (uint32_t i = 0; i < m->num_files; i++)
        x->rs.files[i].priority = prio[i];
    } else if (prio) {
      LOG_WARN("%s: `only` does not fit this torrent (%s): every file is downloaded", m->name, err);
    }
    free(prio);
    free(x->pending_only);
    x->pending_only = NULL;
  }
  struct buf b;
  buf_init(&b, MANIFEST_MAX_FILE_SIZE);
  if (manifest_encode((struct manifest *)m, &b) == 0)
    write_config_file(x, &b, ".torrent", ".magnet");
  buf_free(&b);
  free(x->magnet);
  x->magnet = NULL;
  dt_mark_dirty(x, true);
}

static void ev_complete(struct torrent *t, void *ctx)
{
  struct dt *x = ctx;
  x->complete = true;
  x->idle_since_ms = uv_now(x->d->loop);
  dt_mark_dirty(x, true);
  daemon_kick(x->d);
}

static void ev_checked(struct torrent *t, void *ctx)
{
  struct dt *x = ctx;
  dt_mark_dirty(x, true);
}

static void ev_file_done(struct torrent *t, uint32_t file, void *ctx)
{
  struct dt *x = ctx;
  dt_mark_dirty(x, true);
}

static void ev_error(struct torrent *t, int err, const char *msg, void *ctx)
{
  struct dt *x = ctx;
  LOG_ERROR("%s: stopped: %s", x->rs.name, msg);
  set_str(&x->rs.error, msg);
  x->dirty = true;
  daemon_kick(x->d);             /* the queue stops it; `resume` retries */
}

static void ev_tracker(struct torrent *t, const char *url, const char *msg, void *ctx)
{
  struct dt *x = ctx;
  LOG_DEBUG("%s: tracker %s: %s", x->rs.name, url, msg);
}

static const struct torrent_events dt_events = {
  .metadata = ev_metadata, .checked = ev_checked, .complete = ev_complete, .error = ev_error,
  .tracker = ev_tracker, .file_done = ev_file_done,
};

/* ---- starting and stopping ---- */

void dt_apply_limits(struct dt *x)
{
  if (x->t == NULL)
    return;
  torrent_set_rate_limits(x->t, x->rs.rate_down, x->rs.rate_up);
  torrent_set_max_peers(x->t, x->rs.max_peers ? x->rs.max_peers : x->d->set.max_peers_per_torrent);
}

static void dt_running(struct dt *x, struct torrent *t)
{
  x->t = t;
  x->base_up = x->rs.uploaded;
  x->base_down = x->rs.downloaded;
  x->last_up = 0;
  x->idle_since_ms = uv_now(x->d->loop);
  dt_apply_limits(x);
  for (uint32_t i = 0; i < x->rs.num_peers; i++) {
    struct sockaddr_storage ss;
    resume_peer_to_sockaddr(&x->rs.peers[i], &ss);
    torrent_add_peer(t, (const struct sockaddr *)&ss, true);
  }
}

static void dt_fail_start(struct dt *x, int r, const char *what)
{
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", what, shoal_strerror(r));
  LOG_ERROR("%s: %s", x->rs.name, msg);
  set_str(&x->rs.error, msg);
  dt_mark_dirty(x, false);
}

static void reload_manifest(struct dt *x);

struct prepare_job {
  uv_work_t req;
  struct dt *x;
  struct resume_file *now;
};

static void prepare_work(uv_work_t *req)
{
  struct prepare_job *j = container_of(req, struct prepare_job, req);
  stat_files(j->x->paths, j->x->num_files, j->now);
}

static bool piece_touches(const struct manifest *m, uint32_t piece, uint32_t file)
{
  uint64_t s = (uint64_t)piece * m->piece_length, e = s + manifest_piece_size(m, piece);
  const struct manifest_file *f = &m->files[file];
  return f->offset < e && f->offset + f->length > s;
}

static void prepare_done(uv_work_t *req, int status)
{
  struct prepare_job *j = container_of(req, struct prepare_job, req);
  struct dt *x = j->x;
  struct daemon *d = x->d;
  x->starting = false;
  x->busy--;
  struct manifest *m = x->m;
  bool go = status == 0 && m != NULL && !x->removed && !d->shutting_down && x->rs.state == RESUME_ACTIVE &&
            !(x->rs.error && x->rs.error[0]);
  if (!go) {
    free(j->now);
    free(j);
    maybe_finish(x);
    daemon_kick(d);
    return;
  }
  /* what the record vouches for, and which files changed under it */
  struct bitfield recheck = { 0 };
  bool use = x->has_hint && !x->verify && x->rs.have.nbits == m->num_pieces && x->rs.num_files == m->num_files;
  uint32_t cleared = 0;
  if (use && resume_trust(&x->rs, m, j->now, &cleared) < 0)
    use = false;
  if (use && bitfield_init(&recheck, m->num_pieces) < 0)
    use = false;
  if (use) {
    uint32_t changed = 0;
    for (uint32_t f = 0; f < m->num_files; f++) {
      if (resume_file_unchanged(&x->rs.files[f], &j->now[f]) || j->now[f].size <= 0 ||
          (m->files[f].attr & MANIFEST_ATTR_PAD))
        continue;
      changed++;
      for (uint32_t p = (uint32_t)(m->files[f].offset / m->piece_length); p < m->num_pieces && piece_touches(m, p, f);
           p++)
        bitfield_set(&recheck, p);
    }
    if (changed || cleared)
      LOG_INFO("%s: %u files changed since the last save: %u pieces to check", m->name, changed, recheck.count);
  }
  free(j->now);
  free(j);
  if (!use)
    LOG_INFO("%s: checking all data on disk", m->name);
  x->verify = false;
  struct torrent_opts opts = {
    .download_dir = x->rs.download_dir,
    .resume_have = use ? &x->rs.have : NULL,
    .recheck = use ? &recheck : NULL,
    .sequential = x->rs.sequential,
  };
  x->m = NULL;
  struct torrent *t;
  int r = session_add(d->session, m, &opts, &dt_events, x, &t);
  bitfield_free(&recheck);
  if (r < 0) {
    dt_fail_start(x, r, "cannot start");
    reload_manifest(x);
    return;
  }
  bool custom = false;
  uint8_t *prio = malloc(x->num_files ? x->num_files : 1);
  for (uint32_t i = 0; prio && i < x->num_files; i++) {
    prio[i] = x->rs.files[i].priority;
    custom |= prio[i] != 1;
  }
  if (custom)
    torrent_set_file_priorities(t, prio, x->num_files);
  free(prio);
  dt_running(x, t);
  x->has_hint = false;           /* the engine knows better from now on */
  if ((r = torrent_start(t)) < 0)
    dt_fail_start(x, r, "cannot check the data");
  daemon_kick(d);
}

static void dt_start(struct dt *x)
{
  struct daemon *d = x->d;
  if (x->m == NULL && x->magnet) {
    struct magnet mg;
    char err[SHOAL_ERRLEN];
    if (magnet_parse(&mg, x->magnet, err, sizeof err) < 0) {
      dt_fail_start(x, SHOAL_EMANIFEST, err);
      return;
    }
    struct torrent_opts opts = { .download_dir = x->rs.download_dir, .sequential = x->rs.sequential };
    struct torrent *t;
    int r = session_add_magnet(d->session, mg.infohash, mg.name, (const char *const *)mg.trackers, mg.ntrackers,
                               &opts, &dt_events, x, &t);
    if (r == 0) {
      dt_running(x, t);
      for (size_t i = 0; i < mg.npeers; i++)
        torrent_add_peer(t, (const struct sockaddr *)&mg.peers[i], true);
      if ((r = torrent_start(t)) < 0)
        dt_fail_start(x, r, "cannot start");
    } else {
      dt_fail_start(x, r, "cannot start");
    }
    magnet_free(&mg);
    return;
  }
  if (x->m == NULL || x->paths == NULL)
    return;                      /* the manifest is being read again: later */
  struct prepare_job *j = calloc(1, sizeof *j);
  if (j == NULL || (j->now = calloc(x->num_files ? x->num_files : 1, sizeof *j->now)) == NULL) {
    free(j);
    return;
  }
  j->x = x;
  if (uv_queue_work(d->loop, &j->req, prepare_work, prepare_done) < 0) {
    free(j->now);
    free(j);
    return;
  }
  x->starting = true;
  x->busy++;
}

/* ---- reading the .torrent back after a failed start (threadpool) ---- */

struct reload_job {
  uv_work_t req;
  struct dt *x;
  struct manifest *m;
  int err;
  char msg[SHOAL_ERRLEN];
};

static void reload_work(uv_work_t *req)
{
  struct reload_job *j = container_of(req, struct reload_job, req);
  char name[64];
  snprintf(name, sizeof name, "%s.torrent", j->x->hex);
  char *path = path_join(j->x->d->torrents_dir, name);
  j->err = path ? manifest_load(path, &j->m, j->msg, sizeof j->msg) : UV_ENOMEM;
  free(path);
}

static void reload_done(uv_work_t *req, int status)
{
  struct reload_job *j = container_of(req, struct reload_job, req);
  struct dt *x = j->x;
  x->busy--;
  if (status == 0 && j->err == 0) {
    if (x->m)
      manifest_free(x->m);
    x->m = j->m;
  } else {
    if (j->m)
      manifest_free(j->m);
    LOG_ERROR("%s: cannot read the torrent back: %s", x->hex, j->err ? j->msg : uv_strerror(status));
  }
  free(j);
  maybe_finish(x);
  daemon_kick(x->d);
}

/* Reads the saved .torrent again: for a start that failed after the
 * session had taken the manifest. */
static void reload_manifest(struct dt *x)
{
  struct reload_job *j = calloc(1, sizeof *j);
  if (j == NULL)
    return;
  j->x = x;
  if (uv_queue_work(x->d->loop, &j->req, reload_work, reload_done) < 0) {
    free(j);
    return;
  }
  x->busy++;
}

static void on_dt_removed(void *ctx, struct manifest *m)
{
  struct dt *x = ctx;
  x->stopping = false;
  x->busy--;
  /* the engine hands the manifest back: kept for the next start */
  if (m && x->m == NULL && !x->removed)
    x->m = m;
  else
    manifest_free(m);
  /* files are closed and every write is done: the stamps taken now are final */
  if (!x->removed)
    dt_save(x);
  maybe_finish(x);
  daemon_kick(x->d);
}

static void dt_stop(struct dt *x)
{
  struct torrent *t = x->t;
  if (t == NULL || x->stopping)
    return;
  dt_snapshot(x);
  x->t = NULL;
  x->stopping = true;
  x->busy++;
  session_remove(x->d->session, t, on_dt_removed, x);
}

/* ---- the queue ---- */

static int by_position(const void *a, const void *b)
{
  const struct dt *x = *(struct dt *const *)a, *y = *(struct dt *const *)b;
  if (x->rs.position != y->rs.position)
    return x->rs.position < y->rs.position ? -1 : 1;
  if (x->rs.added != y->rs.added)
    return x->rs.added < y->rs.added ? -1 : 1;
  return memcmp(x->ih, y->ih, 20);
}

struct dt **daemon_sorted(struct daemon *d, unsigned *n)
{
  *n = 0;
  if (d->count == 0)
    return NULL;
  struct dt **v = malloc(d->count * sizeof *v);
  if (v == NULL)
    return NULL;
  for (struct dt *x = d->list; x; x = x->next)
    if (!x->removed)
      v[(*n)++] = x;
  qsort(v, *n, sizeof *v, by_position);
  return v;
}

static void reconcile(struct daemon *d)
{
  if (d->shutting_down)
    return;
  unsigned n;
  struct dt **v = daemon_sorted(d, &n);
  struct queue_entry *e = n ? calloc(n, sizeof *e) : NULL;
  uint8_t *out = n ? malloc(n) : NULL;
  if (n && (v == NULL || e == NULL || out == NULL))
    goto done;
  for (unsigned i = 0; i < n; i++) {
    struct dt *x = v[i];
    bool complete = x->t ? x->complete : (x->paths != NULL && x->complete);
    e[i] = (struct queue_entry){
      .id = i, .position = i, .wants_download = !complete, .wants_seed = complete && !x->seed_done,
      .paused = x->rs.state == RESUME_PAUSED, .error = x->rs.error && x->rs.error[0],
    };
  }
  if (n && queue_select(e, n, d->set.max_active_downloads, d->set.max_active_seeds, out) < 0)
    goto done;
  for (unsigned i = 0; i < n; i++) {
    struct dt *x = v[i];
    x->qstate = out[i];
    bool run = out[i] == QUEUE_DOWNLOAD || out[i] == QUEUE_SEED;
    if (x->t && (!run || x->verify))
      dt_stop(x);
    else if (run && !x->t && !x->starting && !x->stopping && !x->saving)
      dt_start(x);
  }
  for (struct dt *x = d->list, *next; x; x = next) {
    next = x->next;
    if (x->removed && x->t)
      dt_stop(x);
    maybe_finish(x);
  }
done:
  free(v);
  free(e);
  free(out);
}

static void on_kick(uv_timer_t *h) { reconcile(container_of(h, struct daemon, kick)); }

void daemon_kick(struct daemon *d)
{
  if (!d->shutting_down)
    uv_timer_start(&d->kick, on_kick, 0, 0);
}

/* ---- controls used by the methods ---- */

void dt_pause(struct dt *x, bool pause)
{
  x->rs.state = pause ? RESUME_PAUSED : RESUME_ACTIVE;
  if (!pause) {
    set_str(&x->rs.error, "");   /* resume retries a torrent stopped on an error */
    x->seed_done = false;
  }
  x->dirty = true;
  if (x->t == NULL)
    dt_save(x);
  daemon_kick(x->d);
}

void dt_remove(struct dt *x, bool delete_data)
{
  x->removed = true;
  x->delete_data = delete_data;
  daemon_kick(x->d);
}

void dt_verify(struct dt *x)
{
  x->verify = true;
  x->has_hint = false;
  daemon_kick(x->d);
}

int dt_set_priorities(struct dt *x, const uint8_t *prio, uint32_t n)
{
  if (x->paths == NULL || n != x->num_files)
    return UV_EAGAIN;
  if (x->t) {
    int r = torrent_set_file_priorities(x->t, prio, n);
    if (r < 0)
      return r;
  }
  for (uint32_t i = 0; i < n; i++)
    x->rs.files[i].priority = prio[i];
  if (x->t)
    dt_snapshot(x);              /* the engine's view: a file wanted again means not complete */
  else if (x->m)
    count_have(x->m, &x->rs.have, x->rs.files, &x->wanted, &x->have, &x->complete);
  dt_mark_dirty(x, true);
  daemon_kick(x->d);
  return 0;
}

void dt_set_sequential(struct dt *x, bool on)
{
  x->rs.sequential = on;
  if (x->t)
    torrent_set_sequential(x->t, on);
  x->dirty = true;
}

void dt_add_peer(struct dt *x, const struct sockaddr *sa)
{
  struct resume_peer rp;
  if (resume_peer_from_sockaddr(sa, &rp) < 0)
    return;
  if (x->t)
    torrent_add_peer(x->t, sa, true);
  for (uint32_t i = 0; i < x->rs.num_peers; i++) {
    const struct resume_peer *q = &x->rs.peers[i];
    if (q->family == rp.family && q->port == rp.port && memcmp(q->addr, rp.addr, 16) == 0)
      return;
  }
  /* kept for the next starts; the oldest goes when the list is full */
  struct resume_peer *np = realloc(x->rs.peers, RESUME_MAX_PEERS_SAVED * sizeof *np);
  if (np == NULL)
    return;
  x->rs.peers = np;
  if (x->rs.num_peers == RESUME_MAX_PEERS_SAVED)
    memmove(&np[0], &np[1], (RESUME_MAX_PEERS_SAVED - 1) * sizeof *np);
  else
    x->rs.num_peers++;
  x->rs.peers[x->rs.num_peers - 1] = rp;
  dt_mark_dirty(x, true);
}

void daemon_apply_rates(struct daemon *d)
{
  session_set_rate_limits(d->session, d->set.rate_down, d->set.rate_up);
}

int daemon_save_settings(struct daemon *d)
{
  char *text = settings_to_text(&d->set);
  struct buf b;
  buf_init(&b, SETTINGS_MAX_TEXT);
  if (text == NULL || buf_append(&b, text, strlen(text)) < 0) {
    free(text);
    buf_free(&b);
    return UV_ENOMEM;
  }
  free(text);
  queue_file_job(d, NULL, xstrdup(d->settings_path), &b, NULL);
  return 0;
}

/* ---- adding ---- */

static struct dt *find_ih(struct daemon *d, const uint8_t ih[20])
{
  for (struct dt *x = d->list; x; x = x->next)
    if (memcmp(x->ih, ih, 20) == 0)
      return x;
  return NULL;
}

static uint32_t next_position(struct daemon *d)
{
  uint32_t pos = 0;
  for (struct dt *x = d->list; x; x = x->next)
    if (x->rs.position >= pos && x->rs.position < UINT32_MAX)
      pos = x->rs.position + 1;
  return pos;
}

/* Returns 0 and *out, or an HTTP status with a one-line reason in err. */
static int add_common(struct daemon *d, const uint8_t ih[20], const char *dir, bool paused, bool sequential,
                      struct dt **out, char *err, size_t errlen)
{
  struct dt *old = find_ih(d, ih);
  if (old) {
    snprintf(err, errlen, "already added%s: %s", old->removed ? " (being removed)" : "", old->hex);
    return 409;
  }
  if (d->count >= DAEMON_MAX_TORRENTS) {
    snprintf(err, errlen, "too many torrents (at most %u)", DAEMON_MAX_TORRENTS);
    return 409;
  }
  if (dir && (dir[0] != '/' || strlen(dir) > RESUME_MAX_STR)) {
    snprintf(err, errlen, "download_dir must be an absolute path of at most %u bytes", RESUME_MAX_STR);
    return 400;
  }
  struct dt *x = dt_new(d, ih);
  if (x == NULL) {
    snprintf(err, errlen, "out of memory");
    return 500;
  }
  if (dir)
    set_str(&x->rs.download_dir, dir);
  x->rs.added = (int64_t)time(NULL);
  x->rs.state = paused ? RESUME_PAUSED : RESUME_ACTIVE;
  x->rs.sequential = sequential;
  x->rs.position = next_position(d);
  *out = x;
  return 0;
}

int daemon_add(struct daemon *d, const uint8_t *data, size_t len, struct manifest *m, const char *magnet,
               const char *dir, bool paused, const char *only, bool sequential, struct dt **out, char *err,
               size_t errlen)
{
  struct dt *x = NULL;
  int st;
  if (magnet) {
    if (m)
      manifest_free(m);
    struct magnet mg;
    char perr[SHOAL_ERRLEN];
    if (magnet_parse(&mg, magnet, perr, sizeof perr) < 0) {
      snprintf(err, errlen, "bad magnet link: %s", perr);
      return 400;
    }
    st = add_common(d, mg.infohash, dir, paused, sequential, &x, err, errlen);
    if (st == 0) {
      set_str(&x->rs.name, mg.name ? mg.name : "");
      x->magnet = xstrdup(magnet);
      if (only)
        x->pending_only = xstrdup(only);
      if (x->magnet == NULL || (only && x->pending_only == NULL)) {
        dt_free(x);
        magnet_free(&mg);
        snprintf(err, errlen, "out of memory");
        return 500;
      }
    }
    magnet_free(&mg);
    if (st)
      return st;
    write_config_copy(x, magnet, strlen(magnet), ".magnet");
  } else {
    if (m == NULL) {
      snprintf(err, errlen, "no torrent given");
      return 400;
    }
    if ((st = add_common(d, m->infohash, dir, paused, sequential, &x, err, errlen)) != 0) {
      manifest_free(m);
      return st;
    }
    if (dt_take_manifest(x, m) < 0) {
      manifest_free(m);
      dt_free(x);
      snprintf(err, errlen, "out of memory");
      return 500;
    }
    if (only) {
      uint8_t *prio = calloc(m->num_files ? m->num_files : 1, 1);
      char perr2[SHOAL_ERRLEN];
      if (prio == NULL || filesel_parse(only, prio, m->num_files, perr2, sizeof perr2) < 0) {
        int status = prio ? 400 : 500;
        snprintf(err, errlen, "%s", prio ? perr2 : "out of memory");
        free(prio);
        manifest_free(m);
        dt_free(x);
        return status;
      }
      for (uint32_t i = 0; i < m->num_files; i++)
        x->rs.files[i].priority = prio[i];
      count_have(m, &x->rs.have, x->rs.files, &x->wanted, &x->have, &x->complete);
      free(prio);
    }
    x->m = m;
    write_config_copy(x, data, len, ".torrent");
  }
  DLIST_PUSH(d->list, x);
  d->count++;
  dt_save(x);
  LOG_INFO("added %s (%s)", x->rs.name[0] ? x->rs.name : x->hex, x->hex);
  daemon_kick(d);
  *out = x;
  return 0;
}

/* ---- the watch folder ---- */

/* Threadpool: a watched file's bytes into a manifest (the infohash is a hash). */
static void *watch_parse(const uint8_t *data, size_t len, char *err, size_t errlen)
{
  struct manifest *m = NULL;
  if (manifest_parse(data, len, &m, err, errlen) < 0)
    return NULL;
  return m;
}

static void free_manifest(void *m) { manifest_free(m); }

static enum watch_verdict on_watch(void *ctx, const char *path, const uint8_t *data, size_t len, void *parsed)
{
  struct daemon *d = ctx;
  if (d->shutting_down) {
    manifest_free(parsed);
    return WATCH_RETRY;
  }
  struct dt *x;
  char err[SHOAL_ERRLEN];
  int st = daemon_add(d, data, len, parsed, NULL, NULL, false, NULL, false, &x, err, sizeof err);
  if (st == 0) {
    LOG_INFO("watch folder: added %s", path);
    return WATCH_ADDED;
  }
  if (st == 409) {
    LOG_WARN("watch folder: %s: %s", path, err);
    return WATCH_ADDED;           /* nothing to add: do not offer it again */
  }
  if (st == 500)
    return WATCH_RETRY;
  LOG_WARN("watch folder: %s is invalid: %s", path, err);
  return WATCH_INVALID;
}

static void restart_watch(struct daemon *d)
{
  if (d->watch) {
    watch_stop(d->watch, NULL, NULL);
    d->watch = NULL;
  }
  if (d->set.watch_dir && d->set.watch_dir[0] && !d->shutting_down) {
    int r = watch_start(d->loop, d->set.watch_dir, on_watch, d, &d->watch);
    if (r < 0) {
      LOG_ERROR("cannot watch %s: %s", d->set.watch_dir, uv_strerror(r));
      return;
    }
    watch_set_parser(d->watch, watch_parse, free_manifest);
    LOG_INFO("watching %s for .torrent files", d->set.watch_dir);
  }
}

/* ---- the clock: seeding limits, periodic saves ---- */

static void on_tick(uv_timer_t *h)
{
  struct daemon *d = container_of(h, struct daemon, tick);
  uint64_t now = uv_now(d->loop);
  struct queue_seed_limits global = { d->set.seed_ratio_limit, d->set.seed_idle_limit_s };
  bool changed = false;
  for (struct dt *x = d->list; x; x = x->next) {
    if (x->t == NULL || x->stopping)
      continue;
    struct torrent_stats st;
    torrent_get_stats(x->t, &st);
    if (st.uploaded != x->last_up) {
      x->last_up = st.uploaded;
      x->idle_since_ms = now;
    }
    if (st.state != TORRENT_SEEDING || x->seed_done)
      continue;
    struct queue_seed_limits lim = queue_seed_limits_pick(x->rs.seed_ratio_milli, x->rs.seed_idle_s, &global);
    double ratio = queue_ratio(x->base_up + st.uploaded, x->base_down + st.downloaded, x->size);
    if (queue_seed_done(ratio, (now - x->idle_since_ms) / 1000, &lim)) {
      LOG_INFO("%s: seeding limit reached (ratio %.2f)", x->rs.name, ratio);
      x->seed_done = true;
      changed = true;
    }
  }
  if (changed)
    reconcile(d);
}

static void on_save_timer(uv_timer_t *h)
{
  struct daemon *d = container_of(h, struct daemon, save_timer);
  for (struct dt *x = d->list; x; x = x->next) {
    if (x->removed)
      continue;
    dt_snapshot(x);
    if (x->dirty)
      dt_save(x);
  }
}

static void start_save_timer(struct daemon *d)
{
  uint64_t ms = (uint64_t)d->set.resume_save_interval_s * 1000;
  uv_timer_start(&d->save_timer, on_save_timer, ms, ms);
}

/* ---- settings ---- */

/* defaults, then settings.json (when there), then the flags.  0 or exit status with a message printed. */
static int load_settings(struct daemon *d, struct settings *out, bool quiet_missing)
{
  struct settings_env env;
  settings_env_from_process(&env);
  char err[SHOAL_ERRLEN];
  int r = settings_defaults(out, &env);
  if (r == UV_ENOMEM) {
    fprintf(stderr, "shoal: out of memory\n");
    return EXIT_RUNTIME;
  }
  struct buf b;
  r = resume_read_file(d->settings_path, SETTINGS_MAX_TEXT, &b);
  if (r == 0) {
    r = settings_parse_json((const char *)b.p, b.len, out, err, sizeof err);
    buf_free(&b);
    if (r < 0) {
      fprintf(stderr, "shoal: %s: %s\n", d->settings_path, err);
      settings_free(out);
      return EXIT_USAGE;
    }
  } else if (r != UV_ENOENT) {
    fprintf(stderr, "shoal: cannot read %s: %s\n", d->settings_path, shoal_strerror(r));
    settings_free(out);
    return EXIT_USAGE;
  } else if (!quiet_missing) {
    LOG_INFO("no %s: using the defaults", d->settings_path);
  }
  for (unsigned i = 0; i + 1 < d->noverrides; i += 2) {
    if (settings_apply_override(out, d->overrides[i], d->overrides[i + 1], err, sizeof err) < 0) {
      fprintf(stderr, "shoal: --%s: %s\n", d->overrides[i], err);
      settings_free(out);
      return EXIT_USAGE;
    }
  }
  if (settings_check(out, err, sizeof err) < 0) {
    fprintf(stderr, "shoal: %s\n", err);
    settings_free(out);
    return EXIT_USAGE;
  }
  return 0;
}

static int open_log(const struct settings *s)
{
  if (s->log_file == NULL || s->log_file[0] == 0)
    return 0;
  int fd = open(s->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  if (dup2(fd, STDERR_FILENO) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  close(fd);
  return 0;
}

static void reload_settings(struct daemon *d)
{
  struct settings n;
  if (load_settings(d, &n, true) != 0) {
    LOG_ERROR("settings not reloaded: the file has an error (see above); the old settings stay");
    return;
  }
  struct settings *o = &d->set;
  if (n.listen_port != o->listen_port || strcmp(n.bind, o->bind) || n.rpc_port != o->rpc_port ||
      strcmp(n.rpc_bind, o->rpc_bind) || strcmp(n.download_dir, o->download_dir) || n.upload_slots != o->upload_slots)
    LOG_WARN("settings reloaded; ports, addresses, download_dir and upload_slots take effect at the next start");
  bool log_changed = strcmp(n.log_file, o->log_file) != 0;
  bool watch_changed = strcmp(n.watch_dir, o->watch_dir) != 0;
  bool save_changed = n.resume_save_interval_s != o->resume_save_interval_s;
  /* keep what cannot change while running */
  char *keep[] = { o->bind, o->rpc_bind, o->download_dir };
  char **slot[] = { &n.bind, &n.rpc_bind, &n.download_dir };
  for (int i = 0; i < 3; i++) {
    free(*slot[i]);
    *slot[i] = keep[i];
  }
  o->bind = o->rpc_bind = o->download_dir = NULL;
  n.listen_port = o->listen_port;
  n.rpc_port = o->rpc_port;
  n.upload_slots = o->upload_slots;
  settings_free(o);
  *o = n;
  log_level = o->log_level;
  /* reopened even when unchanged: after logrotate moved it, SIGHUP starts a new file */
  if (o->log_file[0] && open_log(o) < 0)
    LOG_ERROR("cannot open the log file %s", o->log_file);
  else if (log_changed && o->log_file[0] == 0)
    LOG_WARN("log_file is now empty: logging goes on where it went until the next start");
  rpc_server_set_host_names(d->rpc, (const char *const *)o->rpc_host_names, o->num_rpc_host_names);
  if (d->rpc_unix)
    rpc_server_set_host_names(d->rpc_unix, (const char *const *)o->rpc_host_names, o->num_rpc_host_names);
  session_set_max_peers_global(d->session, o->max_peers_global);
  daemon_apply_rates(d);
  for (struct dt *x = d->list; x; x = x->next) {
    x->seed_done = false;        /* limits are judged again */
    dt_apply_limits(x);
  }
  if (watch_changed)
    restart_watch(d);
  if (save_changed)
    start_save_timer(d);
  LOG_WARN("settings reloaded from %s", d->settings_path);
  reconcile(d);
}

/* ---- loading the torrents at start-up (before the loop runs) ---- */

static void load_one(struct daemon *d, const char *file)
{
  size_t n = strlen(file);
  bool is_torrent = n == 48 && strcmp(file + 40, ".torrent") == 0;
  bool is_magnet = n == 47 && strcmp(file + 40, ".magnet") == 0;
  if (!is_torrent && !is_magnet)
    return;
  uint8_t ih[20];
  if (hash_unhex(file, 40, ih, 20) < 0)
    return;
  char *path = path_join(d->torrents_dir, file);
  if (path == NULL)
    return;
  char err[SHOAL_ERRLEN];
  struct manifest *m = NULL;
  char *link = NULL;
  if (is_torrent) {
    int r = manifest_load(path, &m, err, sizeof err);
    if (r < 0) {
      LOG_ERROR("%s: cannot load: %s", path, err);
      free(path);
      return;
    }
    if (memcmp(m->infohash, ih, 20) != 0) {
      LOG_ERROR("%s: its infohash does not match its name; skipped", path);
      manifest_free(m);
      free(path);
      return;
    }
  } else {
    struct buf b;
    int r = resume_read_file(path, 64 * 1024, &b);
    if (r < 0) {
      LOG_ERROR("%s: cannot read: %s", path, shoal_strerror(r));
      free(path);
      return;
    }
    link = strndup((const char *)b.p, b.len);
    buf_free(&b);
  }
  free(path);
  struct dt *old = find_ih(d, ih);
  if (old) {                     /* both .torrent and .magnet: the .torrent wins */
    if (m && old->m == NULL && old->magnet) {
      free(old->magnet);
      old->magnet = NULL;
      if (dt_take_manifest(old, m) == 0)
        old->m = m;
      else
        manifest_free(m);
    } else if (m) {
      manifest_free(m);
    }
    free(link);
    return;
  }
  struct dt *x = dt_new(d, ih);
  if (x == NULL) {
    if (m)
      manifest_free(m);
    free(link);
    return;
  }
  /* the resume record, when there and sound */
  char *rpath = resume_path(d->resume_dir, ih);
  struct buf b;
  int r = rpath ? resume_read_file(rpath, RESUME_MAX_FILE_SIZE, &b) : UV_ENOMEM;
  if (r == 0) {
    struct resume rs;
    r = resume_parse(b.p, b.len, &rs, err, sizeof err);
    buf_free(&b);
    if (r == 0 && memcmp(rs.infohash, ih, 20) != 0) {
      snprintf(err, sizeof err, "it is for another torrent");
      resume_free(&rs);
      r = SHOAL_EMANIFEST;
    }
    if (r == 0 && m && (rs.num_files != m->num_files || rs.have.nbits != m->num_pieces)) {
      snprintf(err, sizeof err, "it does not fit the torrent");
      resume_free(&rs);
      r = SHOAL_EMANIFEST;
    }
    if (r == 0) {
      resume_free(&x->rs);
      x->rs = rs;
      x->has_hint = m != NULL;
    } else {
      LOG_WARN("%s: resume record unusable (%s): treated as absent, the data will be checked", rpath, err);
    }
  } else if (r != UV_ENOENT) {
    LOG_WARN("%s: resume record unreadable (%s): treated as absent, the data will be checked", rpath,
             shoal_strerror(r));
  }
  free(rpath);
  if (x->rs.added == 0)
    x->rs.added = (int64_t)time(NULL);
  if (m) {
    if (dt_take_manifest(x, m) < 0) {
      manifest_free(m);
      dt_free(x);
      return;
    }
    x->m = m;
  } else {
    x->magnet = link;
    link = NULL;
  }
  free(link);
  DLIST_PUSH(d->list, x);
  d->count++;
}

static void load_torrents(struct daemon *d)
{
  DIR *dir = opendir(d->torrents_dir);
  if (dir == NULL)
    return;
  struct dirent *e;
  unsigned n = 0;
  while ((e = readdir(dir)) != NULL && n < DAEMON_MAX_TORRENTS * 2) {
    n++;
    load_one(d, e->d_name);
  }
  closedir(dir);
  LOG_INFO("%u torrents loaded", d->count);
}

/* ---- signals and shutdown ---- */

static void close_handle(uv_handle_t *h)
{
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void on_session_closed(void *ctx)
{
  struct daemon *d = ctx;
  d->session = NULL;
  /* every file is closed: the last stamps, and the records */
  for (struct dt *x = d->list; x; x = x->next)
    if (x->dirty && !x->removed)
      dt_save(x);
  /* once those are back the loop has nothing left and uv_run returns */
}

static void begin_shutdown(struct daemon *d, const char *why)
{
  if (d->shutting_down)
    return;
  d->shutting_down = true;
  LOG_WARN("%s: saving state and stopping", why);
  sd_notify_send("STOPPING=1");
  if (d->rpc) {
    rpc_server_close(d->rpc, NULL, NULL);
    d->rpc = NULL;
  }
  if (d->rpc_unix) {
    rpc_server_close(d->rpc_unix, NULL, NULL);
    d->rpc_unix = NULL;
    unlink(d->socket_path);
  }
  if (d->watch) {
    watch_stop(d->watch, NULL, NULL);
    d->watch = NULL;
  }
  close_handle((uv_handle_t *)&d->tick);
  close_handle((uv_handle_t *)&d->save_timer);
  close_handle((uv_handle_t *)&d->kick);
  close_handle((uv_handle_t *)&d->sig_hup);
  for (struct dt *x = d->list; x; x = x->next) {
    if (x->t) {
      dt_snapshot(x);
      x->dirty = true;           /* stamps after the close */
      x->t = NULL;               /* the session stops and frees it */
    }
  }
  session_close(d->session, on_session_closed, d);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct daemon *d = h->data;
  if (signum == SIGHUP) {
    reload_settings(d);
    return;
  }
  if (d->shutting_down) {
    LOG_WARN("second signal: exiting now");
    _exit(EXIT_RUNTIME);
  }
  close_handle((uv_handle_t *)&d->sig_term);
  close_handle((uv_handle_t *)&d->sig_int);
  begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- the command ---- */

static const char usage_text[] =
  "usage: shoal daemon [--config-dir DIR] [--download-dir DIR] [--rpc-port N] [--port N]\n"
  "                    [--foreground] [--log-file FILE] [--log-level LEVEL] [--watch-dir DIR]\n";

static int usage(const char *msg)
{
  fprintf(stderr, "shoal: %s\n%s", msg, usage_text);
  return EXIT_USAGE;
}

static int add_override(struct daemon *d, const char *key, const char *value)
{
  char **v = realloc(d->overrides, (d->noverrides + 2) * sizeof *v);
  if (v == NULL)
    return -1;
  d->overrides = v;
  char *abs = NULL;
  bool is_path = !strcmp(key, "download_dir") || !strcmp(key, "log_file") || !strcmp(key, "watch_dir");
  if (is_path && value[0] && value[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
      return -1;
    abs = path_join(cwd, value);
  } else {
    abs = xstrdup(value);
  }
  v[d->noverrides++] = xstrdup(key);
  v[d->noverrides++] = abs;
  return abs ? 0 : -1;
}

/* Forks; the parent waits for the child's word (a byte 0 = ready, else an
 * error line) and exits with it.  Returns the write end in the child. */
static int daemonize(void)
{
  int p[2];
  if (pipe(p) != 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid > 0) {
    close(p[1]);
    char buf[512];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    if (n == 1 && buf[0] == 0)
      _exit(0);
    if (n > 0) {
      buf[n] = 0;
      fprintf(stderr, "%s", buf);
    } else {
      fprintf(stderr, "shoal: the daemon exited while starting\n");
    }
    _exit(EXIT_RUNTIME);
  }
  close(p[0]);
  setsid();
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    close(null);
  }
  return p[1];
}

static void tell_parent(int fd, const char *msg)
{
  if (fd < 0)
    return;
  if (msg == NULL) {
    char z = 0;
    ssize_t w = write(fd, &z, 1);
    (void)w;
  } else {
    ssize_t w = write(fd, msg, strlen(msg));
    (void)w;
  }
  close(fd);
}

static int write_endpoint(struct daemon *d)
{
  char line[128];
  int n = snprintf(line, sizeof line, "%s %u\n", d->set.rpc_bind, rpc_server_port(d->rpc));
  char *path = path_join(d->config_dir, RPC_ENDPOINT_FILE);
  int r = path ? resume_write_atomic(path, line, (size_t)n) : UV_ENOMEM;
  if (r == 0)
    chmod(path, 0600);
  free(path);
  return r;
}

int daemon_main(int argc, char **argv)
{
  static struct daemon dd;
  struct daemon *d = &dd;
  bool foreground = false;
  const char *config_dir = NULL;
  enum { O_CONFIG = 1000, O_DOWNLOAD, O_RPC_PORT, O_PORT, O_FG, O_LOG_FILE, O_LOG_LEVEL, O_WATCH };
  static const struct option longs[] = {
    { "config-dir", required_argument, NULL, O_CONFIG }, { "download-dir", required_argument, NULL, O_DOWNLOAD },
    { "rpc-port", required_argument, NULL, O_RPC_PORT }, { "port", required_argument, NULL, O_PORT },
    { "foreground", no_argument, NULL, O_FG }, { "log-file", required_argument, NULL, O_LOG_FILE },
    { "log-level", required_argument, NULL, O_LOG_LEVEL }, { "watch-dir", required_argument, NULL, O_WATCH },
    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
  };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    int r = 0;
    switch (c) {
    case O_CONFIG: config_dir = optarg; break;
    case O_DOWNLOAD: r = add_override(d, "download_dir", optarg); break;
    case O_RPC_PORT: r = add_override(d, "rpc_port", optarg); break;
    case O_PORT: r = add_override(d, "listen_port", optarg); break;
    case O_FG: foreground = true; break;
    case O_LOG_FILE: r = add_override(d, "log_file", optarg); break;
    case O_LOG_LEVEL: r = add_override(d, "log_level", optarg); break;
    case O_WATCH: r = add_override(d, "watch_dir", optarg); break;
    case 'h': fputs(usage_text, stdout); return 0;
    default: return usage(optopt ? "unknown or incomplete option" : "unknown option");
    }
    if (r < 0) {
      fprintf(stderr, "shoal: out of memory\n");
      return EXIT_RUNTIME;
    }
  }
  if (optind < argc)
    return usage("daemon takes no arguments");

  /* where things live */
  struct settings_env env;
  settings_env_from_process(&env);
  if (config_dir) {
    if (config_dir[0] == '/') {
      d->config_dir = xstrdup(config_dir);
    } else {
      char cwd[PATH_MAX];
      d->config_dir = getcwd(cwd, sizeof cwd) ? path_join(cwd, config_dir) : NULL;
    }
  } else if (settings_config_dir(&env, &d->config_dir) < 0) {
    fprintf(stderr, "shoal: no config dir: set HOME or XDG_CONFIG_HOME, or give --config-dir\n");
    return EXIT_USAGE;
  }
  d->torrents_dir = path_join(d->config_dir, "torrents");
  d->resume_dir = path_join(d->config_dir, "resume");
  d->settings_path = path_join(d->config_dir, SETTINGS_FILE_NAME);
  if (d->torrents_dir == NULL || d->resume_dir == NULL || d->settings_path == NULL)
    return EXIT_RUNTIME;
  int r;
  if ((r = make_dirs(d->config_dir, 0700)) < 0 || (r = make_dirs(d->torrents_dir, 0700)) < 0 ||
      (r = make_dirs(d->resume_dir, 0700)) < 0) {
    fprintf(stderr, "shoal: cannot create the config dir %s: %s\n", d->config_dir, shoal_strerror(r));
    return EXIT_RUNTIME;
  }
  if ((r = load_settings(d, &d->set, false)) != 0)
    return r;
  log_level = d->set.log_level;
  if ((r = make_dirs(d->set.download_dir, 0755)) < 0) {
    fprintf(stderr, "shoal: cannot create the download dir %s: %s\n", d->set.download_dir, shoal_strerror(r));
    return EXIT_RUNTIME;
  }

  /* one daemon per config dir */
  char *lock_path = path_join(d->config_dir, "daemon.lock");
  int lock_fd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
  free(lock_path);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    fprintf(stderr, "shoal: another daemon is running with the config dir %s\n", d->config_dir);
    return EXIT_RUNTIME;
  }
  char err[SHOAL_ERRLEN];
  if (rpc_token_load_or_create(d->config_dir, d->token, err, sizeof err) < 0) {
    fprintf(stderr, "shoal: %s\n", err);
    return EXIT_RUNTIME;
  }

  int parent_fd = -1;
  if (!foreground) {
    if (d->set.log_file[0] == 0) {
      char *lf = path_join(d->config_dir, "daemon.log");
      if (lf)
        set_str(&d->set.log_file, lf);
      free(lf);
    }
    parent_fd = daemonize();
    if (parent_fd < 0) {
      fprintf(stderr, "shoal: cannot start in the background: %s\n", strerror(errno));
      return EXIT_RUNTIME;
    }
  }
  char msg[600];
  if ((r = open_log(&d->set)) < 0) {
    snprintf(msg, sizeof msg, "shoal: cannot open the log file %s: %s\n", d->set.log_file, uv_strerror(r));
    fputs(msg, stderr);
    tell_parent(parent_fd, msg);
    return EXIT_RUNTIME;
  }
  log_set_prefix("shoal daemon");

  d->loop = uv_default_loop();
  d->started_ms = uv_now(d->loop);
  d->started_wall = time(NULL);
  struct session_config cfg = {
    .bind_addr = d->set.bind[0] ? d->set.bind : NULL,
    .port = d->set.listen_port,
    .max_peers = d->set.max_peers_per_torrent,
    .upload_slots = d->set.upload_slots,
    .max_peers_global = d->set.max_peers_global,
  };
  if ((r = session_new(d->loop, &cfg, &d->session)) < 0 || (r = session_listen(d->session)) < 0) {
    snprintf(msg, sizeof msg, "shoal: cannot listen for peers on port %u: %s\n", d->set.listen_port, uv_strerror(r));
    fputs(msg, stderr);
    tell_parent(parent_fd, msg);
    return EXIT_RUNTIME;
  }
  daemon_apply_rates(d);
  struct rpc_server_config rc = {
    .bind = d->set.rpc_bind, .port = d->set.rpc_port, .token = d->token,
    .host_names = (const char *const *)d->set.rpc_host_names, .num_host_names = d->set.num_rpc_host_names,
  };
  if ((r = rpc_server_start(d->loop, &rc, daemon_rpc_handle, d, &d->rpc)) < 0) {
    snprintf(msg, sizeof msg, "shoal: cannot listen for the control API on %s port %u: %s\n", d->set.rpc_bind,
             d->set.rpc_port, uv_strerror(r));
    fputs(msg, stderr);
    tell_parent(parent_fd, msg);
    return EXIT_RUNTIME;
  }
  /* the same API on a Unix socket next to the token: reachable by this user only */
  d->socket_path = path_join(d->config_dir, DAEMON_SOCKET_FILE);
  struct rpc_server_config uc = rc;
  uc.unix_path = d->socket_path;
  if (d->socket_path && (r = rpc_server_start(d->loop, &uc, daemon_rpc_handle, d, &d->rpc_unix)) < 0)
    LOG_WARN("no control socket %s: %s (the TCP one works)", d->socket_path, uv_strerror(r));
  if ((r = write_endpoint(d)) < 0)
    LOG_ERROR("cannot write %s/%s: %s", d->config_dir, RPC_ENDPOINT_FILE, uv_strerror(r));

  load_torrents(d);

  uv_timer_init(d->loop, &d->tick);
  uv_timer_init(d->loop, &d->save_timer);
  uv_timer_init(d->loop, &d->kick);
  uv_timer_start(&d->tick, on_tick, DAEMON_TICK_MS, DAEMON_TICK_MS);
  start_save_timer(d);
  uv_signal_t *sigs[] = { &d->sig_term, &d->sig_int, &d->sig_hup };
  int signums[] = { SIGTERM, SIGINT, SIGHUP };
  for (int i = 0; i < 3; i++) {
    uv_signal_init(d->loop, sigs[i]);
    sigs[i]->data = d;
    uv_signal_start(sigs[i], on_signal, signums[i]);
  }
  restart_watch(d);
  reconcile(d);
  LOG_WARN("shoal daemon %d ready: peers on port %u, control API on %s port %u, config %s", (int)getpid(),
           session_port(d->session), d->set.rpc_bind, rpc_server_port(d->rpc), d->config_dir);
  tell_parent(parent_fd, NULL);
  char ready[64];
  snprintf(ready, sizeof ready, "READY=1\nMAINPID=%d", (int)getpid());
  sd_notify_send(ready);

  uv_run(d->loop, UV_RUN_DEFAULT);

  LOG_WARN("stopped");
  for (struct dt *x = d->list, *next; x; x = next) {
    next = x->next;
    dt_free(x);
  }
  for (unsigned i = 0; i < d->noverrides; i++)
    free(d->overrides[i]);
  free(d->overrides);
  settings_free(&d->set);
  free(d->config_dir);
  free(d->torrents_dir);
  free(d->resume_dir);
  free(d->settings_path);
  free(d->socket_path);
  uv_loop_close(d->loop);
  close(lock_fd);
  return d->exit_code;
}
