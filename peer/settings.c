/* settings.c -- the daemon's settings: defaults from the environment, strict JSON in and out, flag overrides. */
#include "peer/settings.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "common/utf8.h"
#include "common/log.h"
#include "common/ratelimit.h"
#include "common/util.h"

enum kind { K_PATH, K_ADDR, K_U16, K_U32, K_U64, K_RATIO, K_LEVEL, K_HOSTS };
#define F_EMPTY_OK 1u   /* "" is allowed (and means something: see the note) */

struct field {
  const char *name;
  uint8_t kind;
  uint8_t flags;
  size_t off;
  uint64_t min, max;
  const char *note;     /* appended to the description of what is allowed */
};

#define OFF(m) offsetof(struct settings, m)
static const struct field fields[] = {
  { "download_dir", K_PATH, 0, OFF(download_dir), 0, 0, NULL },
  { "listen_port", K_U16, 0, OFF(listen_port), 0, 65535, " (0 = the first free one of 6881-6890, else any)" },
  { "bind", K_ADDR, F_EMPTY_OK, OFF(bind), 0, 0, ", or \"\" for all addresses" },
  { "rpc_port", K_U16, 0, OFF(rpc_port), 1, 65535, NULL },
  { "rpc_bind", K_ADDR, 0, OFF(rpc_bind), 0, 0, NULL },
  { "rpc_host_names", K_HOSTS, 0, OFF(rpc_host_names), 0, SETTINGS_MAX_HOST_NAMES, NULL },
  { "max_active_downloads", K_U32, 0, OFF(max_active_downloads), 1, 10000, NULL },
  { "max_active_seeds", K_U32, 0, OFF(max_active_seeds), 0, 10000, " (0 = no seeding)" },
  { "max_peers_global", K_U32, 0, OFF(max_peers_global), 1, 100000, NULL },
  { "max_peers_per_torrent", K_U32, 0, OFF(max_peers_per_torrent), 1, 10000, NULL },
  { "upload_slots", K_U32, 0, OFF(upload_slots), 1, 1000, NULL },
  { "rate_down", K_U64, 0, OFF(rate_down), 0, RATELIMIT_MAX, " (bytes/s, 0 = unlimited)" },
  { "rate_up", K_U64, 0, OFF(rate_up), 0, RATELIMIT_MAX, " (bytes/s, 0 = unlimited)" },
  { "seed_ratio_limit", K_RATIO, 0, OFF(seed_ratio_limit), 0, 10000, " (0 = no limit)" },
  { "seed_idle_limit_s", K_U64, 0, OFF(seed_idle_limit_s), 0, INT32_MAX, " (seconds, 0 = no limit)" },
  { "watch_dir", K_PATH, F_EMPTY_OK, OFF(watch_dir), 0, 0, ", or \"\" for none" },
  { "log_file", K_PATH, F_EMPTY_OK, OFF(log_file), 0, 0, ", or \"\" for stderr" },
  { "log_level", K_LEVEL, 0, OFF(log_level), 0, 0, NULL },
  { "resume_save_interval_s", K_U32, 0, OFF(resume_save_interval_s), 1, 86400, " (seconds)" },
};
#define NFIELDS ARRAY_SIZE(fields)

static const char *const level_names[] = { "error", "warn", "info", "debug", "trace" };

const char *settings_log_level_name(int level)
{
  if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_TRACE)
    return "warn";
  return level_names[level];
}

void settings_env_from_process(struct settings_env *env)
{
  env->home = getenv("HOME");
  env->xdg_data_home = getenv("XDG_DATA_HOME");
  env->xdg_config_home = getenv("XDG_CONFIG_HOME");
}

/* A string value: bounded, UTF-8, no NUL or other control characters. */
static bool clean_str(const char *s, size_t n)
{
  if (n > SETTINGS_MAX_STR)
    return false;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)s[i];
    if (c < 0x20 || c == 0x7f)
      return false;
  }
  return utf8_valid((const uint8_t *)s, n);
}

static bool valid_path(const char *s, size_t n, bool empty_ok)
{
  if (n == 0)
    return empty_ok;
  return s[0] == '/' && clean_str(s, n);
}

