/* main.c -- the `shoal` command: create, info, seed, get. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/compact.h"
#include "common/err.h"
#include "common/filesel.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/magnet.h"
#include "common/manifest.h"
#include "common/util.h"
#include "peer/create.h"
#include "peer/daemon.h"
#include "peer/remote.h"
#include "peer/resume.h"
#include "peer/session.h"

#define EXIT_RUNTIME 1
static long fd_limit = -1;      /* open files allowed, as found at start */
#define EXIT_USAGE 2
#define MAX_MANUAL_PEERS 64
#define MAX_ANNOUNCE_URLS 32

static const char usage_text[] =
  "usage: shoal <command> [options]\n"
  "\n"
  "  shoal create PATH -o FILE.torrent [--announce URL]... [--piece-size N] [--private] [--comment TEXT]\n"
  "      write a BitTorrent metainfo file for a file or a folder\n"
  "  shoal info FILE.torrent [--json]\n"
  "      show what a .torrent describes\n"
  "  shoal seed PATH [FILE.torrent] [--announce URL]... [--peer HOST:PORT]... [--port N] [--bind ADDR]\n"
  "      share PATH (with its .torrent, or one is created next to it) until interrupted\n"
  "  shoal get FILE.torrent|MAGNET [-o DIR] [--seed] [--only LIST|--skip LIST] [--save-torrent FILE]\n"
  "            [--peer HOST:PORT]... [--port N] [--bind ADDR]\n"
  "      download into DIR (default .), checking what is already there; exit 0 when complete;\n"
  "      LIST is file indexes as `shoal info` shows them, e.g. 0,3-5\n"
  "  shoal daemon [--config-dir DIR] [--download-dir DIR] [--rpc-port N] [--port N] [--foreground]\n"
  "      a long-lived node that keeps many torrents; settings in DIR/settings.json\n"
  "  shoal remote [--config-dir DIR] [--json] COMMAND ...   (shoal remote --help for the commands)\n"
  "      control a running daemon: add, list, info, pause, resume, remove, verify, limits, peers, stats\n"
  "\n"
  "common options: -q (quiet), -v (verbose, twice for debug), -h (help)\n"
  "  --port N         listening port (default 6881, or the next free one up to 6890, then any)\n"
  "  --bind ADDR      listening address (default 0.0.0.0)\n"
  "  --peer HOST:PORT connect to this peer directly (repeatable; numeric address)\n"
  "  --max-peers N    connections per torrent (default 50)\n"
  "  --upload-slots N peers uploaded to at once (default 4)\n";

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("shoal: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n(see 'shoal --help')\n", stderr);
  va_end(ap);
  exit(EXIT_USAGE);
}

static void human_size(uint64_t n, char *out, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
  double v = (double)n;
  unsigned u = 0;
  while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(out, len, "%" PRIu64 " B", n);
  else
    snprintf(out, len, "%.1f %s", v, units[u]);
}

static void human_time(uint64_t s, char *out, size_t len)
{
  if (s >= 86400 * 100)
    snprintf(out, len, "--");
  else if (s >= 3600)
    snprintf(out, len, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(out, len, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
}

/* "16K", "1M", "262144" -> bytes; 0 on error. */
static uint64_t parse_size(const char *s)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-')
    return 0;
  uint64_t mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1024, end++;
  else if (*end == 'm' || *end == 'M')
    mul = 1024 * 1024, end++;
  if (*end == 'i' || *end == 'I')
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end != '\0' || v > UINT64_MAX / mul)
    return 0;
  return v * mul;
}

static unsigned parse_uint(const char *s, unsigned max, const char *what)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || *s == '-' || v > max)
    die_usage("%s must be a number from 0 to %u, not '%s'", what, max, s);
  return (unsigned)v;
}

/* ---- shared options ---- */

struct opts {
  const char *out;
  const char *bind;
  unsigned port;
  unsigned max_peers, upload_slots;
  bool seed_after;
  bool json;
  bool private_;
  const char *comment;
  uint64_t piece_size;
  const char *announce[MAX_ANNOUNCE_URLS];
  unsigned nannounce;
  struct sockaddr_storage peers[MAX_MANUAL_PEERS];
  unsigned npeers;
  int verbosity;
  const char *args[2];
  int nargs;
  const char *only, *skip, *save_torrent;
};

