/* daemon_rpc.c -- the control API's methods: JSON in, the daemon's torrents changed or described, JSON out. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/compact.h"
#include "common/err.h"
#include "common/filesel.h"
#include "common/log.h"
#include "common/magnet.h"
#include "common/ratelimit.h"
#include "common/util.h"
#include "peer/daemon-int.h"
#include "peer/queue.h"

#define ADD_MAX_TORRENT (16u << 20)     /* decoded .torrent bytes */

/* ---- params ---- */

static const char *param_str(json_t *params, const char *key)
{
  json_t *v = json_object_get(params, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A present key must have the right type: 0 absent, 1 present, -1 wrong type (answered). */
static int want_bool(struct rpc_call *call, json_t *params, const char *key, bool *out)
{
  json_t *v = json_object_get(params, key);
  if (v == NULL)
    return 0;
  if (!json_is_boolean(v)) {
    rpc_replyf(call, 400, "\"%s\" must be true or false", key);
    return -1;
  }
  *out = json_is_true(v);
  return 1;
}

static int want_int(struct rpc_call *call, json_t *params, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
  json_t *v = json_object_get(params, key);
  if (v == NULL)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    rpc_replyf(call, 400, "\"%s\" must be an integer from %lld to %lld", key, (long long)lo, (long long)hi);
    return -1;
  }
  *out = json_integer_value(v);
  return 1;
}

/* ---- ids ---- */

/* Finds the torrent an id names: a 1-based index in queue order (up to 5
 * digits, when there is such an index), else a unique infohash prefix of
 * at least 4 hex digits.  Answers
 * the call (400/404/409) and returns NULL when there is none. */
static struct dt *find_dt(struct daemon *d, struct rpc_call *call, json_t *params)
{
  const char *id = param_str(params, "id");
  if (id == NULL) {
    rpc_reply(call, 400, NULL, "\"id\" (a torrent's index or infohash prefix) is missing");
    return NULL;
  }
  size_t len = strlen(id);
  bool digits = len > 0 && len <= 5, hex = len >= 4 && len <= 40;
  for (size_t i = 0; i < len; i++) {
    digits &= isdigit((unsigned char)id[i]) != 0;
    hex &= isxdigit((unsigned char)id[i]) != 0;
  }
  if (!digits && !hex) {
    rpc_reply(call, 400, NULL, "an id is an index from `list` or at least 4 hex digits of the infohash");
    return NULL;
  }
  unsigned n;
  struct dt **v = daemon_sorted(d, &n);
  struct dt *found = NULL;
  unsigned matches = 0;
  if (digits) {
    unsigned long k = strtoul(id, NULL, 10);
    if (k >= 1 && k <= n) {
      found = v[k - 1];
      matches = 1;
    }
  }
  if (matches == 0 && hex) {     /* digits beyond the list may still be the start of an infohash */
    for (unsigned i = 0; i < n; i++) {
      if (strncasecmp(v[i]->hex, id, len) == 0) {
        found = v[i];
        matches++;
      }
    }
  }
  free(v);
  if (matches == 0) {
    rpc_replyf(call, 404, "no torrent %s", id);
    return NULL;
  }
  if (matches > 1) {
    rpc_replyf(call, 409, "ambiguous id %s: it matches %u torrents", id, matches);
    return NULL;
  }
  return found;
}

static unsigned index_of(struct daemon *d, const struct dt *x)
{
  unsigned n, k = 0;
  struct dt **v = daemon_sorted(d, &n);
  for (unsigned i = 0; i < n; i++)
    if (v[i] == x)
      k = i + 1;
  free(v);
  return k;
}

/* ---- describing a torrent ---- */

static const char *prio_name(uint8_t p) { return p == 0 ? "skip" : p == 2 ? "high" : "normal"; }

static json_t *summary(struct daemon *d, const struct dt *x, unsigned index)
{
  struct torrent_stats st;
  uint64_t up, down;
  dt_stats(x, &st, &up, &down);
  double progress = st.total_bytes ? (double)st.have_bytes / (double)st.total_bytes : (x->complete ? 1.0 : 0.0);
  int64_t eta = -1;
  if (st.down_rate > 0 && st.total_bytes > st.have_bytes)
    eta = (int64_t)((st.total_bytes - st.have_bytes) / st.down_rate);
  const char *name = x->rs.name && x->rs.name[0] ? x->rs.name : x->hex;
  return json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:b, s:s, s:I}",
                   "index", (json_int_t)index, "id", x->hex, "name", name, "state", dt_state_name(x),
                   "error", dt_error(x), "size", (json_int_t)st.total_bytes, "have", (json_int_t)st.have_bytes,
                   "progress", progress, "down_rate", (json_int_t)st.down_rate, "up_rate", (json_int_t)st.up_rate,
                   "peers", (json_int_t)st.peers, "seeds", (json_int_t)st.seeds, "uploaded", (json_int_t)up,
                   "downloaded", (json_int_t)down, "ratio", queue_ratio(up, down, x->size),
                   "eta_s", (json_int_t)eta, "queue_position", (json_int_t)x->rs.position,
                   "sequential", (int)x->rs.sequential, "download_dir", x->rs.download_dir,
                   "added", (json_int_t)x->rs.added);
}

