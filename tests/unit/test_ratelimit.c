/* test_ratelimit.c -- token buckets: exact long-run totals, 100 ms windows, delays, hierarchy, extremes. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ratelimit.h"

/* Small deterministic generator so runs repeat exactly. */
static uint64_t rng_state;
static uint64_t rng(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

START_TEST(test_unlimited)
{
  struct ratelimit b;
  ratelimit_init(&b, 0, 0, 1000);
  ck_assert_uint_eq(ratelimit_take(&b, 123456789, 1000), 123456789);
  ck_assert_uint_eq(ratelimit_take(&b, UINT64_MAX, 1000), UINT64_MAX);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, UINT64_MAX, 1000), 0);
  /* Turning a limit on starts empty, whatever happened while unlimited. */
  ratelimit_set_rate(&b, 1000, 500, 5000);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 5000), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 1000, 5100), 100);
  /* And off again. */
  ratelimit_set_rate(&b, 0, 0, 5100);
  ck_assert_uint_eq(ratelimit_take(&b, 99999, 5100), 99999);
}
END_TEST

START_TEST(test_basic)
{
  struct ratelimit b;
  ratelimit_init(&b, 1000, 500, 0);
  ck_assert_uint_eq(b.burst, 500);
  ck_assert_uint_eq(ratelimit_take(&b, 100, 0), 0);      /* starts empty */
  ck_assert_uint_eq(ratelimit_take(&b, 30, 100), 30);    /* 100 earned */
  ck_assert_uint_eq(ratelimit_take(&b, 100, 100), 70);   /* partial grant */
  ck_assert_uint_eq(ratelimit_take(&b, 100, 100), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 10000, 10000), 500); /* capped at burst */
  ck_assert_uint_eq(ratelimit_take(&b, 1, 10000), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 0, 20000), 0);
  ck_assert_uint_eq(b.tokens, 500);
}
END_TEST

START_TEST(test_default_burst)
{
  struct ratelimit b;
  ratelimit_init(&b, 1000, 0, 0);
  ck_assert_uint_eq(b.burst, RATELIMIT_MIN_BURST);
  ratelimit_init(&b, 10u << 20, 0, 0);
  ck_assert_uint_eq(b.burst, (10u << 20) / 10);
  ratelimit_set_rate(&b, 50000000, 0, 0);
  ck_assert_uint_eq(b.burst, 5000000);
  ratelimit_set_rate(&b, 5000, 7777, 0);
  ck_assert_uint_eq(b.burst, 7777);
}
END_TEST

START_TEST(test_fraction_carried)
{
  /* 3 B/s: a byte every 333.33 ms. */
  struct ratelimit b;
  ratelimit_init(&b, 3, 100, 0);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 333), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 334), 1);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 666), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 667), 1);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 1000), 1);
  /* One-millisecond steps for an hour at 7 B/s: exactly 7 * 3600 bytes. */
  ratelimit_init(&b, 7, 1000, 0);
  uint64_t total = 0;
  for (uint64_t t = 1; t <= 3600000; t++)
    total += ratelimit_take(&b, 1000, t);
  ck_assert_uint_eq(total, 7 * 3600);
}
END_TEST

START_TEST(test_no_drift_hours)
{
  /* Irregular steps for three hours at an odd rate: the greedy total is
   * exactly floor(rate * T / 1000). */
  struct ratelimit b;
  const uint64_t rate = 1000003;
  ratelimit_init(&b, rate, 0, 0);
  rng_state = 0x9e3779b97f4a7c15ull;
  uint64_t t = 0, total = 0, end = 3ull * 3600 * 1000;
  while (t < end) {
    t += 1 + rng() % 13;
    if (t > end)
      t = end;
    total += ratelimit_take(&b, UINT64_MAX, t);
  }
  ck_assert_uint_eq(total, rate * end / 1000);
}
END_TEST

/* Simulates a greedy sender for `secs` seconds with irregular timer steps,
 * taking 16 KiB at a time until refused, and checks the total and every
 * 100 ms window. */