enum { OPT_PEER = 1000, OPT_PORT, OPT_BIND, OPT_SEED, OPT_JSON, OPT_ANNOUNCE, OPT_PIECE, OPT_PRIVATE,
       OPT_COMMENT, OPT_MAXPEERS, OPT_SLOTS, OPT_ONLY, OPT_SKIP, OPT_SAVE };

static void parse_opts(int argc, char **argv, struct opts *o, const char *allowed)
{
  static const struct option longs[] = {
    { "output", required_argument, NULL, 'o' }, { "peer", required_argument, NULL, OPT_PEER },
    { "port", required_argument, NULL, OPT_PORT }, { "bind", required_argument, NULL, OPT_BIND },
    { "seed", no_argument, NULL, OPT_SEED }, { "json", no_argument, NULL, OPT_JSON },
    { "announce", required_argument, NULL, OPT_ANNOUNCE }, { "piece-size", required_argument, NULL, OPT_PIECE },
    { "private", no_argument, NULL, OPT_PRIVATE }, { "comment", required_argument, NULL, OPT_COMMENT },
    { "max-peers", required_argument, NULL, OPT_MAXPEERS }, { "upload-slots", required_argument, NULL, OPT_SLOTS },
    { "only", required_argument, NULL, OPT_ONLY }, { "skip", required_argument, NULL, OPT_SKIP },
    { "save-torrent", required_argument, NULL, OPT_SAVE },
    { "quiet", no_argument, NULL, 'q' }, { "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *cmd = argv[0];
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:qvh", longs, NULL)) != -1) {
    const char *name = NULL;
    for (const struct option *l = longs; l->name; l++)
      if (l->val == c)
        name = l->name;
    if (c != '?' && c != 'h' && c != 'q' && c != 'v' && !strstr(allowed, name ? name : ""))
      die_usage("%s does not take --%s", cmd, name);
    switch (c) {
    case 'o': o->out = optarg; break;
    case 'q': o->verbosity--; break;
    case 'v': o->verbosity++; break;
    case 'h': fputs(usage_text, stdout); exit(0);
    case OPT_PEER:
      if (o->npeers >= MAX_MANUAL_PEERS)
        die_usage("at most %d --peer options", MAX_MANUAL_PEERS);
      if (compact_addr_parse(optarg, &o->peers[o->npeers]) < 0 ||
          (o->peers[o->npeers].ss_family == AF_INET ? ((struct sockaddr_in *)&o->peers[o->npeers])->sin_port
                                                    : ((struct sockaddr_in6 *)&o->peers[o->npeers])->sin6_port) == 0)
        die_usage("--peer wants a numeric HOST:PORT such as 127.0.0.1:6881 or [::1]:6881, not '%s'", optarg);
      o->npeers++;
      break;
    case OPT_PORT: o->port = parse_uint(optarg, 65535, "--port"); break;
    case OPT_BIND: o->bind = optarg; break;
    case OPT_SEED: o->seed_after = true; break;
    case OPT_JSON: o->json = true; break;
    case OPT_ANNOUNCE:
      if (o->nannounce >= MAX_ANNOUNCE_URLS)
        die_usage("at most %d --announce options", MAX_ANNOUNCE_URLS);
      o->announce[o->nannounce++] = optarg;
      break;
    case OPT_PIECE:
      o->piece_size = parse_size(optarg);
      if (o->piece_size < MANIFEST_MIN_PIECE_LEN || o->piece_size > MANIFEST_MAX_PIECE_LEN ||
          (o->piece_size & (o->piece_size - 1)))
        die_usage("--piece-size must be a power of two from 16K to 16M, not '%s'", optarg);
      break;
    case OPT_PRIVATE: o->private_ = true; break;
    case OPT_COMMENT: o->comment = optarg; break;
    case OPT_MAXPEERS: o->max_peers = parse_uint(optarg, 10000, "--max-peers"); break;
    case OPT_SLOTS: o->upload_slots = parse_uint(optarg, 1000, "--upload-slots"); break;
    case OPT_ONLY: o->only = optarg; break;
    case OPT_SKIP: o->skip = optarg; break;
    case OPT_SAVE: o->save_torrent = optarg; break;
    default: die_usage("bad option");
    }
  }
  for (int i = optind; i < argc; i++) {
    if (o->nargs >= 2)
      die_usage("%s: too many arguments", cmd);
    o->args[o->nargs++] = argv[i];
  }
  if (o->only && o->skip)
    die_usage("--only and --skip do not go together");
  log_level = LOG_LEVEL_WARN + o->verbosity;
  if (log_level < LOG_LEVEL_ERROR)
    log_level = LOG_LEVEL_ERROR;
}

/* ---- info ---- */

/* The torrent's magnet link with its first tracker of each tier. */
static char *magnet_of(const struct manifest *m)
{
  const char *tr[32];
  size_t n = 0;
  for (uint32_t i = 0; i < m->num_tiers && n < ARRAY_SIZE(tr); i++)
    if (m->tiers[i].count)
      tr[n++] = m->tiers[i].urls[0];
  return magnet_build(m->infohash, m->name, tr, n);
}

static int load_manifest_or_die(const char *path, struct manifest **m)
{
  char err[SHOAL_ERRLEN];
  int r = manifest_load(path, m, err, sizeof err);
  if (r < 0) {
    fprintf(stderr, "shoal: %s\n", err);     /* the message names the file already */
    return EXIT_USAGE;
  }
  return 0;
}

static int cmd_info(int argc, char **argv)
{
  struct opts o = { 0 };
  parse_opts(argc, argv, &o, "json");
  if (o.nargs != 1)
    die_usage("info takes one .torrent file");
  struct manifest *m;
  int r = load_manifest_or_die(o.args[0], &m);
  if (r)
    return r;
  char hex[41];
  hash_hex(m->infohash, 20, hex);
  if (o.json) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(m->name));
    json_object_set_new(j, "infohash", json_string(hex));
    json_object_set_new(j, "total_size", json_integer((json_int_t)m->total_length));
    json_object_set_new(j, "piece_size", json_integer(m->piece_length));
    json_object_set_new(j, "pieces", json_integer(m->num_pieces));
    json_object_set_new(j, "private", json_boolean(m->private_));
    char *link = magnet_of(m);
    json_object_set_new(j, "magnet", link ? json_string(link) : json_null());
    free(link);
    json_object_set_new(j, "multi_file", json_boolean(m->multi_file));
    json_t *files = json_array();
    for (uint32_t i = 0; i < m->num_files; i++) {
      json_t *f = json_object();
      json_object_set_new(f, "path", json_string(m->files[i].path));
      json_object_set_new(f, "size", json_integer((json_int_t)m->files[i].length));
      json_array_append_new(files, f);
    }
    json_object_set_new(j, "files", files);
    json_t *tiers = json_array();
    for (uint32_t i = 0; i < m->num_tiers; i++) {
      json_t *tier = json_array();
      for (uint32_t k = 0; k < m->tiers[i].count; k++)
        json_array_append_new(tier, json_string(m->tiers[i].urls[k]));
      json_array_append_new(tiers, tier);
    }
    json_object_set_new(j, "trackers", tiers);
    json_object_set_new(j, "comment", m->comment ? json_string(m->comment) : json_null());
    json_object_set_new(j, "created_by", m->created_by ? json_string(m->created_by) : json_null());
    json_object_set_new(j, "creation_date", m->creation_date ? json_integer(m->creation_date) : json_null());
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
      puts(s);
    free(s);
    json_decref(j);
  } else {
    char size[32], psize[32];
    human_size(m->total_length, size, sizeof size);
    human_size(m->piece_length, psize, sizeof psize);
    printf("name:       %s\n", m->name);
    printf("infohash:   %s\n", hex);
    printf("size:       %s (%" PRIu64 " bytes)\n", size, m->total_length);
    printf("pieces:     %u x %s\n", m->num_pieces, psize);
    printf("private:    %s\n", m->private_ ? "yes" : "no");
    char *link = magnet_of(m);
    if (link)
      printf("magnet:     %s\n", link);
    free(link);
    for (uint32_t i = 0; i < m->num_tiers; i++)
      for (uint32_t k = 0; k < m->tiers[i].count; k++)
        printf("tracker:    [tier %u] %s\n", i, m->tiers[i].urls[k]);
    if (m->comment)
      printf("comment:    %s\n", m->comment);
    if (m->created_by)
      printf("created by: %s\n", m->created_by);
    if (m->creation_date) {
      time_t when = (time_t)m->creation_date;
      struct tm tm;
      char date[64];
      if (gmtime_r(&when, &tm) && strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", &tm))
        printf("created:    %s\n", date);
    }
    printf("files:      %u\n", m->num_files);
    for (uint32_t i = 0; i < m->num_files; i++) {
      if (m->files[i].attr & MANIFEST_ATTR_PAD)
        continue;
      human_size(m->files[i].length, size, sizeof size);
      printf("  %4u  %10s  %s\n", i, size, m->files[i].path);
    }
  }
  manifest_free(m);
  return 0;
}

