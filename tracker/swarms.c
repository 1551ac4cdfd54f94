/* swarms.c -- the tracker's bookkeeping: peers per infohash in keyed hash tables, expiry, random selection. */
#include "tracker/swarms.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/compact.h"
#include "common/err.h"

const struct swarms_limits swarms_default_limits = {
  .max_swarms = 100000,
  .max_peers_per_swarm = 10000,
  .max_peers = 1000000,
};

/* An open-addressing index (linear probing) over the items of an array:
 * a slot holds item+1, or 0 when free.  The size is a power of two and at
 * least twice the number of items, so probes stay short and always end. */
struct slots {
  uint32_t *v;
  uint32_t mask;   /* size - 1; size 0 (v NULL) before the first insert */
};

typedef uint32_t (*slots_hash_fn)(const void *ctx, uint32_t item);

#define SLOTS_MIN 8u
#define PEER_SEED 1u
#define PEER_COMPLETED 2u

struct peer {
  uint8_t id[SWARMS_ID_LEN];
  uint8_t ip[16];          /* IPv4: first 4 bytes, rest zero */
  uint16_t port;           /* host order */
  uint8_t family;          /* AF_INET or AF_INET6 */
  uint8_t flags;           /* PEER_* */
  uint32_t hash;           /* of id, family, ip */
  uint64_t last_seen;
};

struct swarm {
  uint8_t info_hash[SWARMS_ID_LEN];
  uint32_t hash;
  uint32_t n, cap;         /* peers in use, allocated */
  uint32_t seeds;
  uint64_t downloaded;
  struct peer *peers;
  struct slots idx;
};

struct swarms {
  struct swarms_limits lim;
  uint8_t key[crypto_shorthash_KEYBYTES];
  uint64_t rng;
  struct swarm **sw;
  uint32_t n, cap;
  size_t npeers;
  struct slots idx;
};

/* ---- the index ---- */

static uint32_t slots_size(const struct slots *t) { return t->v ? t->mask + 1 : 0; }

/* Smallest power of two >= 2n, at least SLOTS_MIN. */
static uint32_t slots_size_for(uint32_t n)
{
  uint32_t size = SLOTS_MIN;
  while (size < 2 * (uint64_t)n)
    size *= 2;
  return size;
}

static void slots_insert(struct slots *t, uint32_t h, uint32_t item)
{
  uint32_t i = h & t->mask;
  while (t->v[i] != 0)
    i = (i + 1) & t->mask;
  t->v[i] = item + 1;
}

/* The slot that holds `item` (which must be indexed). */
static uint32_t slots_where(const struct slots *t, uint32_t h, uint32_t item)
{
  uint32_t i = h & t->mask;
  while (t->v[i] != item + 1)
    i = (i + 1) & t->mask;
  return i;
}

/* Frees slot i and shifts later members of its probe run back, so lookups
 * need no tombstones. */
static void slots_delete(struct slots *t, uint32_t i, slots_hash_fn hash, const void *ctx)
{
  uint32_t j = i;
  for (;;) {
    t->v[i] = 0;
    for (;;) {
      j = (j + 1) & t->mask;
      if (t->v[j] == 0)
        return;
      uint32_t k = hash(ctx, t->v[j] - 1) & t->mask;
      /* The entry at j may move to i unless its home k lies cyclically in (i, j]. */
      int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays)
        break;
    }
    t->v[i] = t->v[j];
    i = j;
  }
}

/* Rebuilds the index with `size` slots for items 0..n-1; on failure the old
 * index stays as it was. */
static int slots_rebuild(struct slots *t, uint32_t size, uint32_t n, slots_hash_fn hash, const void *ctx)
{
  uint32_t *v = calloc(size, sizeof *v);
  if (v == NULL)
    return UV_ENOMEM;
  free(t->v);
  t->v = v;
  t->mask = size - 1;
  for (uint32_t it = 0; it < n; it++)
    slots_insert(t, hash(ctx, it), it);
  return 0;
}