static void simulate(uint64_t rate, uint64_t burst, unsigned secs, unsigned max_step)
{
  struct ratelimit b;
  uint64_t start = 123456;
  ratelimit_init(&b, rate, burst, start);
  uint64_t n = (uint64_t)secs * 1000;
  uint64_t *per_ms = calloc(n + 1, sizeof *per_ms);
  ck_assert_ptr_nonnull(per_ms);
  uint64_t t = 0, total = 0;
  while (t < n) {
    t += 1 + rng() % max_step;
    if (t > n)
      t = n;
    for (;;) {
      uint64_t g = ratelimit_take(&b, 16384, start + t);
      per_ms[t] += g;
      total += g;
      if (g < 16384)
        break;
    }
  }
  uint64_t ideal = rate * secs;
  ck_assert_msg(total <= ideal, "rate %llu: %llu > %llu", (unsigned long long)rate,
                (unsigned long long)total, (unsigned long long)ideal);
  ck_assert_msg(total * 100 >= ideal * 99, "rate %llu: %llu < 99%% of %llu",
                (unsigned long long)rate, (unsigned long long)total, (unsigned long long)ideal);
  /* Grants at any 100 distinct milliseconds [t, t+100). */
  uint64_t bound = (rate + 9) / 10 + b.burst, win = 0;
  for (uint64_t i = 0; i <= n; i++) {
    win += per_ms[i];
    if (i >= 100)
      win -= per_ms[i - 100];
    ck_assert_msg(win <= bound, "rate %llu: window ending %llu has %llu > %llu",
                  (unsigned long long)rate, (unsigned long long)i, (unsigned long long)win,
                  (unsigned long long)bound);
  }
  free(per_ms);
}

START_TEST(test_accuracy_30s)
{
  static const uint64_t rates[] = { 1000, 12345, 100000, 1u << 20, 10u << 20, 123456789 };
  rng_state = 0x1234567887654321ull;
  for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
    simulate(rates[i], 0, 30, 1);     /* a take every millisecond */
    simulate(rates[i], 0, 30, 25);    /* irregular timers */
    /* Slow timers with a burst just above one timer period's worth (a
     * smaller burst loses what does not fit: that is what a burst is). */
    simulate(rates[i], rates[i] * 260 / 1000 + 1, 30, 250);
  }
}
END_TEST

START_TEST(test_under_rate_not_throttled)
{
  /* Demand below the rate is granted in full. */
  struct ratelimit b;
  ratelimit_init(&b, 100000, 0, 0);
  uint64_t total = 0;
  for (uint64_t t = 10; t <= 30000; t += 10)
    total += ratelimit_take(&b, 500, t);   /* 50 000 B/s asked */
  ck_assert_uint_eq(total, 500 * 3000);
}
END_TEST

START_TEST(test_delay)
{
  struct ratelimit b;
  ratelimit_init(&b, 1000, 2000, 0);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, 500, 0), 500);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, 500, 200), 300);
  ck_assert_uint_eq(ratelimit_take(&b, 500, 499), 499);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, 1, 499), 1);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, 5000, 499), 2000);  /* measured for the burst */
  ck_assert_uint_eq(ratelimit_delay_ms(&b, 0, 499), 0);
  ratelimit_init(&b, 3, 100, 0);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, 1, 0), 334);
  ck_assert_uint_eq(ratelimit_take(&b, 1, 333), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 1, 334), 1);
}
END_TEST

START_TEST(test_delay_exact)
{
  /* For random states: after the delay the want is granted, one ms before
   * it is not. */
  rng_state = 42;
  for (int it = 0; it < 20000; it++) {
    uint64_t rate = 1 + rng() % 5000000, burst = 1 + rng() % 3000000;
    struct ratelimit b, c;
    uint64_t t = rng() % 100000;
    ratelimit_init(&b, rate, burst, t);
    t += rng() % 3000;
    ratelimit_take(&b, rng() % (burst + 1), t);
    t += rng() % 50;
    uint64_t want = 1 + rng() % (burst + burst / 2);
    uint64_t d = ratelimit_delay_ms(&b, want, t);
    uint64_t w = want > burst ? burst : want;
    c = b;
    ck_assert_uint_eq(ratelimit_take(&c, w, t + d), w);
    if (d > 0) {
      c = b;
      ck_assert_uint_lt(ratelimit_take(&c, w, t + d - 1), w);
    }
  }
}
END_TEST