/* ---- create ---- */

struct create_run {
  int status;
  struct manifest *m;
  char err[SHOAL_ERRLEN];
  bool show_progress;
};

static void create_progress(void *ctx, uint32_t done, uint32_t total)
{
  struct create_run *cr = ctx;
  if (cr->show_progress && total)
    fprintf(stderr, "\rhashing: %3u%% (%u/%u pieces)", (unsigned)((uint64_t)done * 100 / total), done, total);
}

static void create_done(void *ctx, int status, struct manifest *m, const char *err)
{
  struct create_run *cr = ctx;
  cr->status = status;
  cr->m = m;
  if (err)
    snprintf(cr->err, sizeof cr->err, "%s", err);
}

/* Hashes PATH on the threadpool (the loop runs nothing else meanwhile). */
static int run_create(const struct opts *o, const char *path, struct manifest **out)
{
  struct manifest_tier tier = { (char **)o->announce, o->nannounce };
  struct create_opts co = {
    .path = path,
    .piece_length = (uint32_t)o->piece_size,
    .tiers = o->nannounce ? &tier : NULL,
    .num_tiers = o->nannounce ? 1 : 0,
    .private_ = o->private_,
    .comment = o->comment,
    .created_by = "shoal/0.1",
    .creation_date = (int64_t)time(NULL),
  };
  struct create_run cr = { .status = 1, .show_progress = isatty(2) && o->verbosity >= 0 };
  uv_loop_t loop;
  int r = uv_loop_init(&loop);
  if (r < 0) {
    fprintf(stderr, "shoal: cannot start: %s\n", uv_strerror(r));
    return EXIT_RUNTIME;
  }
  r = create_start(&loop, &co, create_progress, create_done, &cr);
  if (r == 0)
    uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (cr.show_progress)
    fputs("\r\033[K", stderr);
  if (r < 0) {
    fprintf(stderr, "shoal: %s: %s\n", path, shoal_strerror(r));
    return r == UV_ENOENT || r == UV_EINVAL || r == SHOAL_EPATH ? EXIT_USAGE : EXIT_RUNTIME;
  }
  if (cr.status < 0) {
    fprintf(stderr, "shoal: %s: %s\n", path, cr.err[0] ? cr.err : shoal_strerror(cr.status));
    return cr.status == UV_ENOENT || cr.status == SHOAL_EPATH ? EXIT_USAGE : EXIT_RUNTIME;
  }
  *out = cr.m;
  return 0;
}