/* Bytes of file f inside pieces set in have (0 when have does not fit m). */
static uint64_t file_have_bytes(const struct manifest *m, const struct bitfield *have, const struct manifest_file *f)
{
  uint64_t sum = 0, end = f->offset + f->length;
  if (have->nbits != m->num_pieces || f->length == 0)
    return 0;
  for (uint64_t p = f->offset / m->piece_length; p < m->num_pieces && p * m->piece_length < end; p++) {
    if (!bitfield_get(have, (uint32_t)p))
      continue;
    uint64_t ps = p * m->piece_length, pe = ps + manifest_piece_size(m, (uint32_t)p);
    sum += MIN(pe, end) - MAX(ps, f->offset);
  }
  return sum;
}

static json_t *details(struct daemon *d, const struct dt *x)
{
  json_t *o = summary(d, x, index_of(d, x));
  if (o == NULL)
    return NULL;
  const struct manifest *m = x->t ? torrent_manifest(x->t) : x->m;
  bool known = m != NULL && x->paths != NULL;
  json_t *files = json_array(), *trackers = json_array();
  /* what is held: the engine's view while running, else the saved one */
  struct bitfield now = { 0 };
  const struct bitfield *have = &x->rs.have;
  if (x->t && torrent_copy_have(x->t, &now) == 0)
    have = &now;
  if (known) {
    for (uint32_t i = 0; i < m->num_files; i++) {
      const struct manifest_file *f = &m->files[i];
      if (f->attr & MANIFEST_ATTR_PAD)
        continue;
      json_array_append_new(files, json_pack("{s:I, s:s, s:I, s:s, s:I}", "index", (json_int_t)i, "path", f->path,
                                             "size", (json_int_t)f->length, "priority",
                                             prio_name(x->rs.files ? x->rs.files[i].priority : 1),
                                             "have", (json_int_t)file_have_bytes(m, have, f)));
    }
    for (uint32_t t = 0; t < m->num_tiers; t++)
      for (uint32_t u = 0; u < m->tiers[t].count; u++)
        json_array_append_new(trackers, json_string(m->tiers[t].urls[u]));
  }
  bitfield_free(&now);
  char *link = magnet_build(x->ih, x->rs.name && x->rs.name[0] ? x->rs.name : NULL, NULL, 0);
  json_object_set_new(o, "pieces", json_integer(known ? m->num_pieces : 0));
  json_object_set_new(o, "piece_length", json_integer(known ? m->piece_length : 0));
  json_object_set_new(o, "have_pieces", json_integer(x->t ? 0 : x->rs.have.count));
  if (x->t) {
    struct torrent_stats st;
    torrent_get_stats(x->t, &st);
    json_object_set_new(o, "have_pieces", json_integer(st.have_pieces));
  }
  json_object_set_new(o, "private", json_boolean(known && m->private_));
  json_object_set_new(o, "magnet", json_string(link ? link : ""));
  json_object_set_new(o, "comment", json_string(known && m->comment ? m->comment : ""));
  json_object_set_new(o, "files", files);
  json_object_set_new(o, "trackers", trackers);
  json_object_set_new(o, "limits",
                      json_pack("{s:I, s:I, s:f, s:I, s:I}", "down", (json_int_t)x->rs.rate_down, "up",
                                (json_int_t)x->rs.rate_up, "seed_ratio",
                                x->rs.seed_ratio_milli < 0 ? -1.0 : (double)x->rs.seed_ratio_milli / 1000.0,
                                "seed_idle_s", (json_int_t)x->rs.seed_idle_s, "max_peers",
                                (json_int_t)x->rs.max_peers));
  free(link);
  return o;
}