static bool valid_addr(const char *s, size_t n, bool empty_ok)
{
  if (n == 0)
    return empty_ok;
  if (n >= INET6_ADDRSTRLEN || memchr(s, 0, n) != NULL)
    return false;
  char tmp[INET6_ADDRSTRLEN];
  memcpy(tmp, s, n);
  tmp[n] = 0;
  uint8_t a[16];
  return inet_pton(AF_INET, tmp, a) == 1 || inet_pton(AF_INET6, tmp, a) == 1;
}

static bool valid_host(const char *s, size_t n)
{
  if (n == 0 || n > SETTINGS_MAX_HOST_NAME)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok)
      return false;
  }
  return true;
}

static int level_from(const char *s, size_t n)
{
  for (int i = 0; i < (int)ARRAY_SIZE(level_names); i++)
    if (strlen(level_names[i]) == n && memcmp(level_names[i], s, n) == 0)
      return i;
  return -1;
}

/* "<key>: must be ..." naming what the field allows; returns UV_EINVAL. */
static int field_err(const struct field *f, char *err, size_t errlen)
{
  const char *note = f->note ? f->note : "";
  switch (f->kind) {
  case K_PATH:
    return shoal_fail(err, errlen, UV_EINVAL, "%s: must be an absolute path (a string starting with '/', "
                      "at most %u bytes of UTF-8, no control characters)%s", f->name, SETTINGS_MAX_STR, note);
  case K_ADDR:
    return shoal_fail(err, errlen, UV_EINVAL, "%s: must be an IPv4 or IPv6 address%s", f->name, note);
  case K_U16:
  case K_U32:
  case K_U64:
    return shoal_fail(err, errlen, UV_EINVAL, "%s: must be an integer in %llu..%llu%s", f->name,
                      (unsigned long long)f->min, (unsigned long long)f->max, note);
  case K_RATIO:
    return shoal_fail(err, errlen, UV_EINVAL, "%s: must be a number in %llu..%llu%s", f->name,
                      (unsigned long long)f->min, (unsigned long long)f->max, note);
  case K_LEVEL:
    return shoal_fail(err, errlen, UV_EINVAL,
                      "%s: must be one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"", f->name);
  case K_HOSTS:
    return shoal_fail(err, errlen, UV_EINVAL, "%s: must be an array of at most %u host names (1..%u bytes "
                      "of letters, digits, '.', '-', '_', ':', '[', ']')", f->name, SETTINGS_MAX_HOST_NAMES,
                      SETTINGS_MAX_HOST_NAME);
  }
  return UV_EINVAL;
}

/* A key from the input, made safe for a one-line message. */
static void show_key(const char *k, char *out, size_t outlen)
{
  size_t o = 0, i = 0;
  for (; k[i] && o + 4 < outlen && i < 64; i++)
    out[o++] = (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"') ? k[i] : '?';
  if (k[i] && o + 4 < outlen)
    for (int d = 0; d < 3; d++)
      out[o++] = '.';
  out[o] = 0;
}

static const struct field *find_field(const char *name)
{
  for (size_t i = 0; i < NFIELDS; i++)
    if (strcmp(fields[i].name, name) == 0)
      return &fields[i];
  return NULL;
}

static void free_hosts(char **h, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(h[i]);
  free(h);
}

/* Sets field f of s from the JSON value v.  0, UV_EINVAL (reason in err),
 * UV_ENOMEM.  On error the field is unchanged. */
static int set_field(struct settings *s, const struct field *f, json_t *v, char *err, size_t errlen)
{
  char *base = (char *)s + f->off;
  switch (f->kind) {
  case K_PATH:
  case K_ADDR:
  case K_LEVEL: {
    if (!json_is_string(v))
      goto bad;
    const char *str = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(str) != n)
      goto bad;
    if (f->kind == K_LEVEL) {
      int l = level_from(str, n);
      if (l < 0)
        goto bad;
      *(int *)(void *)base = l;
      return 0;
    }
    bool ok = f->kind == K_PATH ? valid_path(str, n, f->flags & F_EMPTY_OK)
                                : valid_addr(str, n, f->flags & F_EMPTY_OK);
    if (!ok)
      goto bad;
    char *d = strndup(str, n);
    if (d == NULL)
      return UV_ENOMEM;
    char **slot = (char **)(void *)base;
    free(*slot);
    *slot = d;
    return 0;
  }
  case K_U16:
  case K_U32:
  case K_U64: {
    if (!json_is_integer(v))
      goto bad;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x < f->min || (uint64_t)x > f->max)
      goto bad;
    if (f->kind == K_U16)
      *(uint16_t *)(void *)base = (uint16_t)x;
    else if (f->kind == K_U32)
      *(uint32_t *)(void *)base = (uint32_t)x;
    else
      *(uint64_t *)(void *)base = (uint64_t)x;
    return 0;
  }
  case K_RATIO: {
    if (!json_is_number(v))
      goto bad;
    double x = json_number_value(v);
    if (!isfinite(x) || x < (double)f->min || x > (double)f->max)
      goto bad;
    *(double *)(void *)base = x;
    return 0;
  }
  case K_HOSTS: {
    if (!json_is_array(v) || json_array_size(v) > f->max)
      goto bad;
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
      json_t *e = json_array_get(v, i);
      if (!json_is_string(e) || !valid_host(json_string_value(e), json_string_length(e)) ||
          strlen(json_string_value(e)) != json_string_length(e))
        goto bad;
    }
    char **h = calloc(n ? n : 1, sizeof *h);
    if (h == NULL)
      return UV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
      json_t *e = json_array_get(v, i);
      h[i] = strndup(json_string_value(e), json_string_length(e));
      if (h[i] == NULL) {
        free_hosts(h, i);
        return UV_ENOMEM;
      }
    }
    free_hosts(s->rpc_host_names, s->num_rpc_host_names);
    s->rpc_host_names = h;
    s->num_rpc_host_names = n;
    return 0;
  }
  }
