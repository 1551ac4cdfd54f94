/* daemon-int.h -- internals shared by daemon.c (torrents, queue, persistence) and daemon_rpc.c (control API methods). */
#ifndef PEER_DAEMON_INT_H_
#define PEER_DAEMON_INT_H_

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/manifest.h"
#include "peer/resume.h"
#include "peer/rpc.h"
#include "peer/session.h"
#include "peer/settings.h"

#define DAEMON_MAX_TORRENTS 100000u      /* more are refused (409) */
#define DAEMON_TICK_MS 1000u             /* seed limits, stamps of activity */
#define DAEMON_MAX_LISTED_PEERS 2000u
#define DAEMON_SOCKET_FILE "rpc.sock"   /* the control API on a Unix socket, in the config dir */

/* One torrent the daemon keeps, running or not. */
struct dt {
  struct dt *next, *prev;
  struct daemon *d;
  uint8_t ih[20];
  char hex[41];
  struct resume rs;             /* what is saved; have/files/counters refreshed on save and stop */
  struct manifest *m;           /* owned while not running (NULL: magnet without metadata, or re-reading) */
  char *magnet;                 /* the link, while the metadata is not known */
  char *pending_only;           /* `only` of a magnet add, applied when the metadata comes */
  struct torrent *t;            /* running */
  char **paths;                 /* absolute path of each file (NULL before the metadata) */
  uint32_t num_files, num_pieces;
  uint64_t size;                /* total bytes */
  uint64_t wanted, have;        /* cached while not running */
  bool complete;                /* every wanted piece verified */
  bool has_hint;                /* rs.have / rs.files describe the data: a start may trust them */
  bool verify;                  /* the next start checks every piece */
  bool removed, delete_data;    /* remove requested: finishes once nothing is in flight */
  bool seed_done;               /* a seeding limit was reached */
  bool dirty;                   /* something worth saving changed since the last save */
  bool saving, save_again;
  unsigned busy;                /* jobs in flight that point at this dt */
  bool stopping;                /* session_remove in flight */
  bool starting;                /* prepare job in flight */
  uint64_t base_up, base_down;  /* totals before the engine torrent of this run */
  uint64_t last_up, idle_since_ms;
  uint8_t qstate;               /* enum queue_state last decided */
};

struct daemon {
  uv_loop_t *loop;
  struct settings set;
  char **overrides;             /* flag key/value pairs, re-applied on reload */
  unsigned noverrides;
  char *config_dir, *torrents_dir, *resume_dir, *settings_path;
  char token[RPC_TOKEN_HEX + 1];
  struct session *session;
  struct rpc_server *rpc;         /* TCP (rpc_bind:rpc_port) */
  struct rpc_server *rpc_unix;    /* <config dir>/rpc.sock, NULL when it could not be made */
  char *socket_path;
  struct watch *watch;
  struct dt *list;
  unsigned count;
  uv_timer_t tick, save_timer, kick;
  uv_signal_t sig_term, sig_int, sig_hup;
  uint64_t started_ms;
  time_t started_wall;
  bool shutting_down;
  int exit_code;
};

/* daemon.c, for the methods */
const char *dt_state_name(const struct dt *x);
const char *dt_error(const struct dt *x);
void dt_stats(const struct dt *x, struct torrent_stats *st, uint64_t *up_total, uint64_t *down_total);
struct dt **daemon_sorted(struct daemon *d, unsigned *n);   /* queue order; free() it; NULL if none or no memory */
void daemon_kick(struct daemon *d);                          /* re-decide the queue soon */
void dt_mark_dirty(struct dt *x, bool now);                  /* save soon (now: at once) */
/* Adds a .torrent -- its bytes data[0..len) and m, the manifest parsed from
 * them on the threadpool (taken over, also on error) -- or a magnet link
 * (data and m NULL).  dir NULL = the default folder; only NULL = every
 * file.  Returns 0 with *out, or an HTTP status (400 bad input, 409 already
 * there, 500) with a one-line reason in err. */
int daemon_add(struct daemon *d, const uint8_t *data, size_t len, struct manifest *m, const char *magnet,
               const char *dir, bool paused, const char *only, bool sequential, struct dt **out, char *err,
               size_t errlen);
void dt_pause(struct dt *x, bool pause);
void dt_remove(struct dt *x, bool delete_data);
void dt_verify(struct dt *x);
int dt_set_priorities(struct dt *x, const uint8_t *prio, uint32_t n);
void dt_set_sequential(struct dt *x, bool on);
void dt_apply_limits(struct dt *x);
void dt_add_peer(struct dt *x, const struct sockaddr *sa);
int daemon_save_settings(struct daemon *d);
void daemon_apply_rates(struct daemon *d);

/* daemon_rpc.c */
void daemon_rpc_handle(void *ctx, struct rpc_call *call, const char *method, json_t *params);

#endif