/* ---- methods ---- */

/* The answer to `add`: {id, index, name}, or the error daemon_add gave. */
static void reply_added(struct daemon *d, struct rpc_call *call, int status, const struct dt *x, const char *err)
{
  if (status) {
    rpc_reply(call, status, NULL, err);
    return;
  }
  rpc_reply(call, 200,
            json_pack("{s:s, s:I, s:s}", "id", x->hex, "index", (json_int_t)index_of(d, x), "name",
                      x->rs.name && x->rs.name[0] ? x->rs.name : x->hex),
            NULL);
}

/* An add of a .torrent: decoding and parsing (which hashes the info dict)
 * run on the threadpool; the torrent is added and the call answered back on
 * the loop. */
struct add_job {
  uv_work_t req;
  struct daemon *d;
  struct rpc_call *call;
  char *b64;
  char *dir, *only;
  bool paused, sequential;
  uint8_t *data;
  size_t len;
  struct manifest *m;
  int status;                   /* 0, or the HTTP status of the failure */
  char err[SHOAL_ERRLEN + 32];
};

static void add_job_free(struct add_job *j)
{
  if (j->m)
    manifest_free(j->m);
  free(j->b64);
  free(j->dir);
  free(j->only);
  free(j->data);
  free(j);
}

static void add_work(uv_work_t *req)
{
  struct add_job *j = container_of(req, struct add_job, req);
  size_t blen = strlen(j->b64), cap = blen / 4 * 3 + 3;
  if ((j->data = malloc(cap)) == NULL) {
    j->status = 500;
    snprintf(j->err, sizeof j->err, "out of memory");
    return;
  }
  if (sodium_base642bin(j->data, cap, j->b64, blen, "\n\r ", &j->len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
    j->status = 400;
    snprintf(j->err, sizeof j->err, "\"torrent\" is not valid base64");
    return;
  }
  char perr[SHOAL_ERRLEN];
  if (manifest_parse(j->data, j->len, &j->m, perr, sizeof perr) < 0) {
    j->m = NULL;
    j->status = 400;
    snprintf(j->err, sizeof j->err, "not a valid torrent: %s", perr);
  }
}

static void add_done(uv_work_t *req, int status)
{
  struct add_job *j = container_of(req, struct add_job, req);
  struct daemon *d = j->d;
  if (status < 0 || d->shutting_down) {
    rpc_reply(j->call, 503, NULL, "the daemon is shutting down");
  } else if (j->status) {
    rpc_reply(j->call, j->status, NULL, j->err);
  } else {
    struct dt *x = NULL;
    struct manifest *m = j->m;
    j->m = NULL;                 /* daemon_add takes it */
    int st = daemon_add(d, j->data, j->len, m, NULL, j->dir, j->paused, j->only, j->sequential, &x, j->err,
                        sizeof j->err);
    reply_added(d, j->call, st, x, j->err);
  }
  add_job_free(j);
}

static void m_add(struct daemon *d, struct rpc_call *call, json_t *params)
{
  const char *b64 = param_str(params, "torrent"), *magnet = param_str(params, "magnet");
  if ((b64 == NULL) == (magnet == NULL)) {
    rpc_reply(call, 400, NULL, "give either \"torrent\" (the .torrent file in base64) or \"magnet\"");
    return;
  }
  bool paused = false, sequential = false;
  if (want_bool(call, params, "paused", &paused) < 0 || want_bool(call, params, "sequential", &sequential) < 0)
    return;
  json_t *dirv = json_object_get(params, "download_dir"), *onlyv = json_object_get(params, "only");
  if ((dirv && !json_is_string(dirv)) || (onlyv && !json_is_string(onlyv))) {
    rpc_reply(call, 400, NULL, "\"download_dir\" and \"only\" are strings");
    return;
  }
  const char *dir = dirv ? json_string_value(dirv) : NULL, *only = onlyv ? json_string_value(onlyv) : NULL;
  if (magnet) {                  /* nothing to hash: added at once */
    struct dt *x = NULL;
    char err[SHOAL_ERRLEN];
    int st = daemon_add(d, NULL, 0, NULL, magnet, dir, paused, only, sequential, &x, err, sizeof err);
    reply_added(d, call, st, x, err);
    return;
  }
  if (strlen(b64) / 4 * 3 > ADD_MAX_TORRENT) {
    rpc_replyf(call, 413, "the torrent is larger than %u bytes", ADD_MAX_TORRENT);
    return;
  }
  struct add_job *j = calloc(1, sizeof *j);
  if (j == NULL || (j->b64 = strdup(b64)) == NULL || (dir && (j->dir = strdup(dir)) == NULL) ||
      (only && (j->only = strdup(only)) == NULL)) {
    if (j)
      add_job_free(j);
    rpc_reply(call, 500, NULL, "out of memory");
    return;
  }
  j->d = d;
  j->call = call;
  j->paused = paused;
  j->sequential = sequential;
  if (uv_queue_work(d->loop, &j->req, add_work, add_done) < 0) {
    add_job_free(j);
    rpc_reply(call, 500, NULL, "cannot queue the work");
  }
}

static void m_list(struct daemon *d, struct rpc_call *call)
{
  unsigned n;
  struct dt **v = daemon_sorted(d, &n);
  json_t *arr = json_array();
  for (unsigned i = 0; i < n; i++)
    json_array_append_new(arr, summary(d, v[i], i + 1));
  free(v);
  rpc_reply(call, 200, json_pack("{s:o}", "torrents", arr), NULL);
}

/* Every torrent for "all", else the one the id names (answered if none). */
static struct dt **targets(struct daemon *d, struct rpc_call *call, json_t *params, unsigned *n)
{
  const char *id = param_str(params, "id");
  if (id && strcmp(id, "all") == 0) {
    struct dt **v = daemon_sorted(d, n);
    if (v == NULL && d->count) {
      rpc_reply(call, 500, NULL, "out of memory");
      return NULL;
    }
    return v ? v : calloc(1, sizeof *v);
  }
  struct dt *x = find_dt(d, call, params);
  if (x == NULL)
    return NULL;
  struct dt **v = malloc(sizeof *v);
  if (v == NULL) {
    rpc_reply(call, 500, NULL, "out of memory");
    return NULL;
  }
  v[0] = x;
  *n = 1;
  return v;
}

static void m_pause(struct daemon *d, struct rpc_call *call, json_t *params, bool pause)
{
  unsigned n = 0;
  struct dt **v = targets(d, call, params, &n);
  if (v == NULL)
    return;
  for (unsigned i = 0; i < n; i++)
    dt_pause(v[i], pause);
  free(v);
  rpc_reply(call, 200, json_pack("{s:I}", "count", (json_int_t)n), NULL);
}

static void m_add_peer(struct daemon *d, struct rpc_call *call, json_t *params)
{
  const char *addr = param_str(params, "address");
  struct sockaddr_storage ss;
  if (addr == NULL || compact_addr_parse(addr, &ss) < 0) {
    rpc_reply(call, 400, NULL, "\"address\" must be a numeric HOST:PORT such as 127.0.0.1:6881 or [::1]:6881");
    return;
  }
  unsigned n = 0;
  struct dt **v = targets(d, call, params, &n);
  if (v == NULL)
    return;
  for (unsigned i = 0; i < n; i++)
    dt_add_peer(v[i], (struct sockaddr *)&ss);
  free(v);
  rpc_reply(call, 200, json_pack("{s:I}", "torrents", (json_int_t)n), NULL);
}

static void m_limits(struct daemon *d, struct rpc_call *call, json_t *params)
{
  int64_t down = -1, up = -1;
  if (want_int(call, params, "down", 0, (int64_t)RATELIMIT_MAX, &down) < 0 ||
      want_int(call, params, "up", 0, (int64_t)RATELIMIT_MAX, &up) < 0)
    return;
  if (json_object_get(params, "id")) {
    struct dt *x = find_dt(d, call, params);
    if (x == NULL)
      return;
    if (down >= 0)
      x->rs.rate_down = (uint64_t)down;
    if (up >= 0)
      x->rs.rate_up = (uint64_t)up;
    if (down >= 0 || up >= 0) {
      dt_apply_limits(x);
      dt_mark_dirty(x, true);
    }
    rpc_reply(call, 200, json_pack("{s:I, s:I}", "down", (json_int_t)x->rs.rate_down, "up", (json_int_t)x->rs.rate_up),
              NULL);
    return;
  }
  if (down >= 0)
    d->set.rate_down = (uint64_t)down;
  if (up >= 0)
    d->set.rate_up = (uint64_t)up;
  if (down >= 0 || up >= 0) {
    daemon_apply_rates(d);
    daemon_save_settings(d);
  }
  rpc_reply(call, 200, json_pack("{s:I, s:I}", "down", (json_int_t)d->set.rate_down, "up", (json_int_t)d->set.rate_up),
            NULL);
}

static int parse_prio(const char *s)
{
  return !strcmp(s, "skip") ? 0 : !strcmp(s, "normal") ? 1 : !strcmp(s, "high") ? 2 : -1;
}

static void m_set(struct daemon *d, struct rpc_call *call, json_t *params)
{
  struct dt *x = find_dt(d, call, params);
  if (x == NULL)
    return;
  bool seq = false;
  int64_t idle = 0, maxp = 0;
  int has_seq = want_bool(call, params, "sequential", &seq);
  if (has_seq < 0)
    return;
  int has_idle = want_int(call, params, "seed_idle_s", -1, INT32_MAX, &idle);
  if (has_idle < 0)
    return;
  int has_maxp = want_int(call, params, "max_peers", 0, 10000, &maxp);
  if (has_maxp < 0)
    return;
  json_t *ratio = json_object_get(params, "seed_ratio");
  if (ratio && (!json_is_number(ratio) || !(json_number_value(ratio) >= -1 && json_number_value(ratio) <= 10000))) {
    rpc_reply(call, 400, NULL, "\"seed_ratio\" must be a number from -1 (the global limit) to 10000 (0 = none)");
    return;
  }
  const char *queue = param_str(params, "queue");
  json_t *qv = json_object_get(params, "queue");
  enum queue_move_dir dir = QUEUE_MOVE_TOP;
  if (qv) {
    if (queue && !strcmp(queue, "top"))
      dir = QUEUE_MOVE_TOP;
    else if (queue && !strcmp(queue, "up"))
      dir = QUEUE_MOVE_UP;
    else if (queue && !strcmp(queue, "down"))
      dir = QUEUE_MOVE_DOWN;
    else if (queue && !strcmp(queue, "bottom"))
      dir = QUEUE_MOVE_BOTTOM;
    else {
      rpc_reply(call, 400, NULL, "\"queue\" must be \"top\", \"up\", \"down\" or \"bottom\"");
      return;
    }
  }
  json_t *prios = json_object_get(params, "priorities");
  uint8_t *prio = NULL;
  if (prios) {
    if (!json_is_object(prios)) {
      rpc_reply(call, 400, NULL, "\"priorities\" must be an object: {\"<file index>\": \"skip\"|\"normal\"|\"high\"}");
      return;
    }
    if (x->paths == NULL) {
      rpc_reply(call, 409, NULL, "the torrent's metadata is not known yet");
      return;
    }
    prio = malloc(x->num_files ? x->num_files : 1);
    if (prio == NULL) {
      rpc_reply(call, 500, NULL, "out of memory");
      return;
    }
    for (uint32_t i = 0; i < x->num_files; i++)
      prio[i] = x->rs.files[i].priority;
    const char *key;
    json_t *val;
    json_object_foreach(prios, key, val) {
      char *end;
      unsigned long idx = strtoul(key, &end, 10);
      int p = json_is_string(val) ? parse_prio(json_string_value(val)) : -1;
      if (*key == 0 || *end || !isdigit((unsigned char)*key) || idx >= x->num_files || p < 0) {
        free(prio);
        rpc_replyf(call, 400, "bad priority entry \"%.40s\": want a file index below %u and skip, normal or high", key,
                   x->num_files);
        return;
      }
      prio[idx] = (uint8_t)p;
    }
  }
  /* everything checked: apply */
  if (prio) {
    int r = dt_set_priorities(x, prio, x->num_files);
    free(prio);
    if (r < 0) {
      rpc_replyf(call, 500, "cannot set priorities: %s", shoal_strerror(r));
      return;
    }
  }
  if (has_seq > 0)
    dt_set_sequential(x, seq);
  if (has_idle > 0) {
    x->rs.seed_idle_s = idle;
    x->seed_done = false;
  }
  if (ratio) {
    double r = json_number_value(ratio);
    x->rs.seed_ratio_milli = r < 0 ? -1 : (int64_t)llround(r * 1000.0);
    x->seed_done = false;
  }
  if (has_maxp > 0) {
    x->rs.max_peers = (uint32_t)maxp;
    dt_apply_limits(x);
  }
  if (qv) {
    unsigned n;
    struct dt **v = daemon_sorted(d, &n);
    struct queue_entry *e = n ? calloc(n, sizeof *e) : NULL;
    if (v && e) {
      for (unsigned i = 0; i < n; i++)
        e[i] = (struct queue_entry){ .id = i, .position = i };
      unsigned me = 0;
      for (unsigned i = 0; i < n; i++)
        if (v[i] == x)
          me = i;
      if (queue_move(e, n, me, dir) == 0)
        for (unsigned i = 0; i < n; i++)
          if (v[e[i].id]->rs.position != e[i].position) {
            v[e[i].id]->rs.position = e[i].position;
            dt_mark_dirty(v[e[i].id], true);
          }
    }
    free(v);
    free(e);
  }
  dt_mark_dirty(x, true);
  daemon_kick(d);
  rpc_reply(call, 200, summary(d, x, index_of(d, x)), NULL);
}

static void m_peers(struct daemon *d, struct rpc_call *call, json_t *params)
{
  struct dt *x = find_dt(d, call, params);
  if (x == NULL)
    return;
  json_t *arr = json_array();
  if (x->t) {
    struct torrent_peer_info *p = calloc(DAEMON_MAX_LISTED_PEERS, sizeof *p);
    if (p == NULL) {
      json_decref(arr);
      rpc_reply(call, 500, NULL, "out of memory");
      return;
    }
    unsigned n = torrent_get_peers(x->t, p, DAEMON_MAX_LISTED_PEERS);
    if (n > DAEMON_MAX_LISTED_PEERS)
      n = DAEMON_MAX_LISTED_PEERS;
    struct torrent_stats st;
    torrent_get_stats(x->t, &st);
    for (unsigned i = 0; i < n; i++) {
      double progress = st.num_pieces ? (double)p[i].have_pieces / st.num_pieces : 0;
      json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b, s:f, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:b}",
                                           "address", p[i].address, "client", p[i].client, "outgoing", p[i].outgoing,
                                           "seed", p[i].seed, "progress", progress, "down_rate",
                                           (json_int_t)p[i].down_rate, "up_rate", (json_int_t)p[i].up_rate,
                                           "downloaded", (json_int_t)p[i].downloaded, "uploaded",
                                           (json_int_t)p[i].uploaded, "am_choking", p[i].am_choking, "am_interested",
                                           p[i].am_interested, "peer_choking", p[i].peer_choking, "peer_interested",
                                           p[i].peer_interested));
    }
    free(p);
  }
  rpc_reply(call, 200, json_pack("{s:o}", "peers", arr), NULL);
}