/* Makes room for a (n+1)-th item. */
static int slots_grow_for(struct slots *t, uint32_t n, slots_hash_fn hash, const void *ctx)
{
  if (2 * ((uint64_t)n + 1) <= slots_size(t))
    return 0;
  return slots_rebuild(t, slots_size_for(n + 1), n, hash, ctx);
}

/* Gives memory back when the index is mostly empty (best effort). */
static void slots_shrink_for(struct slots *t, uint32_t n, slots_hash_fn hash, const void *ctx)
{
  uint32_t size = slots_size(t);
  if (size > SLOTS_MIN && 8 * (uint64_t)n < size)
    (void)slots_rebuild(t, slots_size_for(n), n, hash, ctx);
}

/* ---- helpers ---- */

static uint32_t swarms_hash(const struct swarms *s, const void *p, size_t n)
{
  uint8_t out[crypto_shorthash_BYTES];
  uint32_t h;
  crypto_shorthash(out, p, n, s->key);
  memcpy(&h, out, sizeof h);
  return h;
}

static uint64_t swarms_rand(struct swarms *s)
{
  /* splitmix64 */
  uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint32_t swarms_peer_hash(const struct swarms *s, const uint8_t id[SWARMS_ID_LEN],
                                 uint8_t family, const uint8_t ip[16])
{
  uint8_t k[SWARMS_ID_LEN + 1 + 16];
  memcpy(k, id, SWARMS_ID_LEN);
  k[SWARMS_ID_LEN] = family;
  memcpy(k + SWARMS_ID_LEN + 1, ip, 16);
  return swarms_hash(s, k, sizeof k);
}

static uint32_t swarm_item_hash(const void *ctx, uint32_t item)
{
  const struct swarms *s = ctx;
  return s->sw[item]->hash;
}

static uint32_t peer_item_hash(const void *ctx, uint32_t item)
{
  const struct swarm *sw = ctx;
  return sw->peers[item].hash;
}

static const struct swarm *swarms_find_c(const struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN], uint32_t h)
{
  if (s->idx.v == NULL)
    return NULL;
  uint32_t i = h & s->idx.mask;
  for (; s->idx.v[i] != 0; i = (i + 1) & s->idx.mask) {
    const struct swarm *sw = s->sw[s->idx.v[i] - 1];
    if (sw->hash == h && memcmp(sw->info_hash, info_hash, SWARMS_ID_LEN) == 0)
      return sw;
  }
  return NULL;
}

static struct swarm *swarms_find(struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN], uint32_t h)
{
  return (struct swarm *)swarms_find_c(s, info_hash, h);
}

/* Index of the peer with this id at this IP, or -1. */
static long swarm_find_peer(const struct swarm *sw, uint32_t h, const uint8_t id[SWARMS_ID_LEN],
                            uint8_t family, const uint8_t ip[16])
{
  if (sw->idx.v == NULL)
    return -1;
  uint32_t i = h & sw->idx.mask;
  for (; sw->idx.v[i] != 0; i = (i + 1) & sw->idx.mask) {
    uint32_t item = sw->idx.v[i] - 1;
    const struct peer *p = &sw->peers[item];
    if (p->hash == h && p->family == family && memcmp(p->id, id, SWARMS_ID_LEN) == 0 &&
        memcmp(p->ip, ip, 16) == 0)
      return (long)item;
  }
  return -1;
}

static void swarm_fill_stats(const struct swarm *sw, struct swarms_stats *st)
{
  if (st == NULL)
    return;
  if (sw == NULL) {
    memset(st, 0, sizeof *st);
    return;
  }
  st->complete = sw->seeds;
  st->incomplete = sw->n - sw->seeds;
  st->downloaded = sw->downloaded;
}

static void swarm_free(struct swarm *sw)
{
  free(sw->peers);
  free(sw->idx.v);
  free(sw);
}

/* ---- swarms ---- */

