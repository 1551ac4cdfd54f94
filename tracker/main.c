/* main.c -- the shoal-tracker program: options, HTTP and UDP listeners, the loop, the expiry sweep, clean shutdown on SIGINT/SIGTERM. */
#include <arpa/inet.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/compact.h"
#include "common/log.h"
#include "tracker/http.h"
#include "tracker/swarms.h"
#include "tracker/udp.h"

#define TRACKER_DEFAULT_PORT 6969
#define TRACKER_MAX_INTERVAL 86400u
#define TRACKER_EXPIRY_SLACK 60u     /* seconds past two missed intervals */
#define TRACKER_SWEEP_MAX_MS 60000u
#define TRACKER_MAX_BINDS 8
#define TRACKER_BIND_TRIES 8         /* port 0: free TCP ports also free for UDP */

struct tracker {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_timer_t sweep;
  struct swarms *swarms;
  struct trackerhttp_server *http[TRACKER_MAX_BINDS];
  struct trackerudp_server *udp[TRACKER_MAX_BINDS];
  size_t nbinds;
  uint64_t max_age;
  bool stopping;
};

static void tracker_usage(FILE *f)
{
  fprintf(f,
          "usage: shoal-tracker [--port N] [--bind ADDR]... [--interval SECONDS] [-v|-q]\n"
          "  --port N            TCP (HTTP) and UDP (BEP 15) port (default %d; 0: any free port)\n"
          "  --bind ADDR         numeric IPv4 or IPv6 address (default 0.0.0.0); repeat to\n"
          "                      listen on several (at most %d)\n"
          "  --interval SECONDS  announce interval asked of clients (default 1800, 1..%u)\n"
          "  -v                  more log output (repeat for more)\n"
          "  -q                  errors only\n",
          TRACKER_DEFAULT_PORT, TRACKER_MAX_BINDS, TRACKER_MAX_INTERVAL);
}

/* Strict decimal in [lo, hi]. */
static int tracker_parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
  unsigned long v = 0;
  if (s == NULL || *s == '\0' || strlen(s) > 10)
    return -1;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (unsigned long)(*p - '0');
  }
  if (v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* A numeric address, IPv6 with or without brackets, into *out with port. */
static int tracker_parse_bind(const char *s, uint16_t port, struct sockaddr_storage *out)
{
  char host[INET6_ADDRSTRLEN + 2];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof host)
    return -1;
  memcpy(host, s, n + 1);
  if (host[0] == '[' && host[n - 1] == ']') {
    memmove(host, host + 1, n - 2);
    host[n - 2] = '\0';
  }
  memset(out, 0, sizeof *out);
  struct sockaddr_in *sin = (struct sockaddr_in *)out;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    return 0;
  }
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return 0;
  }
  return -1;
}

static void tracker_on_sweep(uv_timer_t *t)
{
  struct tracker *tr = t->data;
  uint64_t now = uv_now(&tr->loop) / 1000;
  size_t removed = swarms_sweep(tr->swarms, now, tr->max_age);
  if (removed > 0)
    LOG_INFO("expired %zu peers; %zu peers in %zu swarms", removed,
             swarms_peer_count(tr->swarms), swarms_count(tr->swarms));
}

static void tracker_close_servers(struct tracker *tr)
{
  for (size_t i = 0; i < tr->nbinds; i++) {
    if (tr->http[i] != NULL)
      trackerhttp_server_close(tr->http[i]);
    if (tr->udp[i] != NULL)
      trackerudp_server_close(tr->udp[i]);
    tr->http[i] = NULL;
    tr->udp[i] = NULL;
  }
  tr->nbinds = 0;
}