/* Resident memory from /proc/self/statm, bytes (0 when unknown). */
static uint64_t rss_bytes(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, rss = 0;
  if (f == NULL)
    return 0;
  if (fscanf(f, "%lu %lu", &size, &rss) != 2)
    rss = 0;
  fclose(f);
  return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static unsigned open_files(void)
{
  DIR *dir = opendir("/proc/self/fd");
  unsigned n = 0;
  if (dir == NULL)
    return 0;
  while (readdir(dir) != NULL && n < 1000000)
    n++;
  closedir(dir);
  return n > 3 ? n - 3 : 0;      /* ".", "..", and the one opendir holds */
}

static void m_stats(struct daemon *d, struct rpc_call *call)
{
  struct session_stats ss;
  session_get_stats(d->session, &ss);
  unsigned downloading = 0, seeding = 0;
  for (struct dt *x = d->list; x; x = x->next) {
    if (x->t == NULL)
      continue;
    struct torrent_stats st;
    torrent_get_stats(x->t, &st);
    downloading += st.state == TORRENT_DOWNLOADING || st.state == TORRENT_METADATA || st.state == TORRENT_CHECKING;
    seeding += st.state == TORRENT_SEEDING;
  }
  json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
                        "version", "0.1.0", "uptime_s", (json_int_t)((uv_now(d->loop) - d->started_ms) / 1000),
                        "torrents", (json_int_t)d->count, "downloading", (json_int_t)downloading, "seeding",
                        (json_int_t)seeding, "peers", (json_int_t)ss.peers, "down_rate", (json_int_t)ss.down_rate,
                        "up_rate", (json_int_t)ss.up_rate, "downloaded", (json_int_t)ss.downloaded, "uploaded",
                        (json_int_t)ss.uploaded, "rate_down_limit", (json_int_t)d->set.rate_down, "rate_up_limit",
                        (json_int_t)d->set.rate_up, "listen_port", (json_int_t)session_port(d->session),
                        "open_files", (json_int_t)open_files(), "rss_bytes", (json_int_t)rss_bytes(), "config_dir",
                        d->config_dir);
  rpc_reply(call, 200, o, NULL);
}