bad:
  return field_err(f, err, errlen);
}

void settings_free(struct settings *s)
{
  free(s->download_dir);
  free(s->bind);
  free(s->rpc_bind);
  free(s->watch_dir);
  free(s->log_file);
  free_hosts(s->rpc_host_names, s->num_rpc_host_names);
  memset(s, 0, sizeof *s);
}

/* "<base><suffix>" when base is a usable absolute folder, else NULL with
 * *nomem telling why. */
static char *derive(const char *base, const char *suffix, bool *nomem)
{
  if (base == NULL || base[0] != '/')
    return NULL;
  size_t bl = strlen(base), sl = strlen(suffix);
  while (bl > 1 && base[bl - 1] == '/')
    bl--;
  if (bl == 1)
    bl = 0;   /* "/" alone: the suffix starts with '/' */
  if (bl + sl > SETTINGS_MAX_STR)
    return NULL;
  char *p = malloc(bl + sl + 1);
  if (p == NULL) {
    *nomem = true;
    return NULL;
  }
  memcpy(p, base, bl);
  memcpy(p + bl, suffix, sl + 1);
  if (!valid_path(p, bl + sl, false)) {
    free(p);
    return NULL;
  }
  return p;
}

int settings_defaults(struct settings *s, const struct settings_env *env)
{
  memset(s, 0, sizeof *s);
  s->listen_port = SETTINGS_DEFAULT_LISTEN_PORT;
  s->rpc_port = SETTINGS_DEFAULT_RPC_PORT;
  s->max_active_downloads = 5;
  s->max_active_seeds = 10;
  s->max_peers_global = 500;
  s->max_peers_per_torrent = 50;
  s->upload_slots = 4;
  s->log_level = LOG_LEVEL_WARN;
  s->resume_save_interval_s = 60;
  s->bind = strdup("");
  s->rpc_bind = strdup("127.0.0.1");
  s->watch_dir = strdup("");
  s->log_file = strdup("");
  if (!s->bind || !s->rpc_bind || !s->watch_dir || !s->log_file) {
    settings_free(s);
    return UV_ENOMEM;
  }
  bool nomem = false;
  s->download_dir = derive(env ? env->xdg_data_home : NULL, "/shoal/downloads", &nomem);
  if (s->download_dir == NULL && !nomem)
    s->download_dir = derive(env ? env->home : NULL, "/.local/share/shoal/downloads", &nomem);
  if (s->download_dir == NULL && !nomem) {
    s->download_dir = strdup("");
    if (s->download_dir)
      return UV_ENOENT;
  }
  if (s->download_dir == NULL) {
    settings_free(s);
    return UV_ENOMEM;
  }
  return 0;
}

int settings_config_dir(const struct settings_env *env, char **out)
{
  bool nomem = false;
  char *p = derive(env->xdg_config_home, "/shoal", &nomem);
  if (p == NULL && !nomem)
    p = derive(env->home, "/.config/shoal", &nomem);
  *out = p;
  return p ? 0 : nomem ? UV_ENOMEM : UV_ENOENT;
}

