/* rate.h -- byte rates averaged over the last few one-second ticks. */
#ifndef COMMON_RATE_H_
#define COMMON_RATE_H_

#include <stdint.h>

#define RATE_WINDOW 5u   /* seconds averaged */

struct rate {
  uint64_t total;               /* bytes since the start */
  uint64_t tick;                /* bytes in the current second */
  uint64_t hist[RATE_WINDOW];
  uint64_t per_s;               /* average over the window, bytes/s */
};

static inline void rate_add(struct rate *r, uint64_t n)
{
  r->total += n;
  r->tick += n;
}

/* Ends second number `second` (any counter that grows by one a second). */
static inline void rate_tick(struct rate *r, uint64_t second)
{
  r->hist[second % RATE_WINDOW] = r->tick;
  r->tick = 0;
  uint64_t sum = 0;
  for (unsigned i = 0; i < RATE_WINDOW; i++)
    sum += r->hist[i];
  r->per_s = sum / RATE_WINDOW;
}

#endif