/* Mode of the .torrent files written here: 0644 less the umask, read once in
 * main() before any thread could be creating files. */
static mode_t torrent_file_mode = 0644;

/* Writes a .torrent atomically with resume_write_atomic (temporary name,
 * fsync, rename, folder fsync), then gives it torrent_file_mode instead of
 * the 0600 of a state file.  Blocking: before the loop runs, or on the
 * threadpool.  0 or a negative UV_E* code. */
static int write_torrent_file(const char *path, const uint8_t *data, size_t len)
{
  int r = resume_write_atomic(path, data, len);
  if (r == 0 && chmod(path, torrent_file_mode) != 0)
    r = -errno;
  return r;
}

static int write_torrent(struct manifest *m, const char *path)
{
  struct buf b;
  buf_init(&b, MANIFEST_MAX_FILE_SIZE);
  int r = manifest_encode(m, &b);
  if (r < 0) {
    fprintf(stderr, "shoal: cannot encode the torrent: %s\n", shoal_strerror(r));
    buf_free(&b);
    return EXIT_RUNTIME;
  }
  int err = write_torrent_file(path, b.p, b.len);
  if (err)
    fprintf(stderr, "shoal: cannot write %s: %s\n", path, shoal_strerror(err));
  buf_free(&b);
  return err ? EXIT_RUNTIME : 0;
}

static int cmd_create(int argc, char **argv)
{
  struct opts o = { 0 };
  parse_opts(argc, argv, &o, "output announce piece-size private comment");
  if (o.nargs != 1)
    die_usage("create takes one PATH (a file or a folder)");
  if (o.out == NULL)
    die_usage("create needs -o FILE.torrent");
  struct manifest *m;
  int r = run_create(&o, o.args[0], &m);
  if (r)
    return r;
  r = write_torrent(m, o.out);
  if (r == 0) {
    char hex[41];
    hash_hex(m->infohash, 20, hex);
    printf("torrent:  %s\ninfohash: %s\n", o.out, hex);
  }
  manifest_free(m);
  return r;
}