struct swarms *swarms_new(const struct swarms_limits *lim, const uint8_t key[SWARMS_KEY_LEN])
{
  struct swarms *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->lim = swarms_default_limits;
  if (lim != NULL) {
    if (lim->max_swarms)
      s->lim.max_swarms = lim->max_swarms;
    if (lim->max_peers_per_swarm)
      s->lim.max_peers_per_swarm = lim->max_peers_per_swarm;
    if (lim->max_peers)
      s->lim.max_peers = lim->max_peers;
  }
  /* Keep every count comfortably inside uint32 arithmetic. */
  if (s->lim.max_swarms > (1u << 30))
    s->lim.max_swarms = 1u << 30;
  if (s->lim.max_peers_per_swarm > (1u << 30))
    s->lim.max_peers_per_swarm = 1u << 30;
  _Static_assert(SWARMS_KEY_LEN == crypto_shorthash_KEYBYTES, "hash key size");
  memcpy(s->key, key, SWARMS_KEY_LEN);
  /* The selection PRNG's seed comes from the key, so it is as unpredictable. */
  uint8_t seed[crypto_shorthash_BYTES];
  crypto_shorthash(seed, (const uint8_t *)"shoal-swarms-rng", 16, s->key);
  memcpy(&s->rng, seed, sizeof s->rng);
  return s;
}

void swarms_free(struct swarms *s)
{
  if (s == NULL)
    return;
  for (uint32_t i = 0; i < s->n; i++)
    swarm_free(s->sw[i]);
  free(s->sw);
  free(s->idx.v);
  free(s);
}

static struct swarm *swarms_create(struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN], uint32_t h)
{
  if (s->n == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 16;
    if (cap > s->lim.max_swarms)
      cap = s->lim.max_swarms;
    struct swarm **v = realloc(s->sw, (size_t)cap * sizeof *v);
    if (v == NULL)
      return NULL;
    s->sw = v;
    s->cap = cap;
  }
  if (slots_grow_for(&s->idx, s->n, swarm_item_hash, s))
    return NULL;
  struct swarm *sw = calloc(1, sizeof *sw);
  if (sw == NULL)
    return NULL;
  memcpy(sw->info_hash, info_hash, SWARMS_ID_LEN);
  sw->hash = h;
  s->sw[s->n] = sw;
  slots_insert(&s->idx, h, s->n);
  s->n++;
  return sw;
}

/* Removes the swarm at index x (swapping the last one into its place). */
static void swarms_remove_at(struct swarms *s, uint32_t x)
{
  struct swarm *sw = s->sw[x];
  uint32_t last = s->n - 1;
  slots_delete(&s->idx, slots_where(&s->idx, sw->hash, x), swarm_item_hash, s);
  if (x != last) {
    s->idx.v[slots_where(&s->idx, s->sw[last]->hash, last)] = x + 1;
    s->sw[x] = s->sw[last];
  }
  s->n--;
  s->npeers -= sw->n;
  swarm_free(sw);
  slots_shrink_for(&s->idx, s->n, swarm_item_hash, s);
  if (s->cap > 16 && (uint64_t)s->n * 4 < s->cap) {
    struct swarm **v = realloc(s->sw, (size_t)(s->cap / 2) * sizeof *v);
    if (v != NULL) {
      s->sw = v;
      s->cap /= 2;
    }
  }
}

/* Array index of a swarm that is in the table. */
static uint32_t swarms_index_of(const struct swarms *s, const struct swarm *sw)
{
  uint32_t i = sw->hash & s->idx.mask;
  while (s->sw[s->idx.v[i] - 1] != sw)
    i = (i + 1) & s->idx.mask;
  return s->idx.v[i] - 1;
}

/* Adds a peer at the end of the swarm's array; the caller checked the caps. */
static int swarm_add_peer(struct swarm *sw, const struct peer *p, uint32_t max)
{
  if (sw->n == sw->cap) {
    uint32_t cap = sw->cap ? sw->cap * 2 : 4;
    if (cap > max)
      cap = max;
    struct peer *v = realloc(sw->peers, (size_t)cap * sizeof *v);
    if (v == NULL)
      return UV_ENOMEM;
    sw->peers = v;
    sw->cap = cap;
  }
  if (slots_grow_for(&sw->idx, sw->n, peer_item_hash, sw))
    return UV_ENOMEM;
  sw->peers[sw->n] = *p;
  slots_insert(&sw->idx, p->hash, sw->n);
  sw->n++;
  if (p->flags & PEER_SEED)
    sw->seeds++;
  return 0;
}

