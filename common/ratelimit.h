/* ratelimit.h -- token buckets on bytes, refilled continuously in integer arithmetic (pure: time is an argument). */
#ifndef COMMON_RATELIMIT_H_
#define COMMON_RATELIMIT_H_

#include <stdint.h>

/* Largest rate and burst accepted (1 TiB/s, 1 TiB); larger values are
 * clamped.  Keeps every intermediate product far below 2^64. */
#define RATELIMIT_MAX ((uint64_t)1 << 40)
/* Burst used when 0 is passed: a tenth of a second's worth, at least one
 * 16 KiB block (so a single block request can always be granted whole). */
#define RATELIMIT_MIN_BURST ((uint64_t)16384)

/* A bucket.  Caller-owned storage; no resources, nothing to free.
 * Times are milliseconds of any monotonic clock (uv_now() fits).  A time
 * earlier than one already seen refills nothing (the clock is taken as not
 * having moved).  The bucket starts EMPTY: a new limit never begins with a
 * burst, so the first second carries at most `rate` bytes. */
struct ratelimit {
  uint64_t rate;     /* bytes per second; 0 = unlimited */
  uint64_t burst;    /* most tokens the bucket holds */
  uint64_t tokens;   /* bytes that may be taken now */
  uint64_t frac;     /* refill carried over: thousandths of a byte, 0..999 */
  uint64_t last_ms;  /* time of the last refill */
};

/* Sets up b at time now_ms.  rate 0 = unlimited (every take is granted in
 * full).  burst 0 = max(rate / 10, RATELIMIT_MIN_BURST). */
void ratelimit_init(struct ratelimit *b, uint64_t rate, uint64_t burst, uint64_t now_ms);

/* Changes the rate (and burst, 0 = the default for the new rate) from now_ms
 * on.  Tokens earned at the old rate up to now_ms are kept, capped at the
 * new burst; turning a limit on from unlimited starts the bucket empty. */
void ratelimit_set_rate(struct ratelimit *b, uint64_t rate, uint64_t burst, uint64_t now_ms);

/* Takes up to `want` bytes at now_ms and returns how many were granted
 * (0..want); those are consumed. */
uint64_t ratelimit_take(struct ratelimit *b, uint64_t want, uint64_t now_ms);

/* Milliseconds from now_ms until `want` bytes could be taken in full (0 when
 * they can be taken now).  A want larger than the burst is measured for the
 * burst (the bucket never holds more).  Refills b up to now_ms but takes
 * nothing.  Unlimited: always 0. */
uint64_t ratelimit_delay_ms(struct ratelimit *b, uint64_t want, uint64_t now_ms);

/* Gives back n bytes that were granted but not used (capped at the burst). */
void ratelimit_refund(struct ratelimit *b, uint64_t n);

/* A per-torrent bucket under the global one: grants min(want, what each can
 * give) and consumes exactly that from both.  Either may be unlimited. */
uint64_t ratelimit_take2(struct ratelimit *a, struct ratelimit *b, uint64_t want, uint64_t now_ms);

/* The longer of the two delays for `want` bytes from both buckets. */
uint64_t ratelimit_delay2_ms(struct ratelimit *a, struct ratelimit *b, uint64_t want, uint64_t now_ms);

#endif