static void tracker_port_set(struct sockaddr_storage *ss, uint16_t port)
{
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static uint16_t tracker_port_get(const struct sockaddr_storage *ss)
{
  if (ss->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* Opens HTTP and UDP on every address, all on one port (the first free one
 * when port is 0).  0, or the error of the listener that failed (*what says
 * which; everything opened is closed again). */
static int tracker_open(struct tracker *tr, struct sockaddr_storage *addrs, size_t n, uint16_t port,
                        const struct trackerhttp_config *hcfg, const struct trackerudp_config *ucfg,
                        size_t *failed, const char **what)
{
  int r = 0;
  for (int attempt = 0; attempt < TRACKER_BIND_TRIES; attempt++) {
    uint16_t chosen = port;
    r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
      tracker_port_set(&addrs[i], chosen);
      *failed = i;
      *what = "tcp";
      r = trackerhttp_server_new(&tr->loop, tr->swarms, hcfg, (struct sockaddr *)&addrs[i], &tr->http[i]);
      if (r)
        break;
      tr->nbinds = i + 1;
      if (chosen == 0) {
        struct sockaddr_storage bound;
        r = trackerhttp_server_addr(tr->http[i], &bound);
        if (r)
          break;
        chosen = tracker_port_get(&bound);
        tracker_port_set(&addrs[i], chosen);
      }
      *what = "udp";
      r = trackerudp_server_new(&tr->loop, tr->swarms, ucfg, (struct sockaddr *)&addrs[i], &tr->udp[i]);
    }
    if (r == 0)
      return 0;
    tracker_close_servers(tr);
    if (port != 0 || r != UV_EADDRINUSE)
      break;
    LOG_INFO("port %u taken for %s, trying another", (unsigned)chosen, *what);
  }
  return r;
}

static void tracker_stop(struct tracker *tr)
{
  if (tr->stopping)
    return;
  tr->stopping = true;
  tracker_close_servers(tr);
  uv_close((uv_handle_t *)&tr->sweep, NULL);
  uv_close((uv_handle_t *)&tr->sigint, NULL);
  uv_close((uv_handle_t *)&tr->sigterm, NULL);
}

static void tracker_on_signal(uv_signal_t *h, int signum)
{
  struct tracker *tr = h->data;
  LOG_INFO("signal %d: shutting down", signum);
  tracker_stop(tr);
}

int main(int argc, char **argv)
{
  unsigned long port = TRACKER_DEFAULT_PORT, interval = 1800;
  const char *binds[TRACKER_MAX_BINDS];
  size_t nbinds = 0;
  int level = LOG_LEVEL_WARN;
  log_set_prefix("shoal-tracker");

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    const char *eq = strchr(a, '=');
    char name[32];
    if (strncmp(a, "--", 2) == 0 && eq != NULL && (size_t)(eq - a) < sizeof name) {
      memcpy(name, a, (size_t)(eq - a));
      name[eq - a] = '\0';
      val = eq + 1;
      a = name;
    }
    bool takes = strcmp(a, "--port") == 0 || strcmp(a, "--bind") == 0 || strcmp(a, "--interval") == 0;
    if (takes && val == NULL) {
      if (i + 1 >= argc) {
        fprintf(stderr, "shoal-tracker: %s needs a value\n", a);
        return 2;
      }
      val = argv[++i];
    } else if (!takes && val != NULL) {
      fprintf(stderr, "shoal-tracker: %s takes no value\n", a);
      return 2;
    }
    if (strcmp(a, "--port") == 0) {
      if (tracker_parse_num(val, 0, 65535, &port)) {
        fprintf(stderr, "shoal-tracker: invalid port '%s'\n", val);
        return 2;
      }
    } else if (strcmp(a, "--bind") == 0) {
      if (nbinds == TRACKER_MAX_BINDS) {
        fprintf(stderr, "shoal-tracker: at most %d --bind options\n", TRACKER_MAX_BINDS);
        return 2;
      }
      binds[nbinds++] = val;
    } else if (strcmp(a, "--interval") == 0) {
      if (tracker_parse_num(val, 1, TRACKER_MAX_INTERVAL, &interval)) {
        fprintf(stderr, "shoal-tracker: invalid interval '%s' (1..%u seconds)\n", val, TRACKER_MAX_INTERVAL);
        return 2;
      }
    } else if (strcmp(a, "--verbose") == 0 || (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1))) {
      for (size_t k = strcmp(a, "--verbose") == 0 ? 1 : strlen(a + 1); k > 0 && level < LOG_LEVEL_TRACE; k--)
        level++;
    } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
      level = LOG_LEVEL_ERROR;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      tracker_usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "shoal-tracker: unknown option '%s'\n", a);
      tracker_usage(stderr);
      return 2;
    }
  }
  log_level = level;

  if (nbinds == 0)
    binds[nbinds++] = "0.0.0.0";
  struct sockaddr_storage addrs[TRACKER_MAX_BINDS];
  for (size_t i = 0; i < nbinds; i++) {
    if (tracker_parse_bind(binds[i], (uint16_t)port, &addrs[i])) {
      fprintf(stderr, "shoal-tracker: invalid bind address '%s' (numeric IPv4 or IPv6)\n", binds[i]);
      return 2;
    }
  }
  if (sodium_init() < 0) {
    LOG_ERROR("libsodium failed to initialise");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  static struct tracker tr;
  uint8_t key[SWARMS_KEY_LEN];
  randombytes_buf(key, sizeof key);
  tr.swarms = swarms_new(NULL, key);
  sodium_memzero(key, sizeof key);
  if (tr.swarms == NULL) {
    LOG_ERROR("out of memory");
    return 1;
  }
  tr.max_age = 2 * (uint64_t)interval + TRACKER_EXPIRY_SLACK;
  int r = uv_loop_init(&tr.loop);
  if (r) {
    LOG_ERROR("event loop: %s", uv_strerror(r));
    swarms_free(tr.swarms);
    return 1;
  }

  struct trackerhttp_config cfg;
  trackerhttp_config_default(&cfg);
  cfg.interval = (uint32_t)interval;
  cfg.min_interval = interval >= 2 ? (uint32_t)interval / 2 : 1;
  struct trackerudp_config ucfg;
  trackerudp_config_default(&ucfg);
  ucfg.interval = (uint32_t)interval;
  size_t failed = 0;
  const char *what = "";
  r = tracker_open(&tr, addrs, nbinds, (uint16_t)port, &cfg, &ucfg, &failed, &what);
  if (r) {
    char as[96];
    compact_addr_str((struct sockaddr *)&addrs[failed], as, sizeof as);
    LOG_ERROR("cannot listen on %s (%s): %s", as, what, uv_strerror(r));
    uv_run(&tr.loop, UV_RUN_DEFAULT);
    uv_loop_close(&tr.loop);
    swarms_free(tr.swarms);
    return 1;
  }

  uv_timer_init(&tr.loop, &tr.sweep);
  tr.sweep.data = &tr;
  uint64_t period = (uint64_t)interval * 1000 / 2;
  if (period > TRACKER_SWEEP_MAX_MS)
    period = TRACKER_SWEEP_MAX_MS;
  if (period < 1000)
    period = 1000;
  uv_timer_start(&tr.sweep, tracker_on_sweep, period, period);
  uv_signal_init(&tr.loop, &tr.sigint);
  uv_signal_init(&tr.loop, &tr.sigterm);
  tr.sigint.data = tr.sigterm.data = &tr;
  uv_signal_start(&tr.sigint, tracker_on_signal, SIGINT);
  uv_signal_start(&tr.sigterm, tracker_on_signal, SIGTERM);

  for (size_t i = 0; i < tr.nbinds; i++) {
    struct sockaddr_storage bound;
    char as[96];
    if (trackerhttp_server_addr(tr.http[i], &bound) == 0)
      compact_addr_str((struct sockaddr *)&bound, as, sizeof as);
    else
      compact_addr_str((struct sockaddr *)&addrs[i], as, sizeof as);
    /* HTTP and UDP on the same address and port. */
    fprintf(stderr, "shoal-tracker: listening on %s\n", as);
  }
  fflush(stderr);

  uv_run(&tr.loop, UV_RUN_DEFAULT);
  r = uv_loop_close(&tr.loop);
  if (r)
    LOG_WARN("event loop not empty at exit: %s", uv_strerror(r));
  swarms_free(tr.swarms);
  LOG_INFO("stopped");
  return 0;
}