/* Removes the peer at index x (swapping the last one into its place). */
static void swarm_remove_peer(struct swarm *sw, uint32_t x)
{
  uint32_t last = sw->n - 1;
  if (sw->peers[x].flags & PEER_SEED)
    sw->seeds--;
  slots_delete(&sw->idx, slots_where(&sw->idx, sw->peers[x].hash, x), peer_item_hash, sw);
  if (x != last) {
    sw->idx.v[slots_where(&sw->idx, sw->peers[last].hash, last)] = x + 1;
    sw->peers[x] = sw->peers[last];
  }
  sw->n--;
  slots_shrink_for(&sw->idx, sw->n, peer_item_hash, sw);
  if (sw->cap > 4 && (uint64_t)sw->n * 4 < sw->cap) {
    struct peer *v = realloc(sw->peers, (size_t)(sw->cap / 2) * sizeof *v);
    if (v != NULL) {
      sw->peers = v;
      sw->cap /= 2;
    }
  }
}

int swarms_announce(struct swarms *s, const struct swarms_announce *a, uint64_t now,
                    struct swarms_stats *st)
{
  struct peer np;
  memset(&np, 0, sizeof np);
  if (compact_addr_split(a->addr, &np.family, np.ip, &np.port)) {
    swarm_fill_stats(NULL, st);
    return UV_EINVAL;
  }
  uint32_t h = swarms_hash(s, a->info_hash, SWARMS_ID_LEN);
  struct swarm *sw = swarms_find(s, a->info_hash, h);
  memcpy(np.id, a->peer_id, SWARMS_ID_LEN);
  np.hash = swarms_peer_hash(s, np.id, np.family, np.ip);
  np.last_seen = now;
  np.flags = a->left == 0 ? PEER_SEED : 0;
  long at = sw ? swarm_find_peer(sw, np.hash, np.id, np.family, np.ip) : -1;

  if (a->event == SWARMS_EVENT_STOPPED) {
    if (at >= 0) {
      swarm_remove_peer(sw, (uint32_t)at);
      s->npeers--;
      if (sw->n == 0) {
        swarms_remove_at(s, swarms_index_of(s, sw));
        sw = NULL;
      }
    }
    swarm_fill_stats(sw, st);
    return 0;
  }

  if (at >= 0) {
    struct peer *p = &sw->peers[at];
    p->port = np.port;
    p->last_seen = now;
    if ((p->flags & PEER_SEED) && !(np.flags & PEER_SEED))
      sw->seeds--;
    else if (!(p->flags & PEER_SEED) && (np.flags & PEER_SEED))
      sw->seeds++;
    p->flags = (uint8_t)((p->flags & ~PEER_SEED) | (np.flags & PEER_SEED));
    if (a->event == SWARMS_EVENT_COMPLETED && !(p->flags & PEER_COMPLETED)) {
      p->flags |= PEER_COMPLETED;
      sw->downloaded++;
    }
    swarm_fill_stats(sw, st);
    return 0;
  }

  /* A new peer: check every cap before changing anything. */
  if (s->npeers >= s->lim.max_peers || (sw != NULL && sw->n >= s->lim.max_peers_per_swarm) ||
      (sw == NULL && s->n >= s->lim.max_swarms)) {
    swarm_fill_stats(sw, st);
    return SWARMS_NOT_STORED;
  }
  bool created = false;
  if (sw == NULL) {
    sw = swarms_create(s, a->info_hash, h);
    if (sw == NULL) {
      swarm_fill_stats(NULL, st);
      return UV_ENOMEM;
    }
    created = true;
  }
  if (a->event == SWARMS_EVENT_COMPLETED)
    np.flags |= PEER_COMPLETED;
  if (swarm_add_peer(sw, &np, s->lim.max_peers_per_swarm)) {
    if (created) {
      swarms_remove_at(s, swarms_index_of(s, sw));
      sw = NULL;
    }
    swarm_fill_stats(sw, st);
    return UV_ENOMEM;
  }
  s->npeers++;
  if (a->event == SWARMS_EVENT_COMPLETED)
    sw->downloaded++;
  swarm_fill_stats(sw, st);
  return 0;
}

