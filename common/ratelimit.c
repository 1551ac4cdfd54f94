/* ratelimit.c -- byte token buckets with a continuous, drift-free integer refill. */
#include "common/ratelimit.h"

#include "common/util.h"

static uint64_t clamp_max(uint64_t v) { return MIN(v, RATELIMIT_MAX); }

static uint64_t default_burst(uint64_t rate) { return MAX(rate / 10, RATELIMIT_MIN_BURST); }

/* Credits the time since last_ms.  The refill is rate * ms / 1000 bytes;
 * the thousandths that do not make a whole byte are carried in frac, so the
 * long-run total is exact.  Arithmetic stays below 2^51: the elapsed time is
 * only multiplied by the rate while it is shorter than the time to fill
 * the bucket. */
static void refill(struct ratelimit *b, uint64_t now_ms)
{
  if (now_ms <= b->last_ms)
    return;
  uint64_t el = now_ms - b->last_ms;
  b->last_ms = now_ms;
  if (b->rate == 0)
    return;
  if (b->tokens >= b->burst) {
    b->frac = 0;
    return;
  }
  uint64_t need_milli = (b->burst - b->tokens) * 1000 - b->frac;
  uint64_t fill_ms = (need_milli + b->rate - 1) / b->rate;
  if (el >= fill_ms) {
    b->tokens = b->burst;
    b->frac = 0;
    return;
  }
  uint64_t acc = el * b->rate + b->frac;  /* < need_milli + frac: never fills */
  b->tokens += acc / 1000;
  b->frac = acc % 1000;
}

void ratelimit_init(struct ratelimit *b, uint64_t rate, uint64_t burst, uint64_t now_ms)
{
  b->rate = clamp_max(rate);
  b->burst = burst ? clamp_max(burst) : default_burst(b->rate);
  b->tokens = 0;
  b->frac = 0;
  b->last_ms = now_ms;
}

void ratelimit_set_rate(struct ratelimit *b, uint64_t rate, uint64_t burst, uint64_t now_ms)
{
  refill(b, now_ms);
  if (b->rate == 0) {
    b->tokens = 0;
    b->frac = 0;
  }
  b->rate = clamp_max(rate);
  b->burst = burst ? clamp_max(burst) : default_burst(b->rate);
  if (b->tokens >= b->burst) {
    b->tokens = b->burst;
    b->frac = 0;
  }
}

uint64_t ratelimit_take(struct ratelimit *b, uint64_t want, uint64_t now_ms)
{
  refill(b, now_ms);
  if (b->rate == 0)
    return want;
  uint64_t g = MIN(want, b->tokens);
  b->tokens -= g;
  return g;
}

uint64_t ratelimit_delay_ms(struct ratelimit *b, uint64_t want, uint64_t now_ms)
{
  refill(b, now_ms);
  if (b->rate == 0)
    return 0;
  if (want > b->burst)
    want = b->burst;
  if (b->tokens >= want)
    return 0;
  uint64_t need_milli = (want - b->tokens) * 1000 - b->frac;
  return (need_milli + b->rate - 1) / b->rate;
}

void ratelimit_refund(struct ratelimit *b, uint64_t n)
{
  if (b->rate == 0)
    return;
  uint64_t room = b->burst > b->tokens ? b->burst - b->tokens : 0;
  b->tokens += MIN(n, room);
}

uint64_t ratelimit_take2(struct ratelimit *a, struct ratelimit *b, uint64_t want, uint64_t now_ms)
{
  refill(a, now_ms);
  refill(b, now_ms);
  uint64_t g = want;
  if (a->rate && a->tokens < g)
    g = a->tokens;
  if (b->rate && b->tokens < g)
    g = b->tokens;
  if (a->rate)
    a->tokens -= g;
  if (b->rate)
    b->tokens -= g;
  return g;
}

uint64_t ratelimit_delay2_ms(struct ratelimit *a, struct ratelimit *b, uint64_t want, uint64_t now_ms)
{
  uint64_t da = ratelimit_delay_ms(a, want, now_ms);
  uint64_t db = ratelimit_delay_ms(b, want, now_ms);
  return MAX(da, db);
}
