/* queue.c -- the download/seed queue: who runs under the limits, seeding limits, moves. */
#include "peer/queue.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"

struct key {
  uint32_t position;
  uint32_t id;
  size_t idx;
};

static int key_cmp(const void *a, const void *b)
{
  const struct key *x = a, *y = b;
  if (x->position != y->position)
    return x->position < y->position ? -1 : 1;
  if (x->id != y->id)
    return x->id < y->id ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The entries' indices in queue order, in a new array (free it). */
static struct key *sorted(const struct queue_entry *e, size_t n)
{
  if (n > UINT32_MAX || n > SIZE_MAX / sizeof(struct key))
    return NULL;   /* positions are 32-bit */
  struct key *k = malloc((n ? n : 1) * sizeof *k);
  if (k == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    k[i] = (struct key){ e[i].position, e[i].id, i };
  qsort(k, n, sizeof *k, key_cmp);
  return k;
}

/* Positions 0..n-1 in the order of k (from sorted). */
static void renumber(struct queue_entry *e, const struct key *k, size_t n)
{
  for (size_t j = 0; j < n; j++)
    e[k[j].idx].position = (uint32_t)j;
}

int queue_select(const struct queue_entry *e, size_t n, uint32_t max_downloads,
                 uint32_t max_seeds, uint8_t *out)
{
  struct key *k = sorted(e, n);
  if (k == NULL)
    return UV_ENOMEM;
  uint32_t dl = 0, seed = 0;
  for (size_t j = 0; j < n; j++) {
    size_t i = k[j].idx;
    const struct queue_entry *q = &e[i];
    if (q->paused || q->error)
      out[i] = QUEUE_STOPPED;
    else if (q->wants_download)
      out[i] = dl < max_downloads ? (dl++, QUEUE_DOWNLOAD) : QUEUE_WAIT_DOWNLOAD;
    else if (q->wants_seed)
      out[i] = seed < max_seeds ? (seed++, QUEUE_SEED) : QUEUE_WAIT_SEED;
    else
      out[i] = QUEUE_STOPPED;
  }
  free(k);
  return 0;
}

bool queue_seed_done(double ratio, uint64_t idle_s, const struct queue_seed_limits *lim)
{
  if (isnan(ratio) || ratio < 0)
    ratio = 0;
  if (lim->ratio > 0 && ratio >= lim->ratio)
    return true;
  if (lim->idle_s > 0 && idle_s >= lim->idle_s)
    return true;
  return false;
}

struct queue_seed_limits queue_seed_limits_pick(int64_t ratio_milli, int64_t idle_s,
                                                const struct queue_seed_limits *global)
{
  struct queue_seed_limits l = *global;
  if (ratio_milli >= 0)
    l.ratio = (double)ratio_milli / 1000.0;
  if (idle_s >= 0)
    l.idle_s = (uint64_t)idle_s;
  return l;
}

double queue_ratio(uint64_t uploaded, uint64_t downloaded, uint64_t size)
{
  uint64_t base = downloaded ? downloaded : size;
  if (base == 0)
    return 0;
  return (double)uploaded / (double)base;
}

int queue_normalize(struct queue_entry *e, size_t n)
{
  struct key *k = sorted(e, n);
  if (k == NULL)
    return UV_ENOMEM;
  renumber(e, k, n);
  free(k);
  return 0;
}

int queue_move(struct queue_entry *e, size_t n, uint32_t id, enum queue_move_dir dir)
{
  size_t at = SIZE_MAX;
  for (size_t i = 0; i < n && at == SIZE_MAX; i++)
    if (e[i].id == id)
      at = i;
  if (at == SIZE_MAX)
    return SHOAL_ENOTFOUND;
  struct key *k = sorted(e, n);
  if (k == NULL)
    return UV_ENOMEM;
  size_t j = 0;
  while (k[j].idx != at)
    j++;
  struct key moved = k[j];
  switch (dir) {
  case QUEUE_MOVE_TOP:
    memmove(&k[1], &k[0], j * sizeof *k);
    k[0] = moved;
    break;
  case QUEUE_MOVE_UP:
    if (j > 0) {
      k[j] = k[j - 1];
      k[j - 1] = moved;
    }
    break;
  case QUEUE_MOVE_DOWN:
    if (j + 1 < n) {
      k[j] = k[j + 1];
      k[j + 1] = moved;
    }
    break;
  case QUEUE_MOVE_BOTTOM:
    memmove(&k[j], &k[j + 1], (n - j - 1) * sizeof *k);
    k[n - 1] = moved;
    break;
  }
  renumber(e, k, n);
  free(k);
  return 0;
}