int settings_copy(struct settings *dst, const struct settings *src)
{
  *dst = *src;
  dst->download_dir = dst->bind = dst->rpc_bind = dst->watch_dir = dst->log_file = NULL;
  dst->rpc_host_names = NULL;
  dst->num_rpc_host_names = 0;
  dst->download_dir = strdup(src->download_dir ? src->download_dir : "");
  dst->bind = strdup(src->bind ? src->bind : "");
  dst->rpc_bind = strdup(src->rpc_bind ? src->rpc_bind : "");
  dst->watch_dir = strdup(src->watch_dir ? src->watch_dir : "");
  dst->log_file = strdup(src->log_file ? src->log_file : "");
  if (!dst->download_dir || !dst->bind || !dst->rpc_bind || !dst->watch_dir || !dst->log_file)
    goto nomem;
  if (src->num_rpc_host_names) {
    dst->rpc_host_names = calloc(src->num_rpc_host_names, sizeof(char *));
    if (dst->rpc_host_names == NULL)
      goto nomem;
    dst->num_rpc_host_names = src->num_rpc_host_names;
    for (size_t i = 0; i < src->num_rpc_host_names; i++)
      if ((dst->rpc_host_names[i] = strdup(src->rpc_host_names[i])) == NULL)
        goto nomem;
  }
  return 0;
nomem:
  settings_free(dst);
  return UV_ENOMEM;
}

int settings_parse_json(const char *text, size_t len, struct settings *inout, char *err, size_t errlen)
{
  if (len > SETTINGS_MAX_TEXT) {
    return shoal_fail(err, errlen, SHOAL_ETOOBIG, "settings text too large (%zu bytes, at most %u)", len,
                      SETTINGS_MAX_TEXT);
  }
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL) {
    shoal_fail(err, errlen, UV_EINVAL, "JSON: %s at line %d column %d", je.text, je.line, je.column);
    for (size_t i = 0; err && i < errlen && err[i]; i++)  /* one line, whatever the input held */
      if ((uint8_t)err[i] < 0x20 || err[i] == 0x7f)
        err[i] = '?';
    return UV_EINVAL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    return shoal_fail(err, errlen, UV_EINVAL, "settings must be a JSON object");
  }
  struct settings tmp;
  int r = settings_copy(&tmp, inout);
  if (r) {
    json_decref(root);
    return r;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    const struct field *f = find_field(key);
    if (f == NULL) {
      char shown[80];
      show_key(key, shown, sizeof shown);
      r = shoal_fail(err, errlen, UV_EINVAL, "unknown key \"%s\"", shown);
      break;
    }
    if ((r = set_field(&tmp, f, v, err, errlen)) != 0)
      break;
  }
  json_decref(root);
  if (r) {
    settings_free(&tmp);
    return r;
  }
  settings_free(inout);
  *inout = tmp;
  return 0;
}

/* Integer text: 1..20 decimal digits, nothing else, fits in int64. */
static json_t *int_from_text(const char *v, bool *bad)
{
  size_t n = strlen(v);
  uint64_t x = 0;
  if (n == 0 || n > 20) {
    *bad = true;
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10) {
      *bad = true;
      return NULL;
    }
    x = x * 10 + (uint64_t)(v[i] - '0');
  }
  if (x > INT64_MAX) {
    *bad = true;
    return NULL;
  }
  return json_integer((json_int_t)x);
}

/* Decimal number text: digits with at most one '.', at least one digit. */
static json_t *real_from_text(const char *v, bool *bad)
{
  size_t n = strlen(v), digits = 0, dots = 0;
  bool other = false;
  for (size_t i = 0; i < n; i++) {
    if (v[i] >= '0' && v[i] <= '9')
      digits++;
    else if (v[i] == '.')
      dots++;
    else
      other = true;
  }
  if (other || n > 64 || digits == 0 || dots > 1) {
    *bad = true;
    return NULL;
  }
  char *end;
  double x = strtod(v, &end);
  if (*end != 0) {
    *bad = true;
    return NULL;
  }
  return json_real(x);
}