void daemon_rpc_handle(void *ctx, struct rpc_call *call, const char *method, json_t *params)
{
  struct daemon *d = ctx;
  if (d->shutting_down) {
    rpc_reply(call, 503, NULL, "the daemon is shutting down");
    return;
  }
  LOG_DEBUG("control API: %s", method);
  if (!strcmp(method, "add")) {
    m_add(d, call, params);
  } else if (!strcmp(method, "add_peer")) {
    m_add_peer(d, call, params);
  } else if (!strcmp(method, "list")) {
    m_list(d, call);
  } else if (!strcmp(method, "info")) {
    struct dt *x = find_dt(d, call, params);
    if (x)
      rpc_reply(call, 200, details(d, x), NULL);
  } else if (!strcmp(method, "pause") || !strcmp(method, "resume")) {
    m_pause(d, call, params, method[0] == 'p');
  } else if (!strcmp(method, "remove")) {
    bool del = false;
    if (want_bool(call, params, "delete_data", &del) < 0)
      return;
    struct dt *x = find_dt(d, call, params);
    if (x) {
      dt_remove(x, del);
      rpc_reply(call, 200, json_pack("{s:s}", "id", x->hex), NULL);
    }
  } else if (!strcmp(method, "verify")) {
    struct dt *x = find_dt(d, call, params);
    if (x) {
      dt_verify(x);
      rpc_reply(call, 200, json_pack("{s:s}", "id", x->hex), NULL);
    }
  } else if (!strcmp(method, "limits")) {
    m_limits(d, call, params);
  } else if (!strcmp(method, "set")) {
    m_set(d, call, params);
  } else if (!strcmp(method, "peers")) {
    m_peers(d, call, params);
  } else if (!strcmp(method, "stats")) {
    m_stats(d, call);
  } else {
    rpc_replyf(call, 400, "unknown method \"%.60s\"", method);
  }
}
