/* settings.h -- the daemon's settings (settings.json in the config dir): defaults, strict JSON parse, overrides, JSON out. */
#ifndef PEER_SETTINGS_H_
#define PEER_SETTINGS_H_

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SETTINGS_FILE_NAME "settings.json"
#define SETTINGS_MAX_TEXT (1u << 20)      /* a settings text larger than this is refused */
#define SETTINGS_MAX_STR 4095u            /* bytes of any string value (paths included) */
#define SETTINGS_MAX_HOST_NAMES 64u       /* entries of rpc_host_names */
#define SETTINGS_MAX_HOST_NAME 253u       /* bytes of one of them */
/* The control API listens on 6880 by default: next to the peer port 6881
 * and outside the 6881-6889 range other clients take, and not 9091, so that
 * shoal and a Transmission daemon can run side by side. */
#define SETTINGS_DEFAULT_RPC_PORT 6880u
#define SETTINGS_DEFAULT_LISTEN_PORT 6881u

/* The environment values the defaults come from.  Borrowed strings; NULL or
 * "" = unset.  Per the XDG base directory rules a relative XDG_* value is
 * ignored; a relative HOME is ignored too. */
struct settings_env {
  const char *home;              /* $HOME */
  const char *xdg_data_home;     /* $XDG_DATA_HOME */
  const char *xdg_config_home;   /* $XDG_CONFIG_HOME */
};

/* Fills env from the process environment (getenv; the strings stay owned
 * by the environment).  The only function here that reads it. */
void settings_env_from_process(struct settings_env *env);

/* Every setting.  Strings and the host-name array are owned by the struct
 * (settings_free).  JSON key = field name.  Ranges are enforced by every
 * function that sets a field from outside (parse, override). */
struct settings {
  char *download_dir;            /* absolute path; default $XDG_DATA_HOME/shoal/downloads
                                    or $HOME/.local/share/shoal/downloads */
  uint16_t listen_port;          /* peer port, 0..65535 (0 = the first free one of 6881-6890, else any); 6881 */
  char *bind;                    /* peer listen address, IPv4/IPv6 literal; "" = all */
  uint16_t rpc_port;             /* control API port, 1..65535; 6880 */
  char *rpc_bind;                /* control API address, IPv4/IPv6 literal; "127.0.0.1" */
  char **rpc_host_names;         /* extra Host header names the control API accepts
                                    (compare case-insensitively); default none */
  size_t num_rpc_host_names;     /* 0..SETTINGS_MAX_HOST_NAMES */
  uint32_t max_active_downloads; /* 1..10000; 5 */
  uint32_t max_active_seeds;     /* 0..10000 (0 = completed torrents do not seed); 10 */
  uint32_t max_peers_global;     /* 1..100000; 500 */
  uint32_t max_peers_per_torrent;/* 1..10000; 50 */
  uint32_t upload_slots;         /* unchoked peers per torrent, 1..1000; 4 */
  uint64_t rate_down;            /* bytes/s, 0 = unlimited, at most RATELIMIT_MAX; 0 */
  uint64_t rate_up;              /* likewise */
  double seed_ratio_limit;       /* stop seeding at this ratio, 0..10000 (0 = none); 0 */
  uint64_t seed_idle_limit_s;    /* stop seeding after this long idle, 0..2^31-1 (0 = none); 0 */
  char *watch_dir;               /* absolute path whose .torrent files are added; "" = none */
  char *log_file;                /* absolute path; "" = stderr */
  int log_level;                 /* enum log_level; JSON "error" "warn" "info" "debug" "trace"; warn */
  uint32_t resume_save_interval_s; /* 1..86400; 60 */
};

/* Sets every field to its default.  Returns 0, UV_ENOMEM (s then holds
 * nothing, settings_free is still safe), or UV_ENOENT when neither
 * XDG_DATA_HOME nor HOME gives a usable (absolute, UTF-8, short enough)
 * folder: then download_dir is "" and every other field is set; the file
 * or a flag must give download_dir (settings_check reports it). */
int settings_defaults(struct settings *s, const struct settings_env *env);

/* Applies the JSON object text[0..len) on top of *inout: keys present are
 * set, keys absent keep their value.  Strict: the text must be one JSON
 * object, no duplicate keys, no unknown keys, each value of its field's
 * type and range.  Errors (a one-line reason naming the key and what is
 * allowed in err, SHOAL_ERRLEN bytes is enough; *inout unchanged):
 * SHOAL_ETOOBIG (len > SETTINGS_MAX_TEXT), UV_EINVAL (syntax, type,
 * range, unknown key), UV_ENOMEM. */
int settings_parse_json(const char *text, size_t len, struct settings *inout, char *err, size_t errlen);

/* Sets one field from a command-line flag: key is the JSON key, with '-'
 * accepted for '_' ("rate-up"); value is its text: decimal digits for
 * integers, a decimal number for seed_ratio_limit, the string itself
 * otherwise, a comma-separated list for rpc_host_names ("" = none).  The
 * same checks and errors as settings_parse_json (UV_EINVAL also for an
 * unknown key); *s unchanged on error.  A caller that takes relative paths
 * from the command line makes them absolute first. */
int settings_apply_override(struct settings *s, const char *key, const char *value,
                            char *err, size_t errlen);

/* Checks what only makes sense once every layer (defaults, file, flags) is
 * applied: download_dir is set; listen_port and rpc_port differ (unless
 * listen_port is 0).  0 or UV_EINVAL with a one-line reason. */
int settings_check(const struct settings *s, char *err, size_t errlen);

/* Every field as a new JSON object (keys in the order of struct settings);
 * the caller owns the reference.  NULL when out of memory. */
json_t *settings_to_json(const struct settings *s);

/* The same as text for writing a settings file: indented, '\n'-terminated,
 * NUL-terminated; the caller free()s it.  NULL when out of memory. */
char *settings_to_text(const struct settings *s);

/* Deep copy into dst (which owns nothing yet).  0 or UV_ENOMEM (dst then
 * holds nothing). */
int settings_copy(struct settings *dst, const struct settings *src);

/* Frees what s owns and zeroes it; safe on a zeroed struct and twice. */
void settings_free(struct settings *s);

/* The config dir: $XDG_CONFIG_HOME/shoal or $HOME/.config/shoal, as a new
 * string (free()).  0, UV_ENOENT (neither usable), UV_ENOMEM. */
int settings_config_dir(const struct settings_env *env, char **out);

/* "error" .. "trace" for a log level, "warn" for anything out of range. */
const char *settings_log_level_name(int level);

#endif