static json_t *hosts_from_text(const char *v, bool *bad)
{
  json_t *a = json_array();
  if (a == NULL || *v == 0)
    return a;
  for (const char *p = v;;) {
    const char *c = strchr(p, ',');
    size_t n = c ? (size_t)(c - p) : strlen(p);
    if (!valid_host(p, n) || json_array_size(a) >= SETTINGS_MAX_HOST_NAMES) {
      json_decref(a);
      *bad = true;
      return NULL;
    }
    json_t *s = json_stringn(p, n);
    if (s == NULL || json_array_append_new(a, s)) {
      json_decref(a);
      return NULL;
    }
    if (c == NULL)
      return a;
    p = c + 1;
  }
}

int settings_apply_override(struct settings *s, const char *key, const char *value,
                            char *err, size_t errlen)
{
  char name[64];
  size_t kl = strlen(key);
  const struct field *f = NULL;
  if (kl < sizeof name) {
    for (size_t i = 0; i <= kl; i++)
      name[i] = key[i] == '-' ? '_' : key[i];
    f = find_field(name);
  }
  if (f == NULL) {
    char shown[80];
    show_key(key, shown, sizeof shown);
    return shoal_fail(err, errlen, UV_EINVAL, "unknown setting \"%s\"", shown);
  }
  bool bad = false;
  json_t *v = NULL;
  switch (f->kind) {
  case K_U16:
  case K_U32:
  case K_U64:
    v = int_from_text(value, &bad);
    break;
  case K_RATIO:
    v = real_from_text(value, &bad);
    break;
  case K_HOSTS:
    v = hosts_from_text(value, &bad);
    break;
  default:
    if (!utf8_valid((const uint8_t *)value, strlen(value)))
      bad = true;
    else
      v = json_string(value);
    break;
  }
  if (bad)
    return field_err(f, err, errlen);
  if (v == NULL)
    return UV_ENOMEM;
  struct settings tmp;
  int r = settings_copy(&tmp, s);
  if (r == 0)
    r = set_field(&tmp, f, v, err, errlen);
  json_decref(v);
  if (r) {
    settings_free(&tmp);
    return r;
  }
  settings_free(s);
  *s = tmp;
  return 0;
}

int settings_check(const struct settings *s, char *err, size_t errlen)
{
  if (s->download_dir == NULL || s->download_dir[0] == 0)
    return shoal_fail(err, errlen, UV_EINVAL, "download_dir: not set (no HOME or XDG_DATA_HOME to derive it "
                      "from); set it in the settings file or with a flag");
  if (s->listen_port != 0 && s->listen_port == s->rpc_port)
    return shoal_fail(err, errlen, UV_EINVAL, "listen_port and rpc_port are both %u: they must differ",
                      s->rpc_port);
  return 0;
}

static json_t *field_json(const struct settings *s, const struct field *f)
{
  const char *base = (const char *)s + f->off;
  switch (f->kind) {
  case K_PATH:
  case K_ADDR: {
    const char *str = *(char *const *)(const void *)base;
    return json_string(str ? str : "");
  }
  case K_LEVEL:
    return json_string(settings_log_level_name(*(const int *)(const void *)base));
  case K_U16:
    return json_integer(*(const uint16_t *)(const void *)base);
  case K_U32:
    return json_integer(*(const uint32_t *)(const void *)base);
  case K_U64:
    return json_integer((json_int_t)*(const uint64_t *)(const void *)base);
  case K_RATIO:
    return json_real(*(const double *)(const void *)base);
  case K_HOSTS: {
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->num_rpc_host_names; i++)
      if (json_array_append_new(a, json_string(s->rpc_host_names[i]))) {
        json_decref(a);
        a = NULL;
      }
    return a;
  }
  }
  return NULL;
}

json_t *settings_to_json(const struct settings *s)
{
  json_t *o = json_object();
  for (size_t i = 0; o && i < NFIELDS; i++) {
    json_t *v = field_json(s, &fields[i]);
    if (v == NULL || json_object_set_new(o, fields[i].name, v)) {
      json_decref(o);
      o = NULL;
    }
  }
  return o;
}

char *settings_to_text(const struct settings *s)
{
  json_t *o = settings_to_json(s);
  if (o == NULL)
    return NULL;
  /* 15 significant digits: a ratio typed as a short decimal prints back the same. */
  char *t = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
  json_decref(o);
  if (t == NULL)
    return NULL;
  size_t n = strlen(t);
  char *r = realloc(t, n + 2);
  if (r == NULL) {
    free(t);
    return NULL;
  }
  r[n] = '\n';
  r[n + 1] = 0;
  return r;
}