/* ---- seed and get: a running session ---- */

struct app {
  const struct opts *o;
  const struct magnet *mg;
  uv_loop_t *loop;
  struct session *session;
  struct torrent *torrent;
  uv_timer_t progress;
  uv_signal_t sigint, sigterm;
  int exit_code;
  bool stopping;
  bool seed_after;       /* get: keep seeding when complete */
  bool tty;
  int verbosity;
  uint64_t started_ms, last_line_ms;
  bool completed;
};

static void app_closed(void *ctx)
{
  struct app *a = ctx;
  a->session = NULL;
}

static void app_stop(struct app *a, int code)
{
  if (a->stopping)
    return;
  a->stopping = true;
  a->exit_code = code;
  uv_timer_stop(&a->progress);
  uv_close((uv_handle_t *)&a->progress, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  if (a->tty && a->verbosity >= 0)
    fputs("\n", stderr);
  session_close(a->session, app_closed, a);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct app *a = h->data;
  if (a->stopping)
    return;
  LOG_INFO("caught signal %d: stopping", signum);
  app_stop(a, 0);
}

static void draw_progress(struct app *a, bool final)
{
  struct torrent_stats st;
  torrent_get_stats(a->torrent, &st);
  char have[32], total[32], down[32], up[32], eta[32] = "--";
  human_size(st.have_bytes, have, sizeof have);
  human_size(st.total_bytes, total, sizeof total);
  human_size(st.down_rate, down, sizeof down);
  human_size(st.up_rate, up, sizeof up);
  double pct = st.total_bytes ? 100.0 * (double)st.have_bytes / (double)st.total_bytes : 100.0;
  if (st.state == TORRENT_CHECKING)
    pct = st.num_pieces ? 100.0 * st.checked_pieces / st.num_pieces : 0;
  if (st.state == TORRENT_METADATA)
    pct = st.metadata_pieces ? 100.0 * st.metadata_have / st.metadata_pieces : 0;
  if (st.down_rate > 0 && st.total_bytes > st.have_bytes)
    human_time((st.total_bytes - st.have_bytes) / st.down_rate, eta, sizeof eta);
  const char *what = st.state == TORRENT_CHECKING  ? "checking"
                     : st.state == TORRENT_METADATA ? "metadata"
                     : st.state == TORRENT_SEEDING  ? "seeding"
                                                    : "downloading";
  if (final) {
    /* the summary: average rates over the whole run */
    uint64_t ms = uv_now(a->loop) - a->started_ms;
    what = "done";
    human_size(ms ? st.downloaded * 1000 / ms : st.downloaded, down, sizeof down);
    human_size(ms ? st.uploaded * 1000 / ms : st.uploaded, up, sizeof up);
  }
  if (a->tty) {
    char bar[31];
    int filled = (int)(pct * 30 / 100);
    for (int i = 0; i < 30; i++)
      bar[i] = i < filled ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r\033[K%-11s [%s] %5.1f%%  %s/%s  down %s/s  up %s/s  peers %u  eta %s", what, bar, pct,
            have, total, down, up, st.peers, eta);
    if (final)
      fputs("\n", stderr);
  } else {
    fprintf(stderr, "shoal: %s %.1f%% %s/%s down %s/s up %s/s peers %u eta %s\n", what, pct, have, total, down, up,
            st.peers, eta);
  }
  fflush(stderr);
}

static void on_progress_timer(uv_timer_t *h)
{
  struct app *a = h->data;
  if (a->verbosity < 0)
    return;
  uint64_t now = uv_now(a->loop);
  if (!a->tty && now - a->last_line_ms < 5000)
    return;
  a->last_line_ms = now;
  draw_progress(a, false);
}

/* --only / --skip / the magnet's `so`: which files to download. */
static int apply_selection(struct app *a, struct torrent *t)
{
  const struct manifest *m = torrent_manifest(t);
  const char *list = a->o->only ? a->o->only : a->o->skip;
  bool from_magnet = list == NULL && a->mg && a->mg->nso > 0;
  if (list == NULL && !from_magnet)
    return 0;
  uint8_t *prio = calloc(m->num_files, 1);
  if (prio == NULL)
    return -1;
  char err[256];
  if (from_magnet) {
    for (uint32_t i = 0; i < m->num_files; i++)
      prio[i] = magnet_file_selected(a->mg, i);
  } else if (filesel_parse(list, prio, m->num_files, err, sizeof err) < 0) {
    fprintf(stderr, "shoal: %s\n", err);
    free(prio);
    return -1;
  } else if (a->o->skip) {
    for (uint32_t i = 0; i < m->num_files; i++)
      prio[i] = !prio[i];
  }
  int r = torrent_set_file_priorities(t, prio, m->num_files);
  free(prio);
  return r;
}

struct save_job {
  uv_work_t req;
  struct buf data;
  char *path;
  int err;
};

static void save_work(uv_work_t *req)
{
  struct save_job *j = container_of(req, struct save_job, req);
  j->err = write_torrent_file(j->path, j->data.p, j->data.len);
}

static void save_done(uv_work_t *req, int status)
{
  struct save_job *j = container_of(req, struct save_job, req);
  if (status < 0 || j->err)
    fprintf(stderr, "shoal: cannot write %s: %s\n", j->path, shoal_strerror(status < 0 ? status : j->err));
  else
    LOG_INFO("saved the torrent as %s", j->path);
  buf_free(&j->data);
  free(j->path);
  free(j);
}

/* Keeps a magnet's metadata as a .torrent, written on the threadpool. */
static void save_torrent(struct app *a, struct torrent *t, const char *path)
{
  struct save_job *j = calloc(1, sizeof *j);
  if (j == NULL)
    return;
  buf_init(&j->data, MANIFEST_MAX_FILE_SIZE);
  j->path = strdup(path);
  if (j->path == NULL || manifest_encode((struct manifest *)torrent_manifest(t), &j->data) < 0 ||
      uv_queue_work(a->loop, &j->req, save_work, save_done) < 0) {
    fprintf(stderr, "shoal: cannot save the torrent as %s\n", path);
    buf_free(&j->data);
    free(j->path);
    free(j);
  }
}

static void ev_metadata(struct torrent *t, void *ctx)
{
  struct app *a = ctx;
  const struct manifest *m = torrent_manifest(t);
  char size[32];
  human_size(m->total_length, size, sizeof size);
  if (a->verbosity >= 0)
    fprintf(stderr, "%sshoal: metadata received: %s, %u files, %s\n", a->tty ? "\r\033[K" : "", m->name,
            m->num_files, size);
  if (apply_selection(a, t) < 0) {
    app_stop(a, EXIT_USAGE);
    return;
  }
  if (a->o->save_torrent)
    save_torrent(a, t, a->o->save_torrent);
}

static void ev_complete(struct torrent *t, void *ctx)
{
  struct app *a = ctx;
  if (a->completed)
    return;
  a->completed = true;
  struct torrent_stats st;
  torrent_get_stats(t, &st);
  if (a->seed_after && st.downloaded == 0)
    return;                      /* a seeder that had everything from the start */
  if (a->verbosity >= 0)
    draw_progress(a, true);
  if (st.downloaded > 0) {
    char size[32], rate[32];
    double secs = (double)(uv_now(a->loop) - a->started_ms) / 1000.0;
    human_size(st.downloaded, size, sizeof size);
    human_size((uint64_t)((double)st.downloaded / (secs > 0.001 ? secs : 0.001)), rate, sizeof rate);
    printf("complete: %s (%s in %.1f s, %s/s)\n", torrent_manifest(t)->name, size, secs, rate);
  } else {
    printf("complete: %s (all data was already here)\n", torrent_manifest(t)->name);
  }
  fflush(stdout);
  if (!a->seed_after)
    app_stop(a, 0);
}

static void ev_error(struct torrent *t, int err, const char *msg, void *ctx)
{
  struct app *a = ctx;
  (void)err;
  fprintf(stderr, "%sshoal: %s: %s\n", a->tty ? "\n" : "", torrent_manifest(t)->name, msg);
  app_stop(a, EXIT_RUNTIME);
}

static void ev_tracker(struct torrent *t, const char *url, const char *msg, void *ctx)
{
  struct app *a = ctx;
  (void)t;
  if (strncmp(msg, "ok", 2) != 0 && a->verbosity >= 0)
    fprintf(stderr, "%sshoal: tracker %s: %s\n", a->tty ? "\r\033[K" : "", url, msg);
}

static int run_session(const struct opts *o, struct manifest *m, const struct magnet *mg, const char *dir,
                       bool skip_check, bool seed_after, const char *torrent_path)
{
  uv_loop_t *loop = uv_default_loop();
  if (loop == NULL) {
    fprintf(stderr, "shoal: cannot start the event loop (too many open files?)\n");
    manifest_free(m);
    return EXIT_RUNTIME;
  }
  struct app a = { .o = o, .mg = mg, .loop = loop, .seed_after = seed_after, .tty = isatty(2),
                   .verbosity = o->verbosity };
  struct session_config cfg = { .bind_addr = o->bind, .port = (uint16_t)o->port, .max_peers = o->max_peers,
                                .upload_slots = o->upload_slots };
  /* every connection costs a descriptor: leave room for files and the loop */
  if (fd_limit > 0 && cfg.max_peers == 0 && fd_limit < 256)
    cfg.max_peers = (unsigned)MAX(1L, (fd_limit - 24) / 2);
  const char *floor = getenv("SHOAL_ANNOUNCE_FLOOR");  /* tests: shorter re-announce */
  if (floor)
    cfg.announce_floor_s = (unsigned)atoi(floor);
  int r = session_new(loop, &cfg, &a.session);
  if (r < 0) {
    fprintf(stderr, "shoal: cannot start: %s\n", shoal_strerror(r));
    manifest_free(m);
    return EXIT_RUNTIME;
  }
  if ((r = session_listen(a.session)) < 0) {
    fprintf(stderr, "shoal: cannot listen on %s port %u: %s\n", o->bind ? o->bind : "0.0.0.0", o->port,
            shoal_strerror(r));
    manifest_free(m);
    session_close(a.session, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return EXIT_RUNTIME;
  }
  char hex[41];
  hash_hex(m ? m->infohash : mg->infohash, 20, hex);
  char name[256];
  snprintf(name, sizeof name, "%s", m ? m->name : mg->name ? mg->name : hex);
  struct torrent_opts topts = { .download_dir = dir, .skip_check = skip_check };
  struct torrent_events ev = { .metadata = ev_metadata, .complete = ev_complete, .error = ev_error,
                               .tracker = ev_tracker };
  if (m)
    r = session_add(a.session, m, &topts, &ev, &a, &a.torrent);
  else
    r = session_add_magnet(a.session, mg->infohash, mg->name, (const char *const *)mg->trackers, mg->ntrackers,
                           &topts, &ev, &a, &a.torrent);
  if (r == 0 && m && apply_selection(&a, a.torrent) < 0)
    r = UV_EINVAL;
  if (r < 0) {
    if (r != UV_EINVAL)
      fprintf(stderr, "shoal: %s: %s\n", name, shoal_strerror(r));
    session_close(a.session, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return r == SHOAL_EPATH || r == UV_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
  }
  printf("%s: %s\n", seed_after && torrent_path ? "seeding" : "name", name);
  if (torrent_path)
    printf("torrent: %s\n", torrent_path);
  if (m) {
    char *link = magnet_of(torrent_manifest(a.torrent));
    if (link)
      printf("magnet: %s\n", link);
    free(link);
  }
  printf("infohash: %s\nport: %u\n", hex, session_port(a.session));
  fflush(stdout);
  for (unsigned i = 0; i < o->npeers; i++)
    torrent_add_peer(a.torrent, (struct sockaddr *)&o->peers[i], true);
  for (size_t i = 0; mg && i < mg->npeers; i++)
    torrent_add_peer(a.torrent, (const struct sockaddr *)&mg->peers[i], true);

  uv_timer_init(loop, &a.progress);
  a.progress.data = &a;
  uv_timer_start(&a.progress, on_progress_timer, 500, a.tty ? 500 : 1000);
  uv_signal_init(loop, &a.sigint);
  uv_signal_init(loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  a.started_ms = uv_now(loop);
  if ((r = torrent_start(a.torrent)) < 0) {
    fprintf(stderr, "shoal: %s: cannot check the data: %s\n", name, shoal_strerror(r));
    app_stop(&a, EXIT_RUNTIME);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return a.exit_code;
}

static int cmd_get(int argc, char **argv)
{
  struct opts o = { 0 };
  parse_opts(argc, argv, &o, "output seed peer port bind max-peers upload-slots only skip save-torrent");
  if (o.nargs != 1)
    die_usage("get takes one .torrent file or magnet link");
  struct manifest *m = NULL;
  struct magnet mg;
  bool is_magnet = strncmp(o.args[0], "magnet:", 7) == 0;
  int r;
  if (is_magnet) {
    char err[SHOAL_ERRLEN];
    if (magnet_parse(&mg, o.args[0], err, sizeof err) < 0) {
      fprintf(stderr, "shoal: %s\n", err);
      return EXIT_USAGE;
    }
  } else {
    if (o.save_torrent)
      die_usage("--save-torrent goes with a magnet link");
    if ((r = load_manifest_or_die(o.args[0], &m)) != 0)
      return r;
  }
  const char *dir = o.out ? o.out : ".";   /* created by the first write, not before */
  r = run_session(&o, m, is_magnet ? &mg : NULL, dir, false, o.seed_after, NULL);
  if (is_magnet)
    magnet_free(&mg);
  return r;
}

static int cmd_seed(int argc, char **argv)
{
  struct opts o = { 0 };
  parse_opts(argc, argv, &o, "announce peer port bind piece-size private comment max-peers upload-slots");
  if (o.nargs < 1)
    die_usage("seed takes PATH [FILE.torrent]");
  char *path = strdup(o.args[0]);
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/')
    path[--n] = 0;
  char *dcopy = strdup(path), *bcopy = strdup(path);
  const char *dir = dirname(dcopy), *base = basename(bcopy);
  struct manifest *m;
  int r;
  bool skip_check = false;
  char torrent_path[4096];
  if (o.nargs == 2) {
    if ((r = load_manifest_or_die(o.args[1], &m)) != 0)
      goto out;
    if (strcmp(m->name, base) != 0) {
      fprintf(stderr, "shoal: %s: the torrent's data is named '%s', not '%s'\n", o.args[1], m->name, base);
      manifest_free(m);
      r = EXIT_USAGE;
      goto out;
    }
    snprintf(torrent_path, sizeof torrent_path, "%s", o.args[1]);
  } else {
    if ((r = run_create(&o, path, &m)) != 0)
      goto out;
    snprintf(torrent_path, sizeof torrent_path, "%s.torrent", path);
    if ((r = write_torrent(m, torrent_path)) != 0) {
      manifest_free(m);
      goto out;
    }
    skip_check = true;   /* every piece was just hashed from this data */
  }
  r = run_session(&o, m, NULL, dir, skip_check, true, torrent_path);
out:
  free(path);
  free(dcopy);
  free(bcopy);
  return r;
}

/* Descriptors: the soft limit is raised to the hard one; below
 * MIN_FDS libuv itself cannot start, so we say so instead of crashing.
 * Returns the limit now in force. */
#define MIN_FDS 32
static long prepare_fd_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = { rl.rlim_max > 65536 ? 65536 : rl.rlim_max, rl.rlim_max };
    if (want.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &want) == 0)
      rl.rlim_cur = want.rlim_cur;
  }
  return rl.rlim_cur == RLIM_INFINITY ? 65536 : (long)rl.rlim_cur;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  log_set_prefix("shoal");
  mode_t mask = umask(022);
  umask(mask);
  torrent_file_mode = 0644 & ~mask;
  long fds = prepare_fd_limit();
  if (fds >= 0 && fds < MIN_FDS) {
    fprintf(stderr, "shoal: too few file descriptors (limit %ld, at least %d needed; raise it with ulimit -n)\n",
            fds, MIN_FDS);
    return EXIT_RUNTIME;
  }
  fd_limit = fds;
  if (hash_global_init() < 0) {
    fputs("shoal: cannot initialise libcrypto\n", stderr);
    return EXIT_RUNTIME;
  }
  if (getenv("UV_THREADPOOL_SIZE") == NULL) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char v[24];
    snprintf(v, sizeof v, "%ld", ncpu < 2 ? 4 : ncpu * 2);
    setenv("UV_THREADPOOL_SIZE", v, 1);
  }
  if (argc < 2) {
    fputs(usage_text, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    puts("shoal 0.1.0");
    return 0;
  }
  if (!strcmp(cmd, "create"))
    return cmd_create(argc - 1, argv + 1);
  if (!strcmp(cmd, "info"))
    return cmd_info(argc - 1, argv + 1);
  if (!strcmp(cmd, "seed"))
    return cmd_seed(argc - 1, argv + 1);
  if (!strcmp(cmd, "get"))
    return cmd_get(argc - 1, argv + 1);
  if (!strcmp(cmd, "daemon"))
    return daemon_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "remote"))
    return remote_main(argc - 1, argv + 1);
  die_usage("unknown command '%s'", cmd);
}