size_t swarms_select(struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN],
                     const uint8_t self_id[SWARMS_ID_LEN], const struct sockaddr *self,
                     bool self_seed, struct swarms_peer *out, size_t want)
{
  return swarms_select_family(s, info_hash, self_id, self, self_seed, 0, out, want);
}

size_t swarms_select_family(struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN],
                            const uint8_t self_id[SWARMS_ID_LEN], const struct sockaddr *self,
                            bool self_seed, int family, struct swarms_peer *out, size_t want)
{
  const struct swarm *sw = swarms_find_c(s, info_hash, swarms_hash(s, info_hash, SWARMS_ID_LEN));
  if (sw == NULL || want == 0)
    return 0;
  uint8_t fam = 0, ip[16];
  uint16_t port = 0;
  bool have_self = compact_addr_split(self, &fam, ip, &port) == 0;

  /* Pass 1: count the eligible peers.  Pass 2: selection sampling (each
   * eligible peer is taken with probability still-needed / still-left),
   * which gives a uniform sample without repeats and without extra memory. */
  size_t eligible = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t need = want < eligible ? want : eligible, left = eligible, n = 0;
    for (uint32_t i = 0; i < sw->n; i++) {
      const struct peer *p = &sw->peers[i];
      if (self_seed && (p->flags & PEER_SEED))
        continue;
      if (family != 0 && p->family != family)
        continue;
      if (have_self && p->family == fam && memcmp(p->ip, ip, 16) == 0 &&
          (p->port == port || memcmp(p->id, self_id, SWARMS_ID_LEN) == 0))
        continue;
      if (pass == 0) {
        eligible++;
        continue;
      }
      if (need == 0)
        break;
      if (swarms_rand(s) % left < need) {
        struct swarms_peer *o = &out[n++];
        memset(o, 0, sizeof *o);
        memcpy(o->id, p->id, SWARMS_ID_LEN);
        o->seed = (p->flags & PEER_SEED) != 0;
        if (p->family == AF_INET) {
          struct sockaddr_in *sin = (struct sockaddr_in *)&o->addr;
          sin->sin_family = AF_INET;
          memcpy(&sin->sin_addr, p->ip, 4);
          sin->sin_port = htons(p->port);
        } else {
          struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->addr;
          sin6->sin6_family = AF_INET6;
          memcpy(&sin6->sin6_addr, p->ip, 16);
          sin6->sin6_port = htons(p->port);
        }
        need--;
      }
      left--;
    }
    if (pass == 1)
      return n;
  }
  return 0;
}

int swarms_lookup(const struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN],
                  struct swarms_stats *st)
{
  const struct swarm *sw = swarms_find_c(s, info_hash, swarms_hash(s, info_hash, SWARMS_ID_LEN));
  swarm_fill_stats(sw, st);
  return sw ? 0 : SHOAL_ENOTFOUND;
}

size_t swarms_count(const struct swarms *s) { return s->n; }
size_t swarms_peer_count(const struct swarms *s) { return s->npeers; }

int swarms_at(const struct swarms *s, size_t i, uint8_t info_hash[SWARMS_ID_LEN],
              struct swarms_stats *st)
{
  if (i >= s->n)
    return UV_EINVAL;
  memcpy(info_hash, s->sw[i]->info_hash, SWARMS_ID_LEN);
  swarm_fill_stats(s->sw[i], st);
  return 0;
}

size_t swarms_sweep(struct swarms *s, uint64_t now, uint64_t max_age)
{
  size_t removed = 0;
  /* Backwards: removal swaps the last element into the hole, which has
   * then already been looked at. */
  for (uint32_t x = s->n; x-- > 0;) {
    struct swarm *sw = s->sw[x];
    for (uint32_t i = sw->n; i-- > 0;) {
      uint64_t seen = sw->peers[i].last_seen;
      if (now > seen && now - seen > max_age) {
        swarm_remove_peer(sw, i);
        s->npeers--;
        removed++;
      }
    }
    if (sw->n == 0)
      swarms_remove_at(s, x);
  }
  return removed;
}