START_TEST(test_clock_backwards)
{
  struct ratelimit b;
  ratelimit_init(&b, 1000, 5000, 10000);
  ck_assert_uint_eq(ratelimit_take(&b, 5000, 11000), 1000);
  ck_assert_uint_eq(ratelimit_take(&b, 5000, 500), 0);   /* earlier: nothing */
  ck_assert_uint_eq(ratelimit_take(&b, 5000, 11000), 0); /* not credited twice */
  ck_assert_uint_eq(ratelimit_take(&b, 5000, 11100), 100);
}
END_TEST

START_TEST(test_extremes)
{
  struct ratelimit b;
  ratelimit_init(&b, UINT64_MAX, UINT64_MAX, 0);
  ck_assert_uint_eq(b.rate, RATELIMIT_MAX);
  ck_assert_uint_eq(b.burst, RATELIMIT_MAX);
  /* Years of idleness: no overflow, a full bucket. */
  ck_assert_uint_eq(ratelimit_take(&b, UINT64_MAX, UINT64_MAX / 2), RATELIMIT_MAX);
  ck_assert_uint_eq(ratelimit_take(&b, 1, UINT64_MAX / 2), 0);
  ck_assert_uint_eq(ratelimit_take(&b, UINT64_MAX, UINT64_MAX / 2 + 1), RATELIMIT_MAX / 1000);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, UINT64_MAX, UINT64_MAX / 2 + 1), 1000);
  ck_assert_uint_eq(ratelimit_take(&b, UINT64_MAX, UINT64_MAX), RATELIMIT_MAX);
  /* Slowest rate, large burst: a byte a second; a long wait. */
  ratelimit_init(&b, 1, RATELIMIT_MAX, 0);
  ck_assert_uint_eq(ratelimit_delay_ms(&b, RATELIMIT_MAX, 0), RATELIMIT_MAX * 1000);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 999), 0);
  ck_assert_uint_eq(ratelimit_take(&b, 10, 1000), 1);
}
END_TEST

START_TEST(test_set_rate_keeps_tokens)
{
  struct ratelimit b;
  ratelimit_init(&b, 1000, 10000, 0);
  ratelimit_set_rate(&b, 100, 300, 5000);   /* 5000 earned, capped at 300 */
  ck_assert_uint_eq(b.tokens, 300);
  ck_assert_uint_eq(ratelimit_take(&b, 1000, 5000), 300);
  ck_assert_uint_eq(ratelimit_take(&b, 1000, 6000), 100);  /* new rate */
  ratelimit_set_rate(&b, 10000, 100000, 6000);
  ck_assert_uint_eq(ratelimit_take(&b, 100000, 6500), 5000);
}
END_TEST

START_TEST(test_refund)
{
  struct ratelimit b;
  ratelimit_init(&b, 1000, 400, 0);
  ck_assert_uint_eq(ratelimit_take(&b, 400, 1000), 400);
  ratelimit_refund(&b, 150);
  ck_assert_uint_eq(ratelimit_take(&b, 1000, 1000), 150);
  ratelimit_refund(&b, 1000000);   /* capped at the burst */
  ck_assert_uint_eq(b.tokens, 400);
  ratelimit_init(&b, 0, 0, 0);
  ratelimit_refund(&b, 5);          /* unlimited: nothing changes */
  ck_assert_uint_eq(b.tokens, 0);
}
END_TEST

START_TEST(test_take2)
{
  struct ratelimit global, t1, t2;
  ratelimit_init(&global, 1000, 1000, 0);
  ratelimit_init(&t1, 500, 500, 0);
  ratelimit_init(&t2, 0, 0, 0);               /* unlimited torrent */
  ck_assert_uint_eq(ratelimit_take2(&t1, &global, 800, 1000), 500);
  ck_assert_uint_eq(global.tokens, 500);       /* only the grant consumed */
  ck_assert_uint_eq(t1.tokens, 0);
  ck_assert_uint_eq(ratelimit_take2(&t2, &global, 800, 1000), 500);
  ck_assert_uint_eq(global.tokens, 0);
  ck_assert_uint_eq(ratelimit_take2(&t2, &global, 800, 1000), 0);
  /* Global the narrower: the torrent keeps what it could not use. */
  ck_assert_uint_eq(ratelimit_take2(&t1, &global, 800, 1100), 50);
  ck_assert_uint_eq(t1.tokens, 0);
  ck_assert_uint_eq(global.tokens, 50);
  /* Torrent the narrower. */
  ck_assert_uint_eq(ratelimit_take2(&t1, &global, 100, 1200), 50);
  ck_assert_uint_eq(global.tokens, 100);
  ck_assert_uint_eq(t1.tokens, 0);
  ck_assert_uint_eq(ratelimit_delay2_ms(&t1, &global, 100, 1200), 200); /* t1 is the slower */
  ck_assert_uint_eq(ratelimit_delay2_ms(&t2, &global, 100, 1200), 0);
  ck_assert_uint_eq(ratelimit_take2(&t2, &global, 100, 1200), 100);
  ck_assert_uint_eq(ratelimit_delay2_ms(&t2, &global, 100, 1200), 100);
  /* Both unlimited. */
  struct ratelimit u1, u2;
  ratelimit_init(&u1, 0, 0, 0);
  ratelimit_init(&u2, 0, 0, 0);
  ck_assert_uint_eq(ratelimit_take2(&u1, &u2, 77777, 0), 77777);
  ck_assert_uint_eq(ratelimit_delay2_ms(&u1, &u2, 77777, 0), 0);
}
END_TEST

START_TEST(test_hierarchy_sum)
{
  /* Three torrents limited to 40 KB/s each under a 100 KB/s global: the
   * global total stays within its rate, and nobody exceeds their own. */
  struct ratelimit g, t[3];
  ratelimit_init(&g, 100000, 0, 0);
  uint64_t got[3] = { 0 };
  for (int i = 0; i < 3; i++)
    ratelimit_init(&t[i], 40000, 0, 0);
  for (uint64_t ms = 5; ms <= 20000; ms += 5)
    for (int i = 0; i < 3; i++) {
      int k = (int)((ms / 5 + (uint64_t)i) % 3);   /* rotate who goes first */
      got[k] += ratelimit_take2(&t[k], &g, 16384, ms);
    }
  uint64_t sum = got[0] + got[1] + got[2];
  ck_assert_uint_le(sum, 100000 * 20);
  ck_assert_uint_ge(sum, 100000 * 20 * 99 / 100);
  for (int i = 0; i < 3; i++)
    ck_assert_uint_le(got[i], 40000 * 20);
}
END_TEST

Suite *ratelimit_suite(void)
{
  Suite *s = suite_create("ratelimit");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_unlimited);
  tcase_add_test(tc, test_basic);
  tcase_add_test(tc, test_default_burst);
  tcase_add_test(tc, test_fraction_carried);
  tcase_add_test(tc, test_no_drift_hours);
  tcase_add_test(tc, test_accuracy_30s);
  tcase_add_test(tc, test_under_rate_not_throttled);
  tcase_add_test(tc, test_delay);
  tcase_add_test(tc, test_delay_exact);
  tcase_add_test(tc, test_clock_backwards);
  tcase_add_test(tc, test_extremes);
  tcase_add_test(tc, test_set_rate_keeps_tokens);
  tcase_add_test(tc, test_refund);
  tcase_add_test(tc, test_take2);
  tcase_add_test(tc, test_hierarchy_sum);
  suite_add_tcase(s, tc);
  return s;
}
