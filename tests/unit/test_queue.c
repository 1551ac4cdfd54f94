/* test_queue.c -- the torrent queue: slots and order, pause/error, completion, seeding limits, moves. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "peer/queue.h"

/* Shorthands for entries. */
static struct queue_entry dl(uint32_t id, uint32_t pos)
{
  return (struct queue_entry){ .id = id, .position = pos, .wants_download = true };
}
static struct queue_entry sd(uint32_t id, uint32_t pos)
{
  return (struct queue_entry){ .id = id, .position = pos, .wants_seed = true };
}

START_TEST(test_empty)
{
  uint8_t out[1] = { 0xee };
  ck_assert_int_eq(queue_select(NULL, 0, 5, 5, out), 0);
  ck_assert_uint_eq(out[0], 0xee);
  ck_assert_int_eq(queue_normalize(NULL, 0), 0);
  ck_assert_int_eq(queue_move(NULL, 0, 1, QUEUE_MOVE_TOP), SHOAL_ENOTFOUND);
}
END_TEST

START_TEST(test_limits_in_order)
{
  struct queue_entry e[] = { dl(1, 0), dl(2, 1), dl(3, 2), sd(4, 3), sd(5, 4), sd(6, 5), dl(7, 6) };
  uint8_t out[7];
  ck_assert_int_eq(queue_select(e, 7, 2, 1, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[1], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[2], QUEUE_WAIT_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_SEED);
  ck_assert_uint_eq(out[4], QUEUE_WAIT_SEED);
  ck_assert_uint_eq(out[5], QUEUE_WAIT_SEED);
  ck_assert_uint_eq(out[6], QUEUE_WAIT_DOWNLOAD);
  /* Slots are separate: downloads never take seed slots nor the reverse. */
  ck_assert_int_eq(queue_select(e, 7, 0, 10, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_WAIT_DOWNLOAD);
  ck_assert_uint_eq(out[6], QUEUE_WAIT_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_SEED);
  ck_assert_uint_eq(out[5], QUEUE_SEED);
  ck_assert_int_eq(queue_select(e, 7, 10, 0, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[6], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_WAIT_SEED);
}
END_TEST

START_TEST(test_position_not_array_order)
{
  /* Array order is irrelevant; position decides, then id. */
  struct queue_entry e[] = { dl(10, 9), dl(11, 2), dl(12, 5), dl(13, 2), dl(9, 100) };
  uint8_t out[5];
  ck_assert_int_eq(queue_select(e, 5, 3, 0, out), 0);
  ck_assert_uint_eq(out[1], QUEUE_DOWNLOAD);  /* pos 2, id 11 */
  ck_assert_uint_eq(out[3], QUEUE_DOWNLOAD);  /* pos 2, id 13 */
  ck_assert_uint_eq(out[2], QUEUE_DOWNLOAD);  /* pos 5 */
  ck_assert_uint_eq(out[0], QUEUE_WAIT_DOWNLOAD);
  ck_assert_uint_eq(out[4], QUEUE_WAIT_DOWNLOAD);
  /* The tie at position 2 is broken by id. */
  ck_assert_int_eq(queue_select(e, 5, 1, 0, out), 0);
  ck_assert_uint_eq(out[1], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_WAIT_DOWNLOAD);
}
END_TEST

START_TEST(test_paused_error_never_run)
{
  struct queue_entry e[] = { dl(1, 0), dl(2, 1), dl(3, 2), sd(4, 3), sd(5, 4) };
  e[0].paused = true;
  e[1].error = true;
  e[3].paused = true;
  e[3].error = true;
  uint8_t out[5];
  ck_assert_int_eq(queue_select(e, 5, 1, 1, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_STOPPED);
  ck_assert_uint_eq(out[1], QUEUE_STOPPED);
  ck_assert_uint_eq(out[2], QUEUE_DOWNLOAD);    /* the slots they would have had */
  ck_assert_uint_eq(out[3], QUEUE_STOPPED);
  ck_assert_uint_eq(out[4], QUEUE_SEED);
  /* Even with slots to spare. */
  ck_assert_int_eq(queue_select(e, 5, 100, 100, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_STOPPED);
  ck_assert_uint_eq(out[1], QUEUE_STOPPED);
  ck_assert_uint_eq(out[3], QUEUE_STOPPED);
}
END_TEST

START_TEST(test_nothing_to_do)
{
  /* Complete, seeding not allowed (or its limit reached): stopped. */
  struct queue_entry e[] = { { .id = 1, .position = 0 }, dl(2, 1) };
  uint8_t out[2];
  ck_assert_int_eq(queue_select(e, 2, 1, 1, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_STOPPED);
  ck_assert_uint_eq(out[1], QUEUE_DOWNLOAD);
  /* Wanting both counts as a download. */
  e[0].wants_download = e[0].wants_seed = true;
  ck_assert_int_eq(queue_select(e, 2, 1, 1, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[1], QUEUE_WAIT_DOWNLOAD);
}
END_TEST

START_TEST(test_completion_frees_slot)
{
  struct queue_entry e[] = { dl(1, 0), dl(2, 1), dl(3, 2), dl(4, 3) };
  uint8_t out[4];
  ck_assert_int_eq(queue_select(e, 4, 2, 5, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[1], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[2], QUEUE_WAIT_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_WAIT_DOWNLOAD);
  /* 1 completes and seeds: 3 starts. */
  e[0].wants_download = false;
  e[0].wants_seed = true;
  ck_assert_int_eq(queue_select(e, 4, 2, 5, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_SEED);
  ck_assert_uint_eq(out[1], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[2], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_WAIT_DOWNLOAD);
  /* 2 fails: 4 starts. */
  e[1].error = true;
  ck_assert_int_eq(queue_select(e, 4, 2, 5, out), 0);
  ck_assert_uint_eq(out[1], QUEUE_STOPPED);
  ck_assert_uint_eq(out[3], QUEUE_DOWNLOAD);
  /* 1 reaches its seed limit: stopped, nothing else changes. */
  e[0].wants_seed = false;
  ck_assert_int_eq(queue_select(e, 4, 2, 5, out), 0);
  ck_assert_uint_eq(out[0], QUEUE_STOPPED);
  ck_assert_uint_eq(out[2], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[3], QUEUE_DOWNLOAD);
  /* 4 moved to the top and a slot lowered to 1: 4 runs, 3 waits. */
  ck_assert_int_eq(queue_move(e, 4, 4, QUEUE_MOVE_TOP), 0);
  ck_assert_int_eq(queue_select(e, 4, 1, 5, out), 0);
  ck_assert_uint_eq(out[3], QUEUE_DOWNLOAD);
  ck_assert_uint_eq(out[2], QUEUE_WAIT_DOWNLOAD);
}
END_TEST

static uint64_t rng_state = 7;
static uint32_t rng(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

START_TEST(test_random_properties)
{
  /* For random queues: counts within limits, as many run as can, and no
   * waiting entry comes before a running one of the same kind. */
  struct queue_entry e[64];
  uint8_t out[64];
  for (int it = 0; it < 3000; it++) {
    size_t n = rng() % 64;
    uint32_t maxd = rng() % 8, maxs = rng() % 8;
    for (size_t i = 0; i < n; i++) {
      uint32_t r = rng();
      e[i] = (struct queue_entry){ .id = rng() % 100, .position = rng() % 40,
                                   .wants_download = r & 1, .wants_seed = (r >> 1) & 1,
                                   .paused = (r >> 2) % 5 == 0, .error = (r >> 5) % 7 == 0 };
    }
    ck_assert_int_eq(queue_select(e, n, maxd, maxs, out), 0);
    uint32_t want_d = 0, want_s = 0, run_d = 0, run_s = 0;
    for (size_t i = 0; i < n; i++) {
      bool ok = !e[i].paused && !e[i].error;
      bool isd = ok && e[i].wants_download, iss = ok && !e[i].wants_download && e[i].wants_seed;
      want_d += isd;
      want_s += iss;
      run_d += out[i] == QUEUE_DOWNLOAD;
      run_s += out[i] == QUEUE_SEED;
      if (!ok || (!isd && !iss))
        ck_assert_uint_eq(out[i], QUEUE_STOPPED);
      if (isd)
        ck_assert(out[i] == QUEUE_DOWNLOAD || out[i] == QUEUE_WAIT_DOWNLOAD);
      if (iss)
        ck_assert(out[i] == QUEUE_SEED || out[i] == QUEUE_WAIT_SEED);
    }
    ck_assert_uint_eq(run_d, want_d < maxd ? want_d : maxd);
    ck_assert_uint_eq(run_s, want_s < maxs ? want_s : maxs);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) {
        bool before = e[i].position < e[j].position ||
                      (e[i].position == e[j].position && (e[i].id < e[j].id || (e[i].id == e[j].id && i < j)));
        if (before && ((out[i] == QUEUE_WAIT_DOWNLOAD && out[j] == QUEUE_DOWNLOAD) ||
                       (out[i] == QUEUE_WAIT_SEED && out[j] == QUEUE_SEED)))
          ck_abort_msg("iteration %d: entry %zu waits ahead of running entry %zu", it, i, j);
      }
  }
}
END_TEST

START_TEST(test_seed_done)
{
  struct queue_seed_limits none = { 0, 0 }, r2 = { 2.0, 0 }, idle = { 0, 600 }, both = { 1.5, 3600 };
  ck_assert(!queue_seed_done(1000.0, 1000000, &none));
  ck_assert(!queue_seed_done(1.999, 1000000, &r2));
  ck_assert(queue_seed_done(2.0, 0, &r2));
  ck_assert(queue_seed_done(2.5, 0, &r2));
  ck_assert(!queue_seed_done(5.0, 599, &idle));
  ck_assert(queue_seed_done(0.0, 600, &idle));
  ck_assert(!queue_seed_done(1.4, 3599, &both));
  ck_assert(queue_seed_done(1.5, 0, &both));
  ck_assert(queue_seed_done(0.1, 3600, &both));
  ck_assert(!queue_seed_done(NAN, 0, &r2));
  ck_assert(!queue_seed_done(-5.0, 0, &r2));
  /* Ratio from counters: exactly 2x the download reaches 2.0. */
  ck_assert(queue_seed_done(queue_ratio(2000, 1000, 5000), 0, &r2));
  ck_assert(!queue_seed_done(queue_ratio(1999, 1000, 5000), 0, &r2));
}
END_TEST

START_TEST(test_ratio)
{
  ck_assert(queue_ratio(0, 0, 0) == 0.0);
  ck_assert(queue_ratio(500, 0, 0) == 0.0);
  ck_assert(queue_ratio(500, 1000, 4000) == 0.5);
  ck_assert(queue_ratio(8000, 0, 4000) == 2.0);   /* seeded from data already there */
  ck_assert(queue_ratio(UINT64_MAX, 1, 1) > 1e18);
}
END_TEST

START_TEST(test_limits_pick)
{
  struct queue_seed_limits g = { 2.0, 3600 };
  struct queue_seed_limits l = queue_seed_limits_pick(-1, -1, &g);
  ck_assert(l.ratio == 2.0);
  ck_assert_uint_eq(l.idle_s, 3600);
  l = queue_seed_limits_pick(0, 0, &g);
  ck_assert(l.ratio == 0.0);
  ck_assert_uint_eq(l.idle_s, 0);
  l = queue_seed_limits_pick(1500, 60, &g);
  ck_assert(l.ratio == 1.5);
  ck_assert_uint_eq(l.idle_s, 60);
  l = queue_seed_limits_pick(INT64_MIN, -77, &g);
  ck_assert(l.ratio == 2.0);
  ck_assert_uint_eq(l.idle_s, 3600);
}
END_TEST

/* ids of e in queue order, as a string "a,b,c" for easy comparison. */
static const char *order_of(struct queue_entry *e, size_t n)
{
  static char s[256];
  s[0] = 0;
  for (uint32_t p = 0; p < n; p++) {
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
      if (e[i].position == p) {
        hits++;
        snprintf(s + strlen(s), sizeof s - strlen(s), "%s%u", p ? "," : "", e[i].id);
      }
    ck_assert_uint_eq(hits, 1);   /* positions are dense after a move */
  }
  return s;
}

/* Moves id in e[0..n) and checks the queue order that results. */
static void move_to(struct queue_entry *e, size_t n, uint32_t id, enum queue_move_dir dir, const char *want)
{
  ck_assert_int_eq(queue_move(e, n, id, dir), 0);
  ck_assert_str_eq(order_of(e, n), want);
}

START_TEST(test_move)
{
  /* Sparse positions with a tie (ids 3 and 2 at 50: 2 first). */
  struct queue_entry e[] = { dl(1, 10), dl(3, 50), dl(2, 50), dl(4, 90), dl(5, 7) };
  ck_assert_int_eq(queue_normalize(e, 5), 0);
  ck_assert_str_eq(order_of(e, 5), "5,1,2,3,4");
  move_to(e, 5, 3, QUEUE_MOVE_TOP, "3,5,1,2,4");
  move_to(e, 5, 3, QUEUE_MOVE_TOP, "3,5,1,2,4");
  move_to(e, 5, 3, QUEUE_MOVE_UP, "3,5,1,2,4");      /* already first */
  move_to(e, 5, 2, QUEUE_MOVE_UP, "3,5,2,1,4");
  move_to(e, 5, 5, QUEUE_MOVE_DOWN, "3,2,5,1,4");
  move_to(e, 5, 4, QUEUE_MOVE_DOWN, "3,2,5,1,4");    /* already last */
  move_to(e, 5, 3, QUEUE_MOVE_BOTTOM, "2,5,1,4,3");
  move_to(e, 5, 1, QUEUE_MOVE_BOTTOM, "2,5,4,3,1");
  move_to(e, 5, 2, QUEUE_MOVE_BOTTOM, "5,4,3,1,2");
  /* Unknown id: error, nothing changes. */
  struct queue_entry before[5];
  memcpy(before, e, sizeof e);
  ck_assert_int_eq(queue_move(e, 5, 99, QUEUE_MOVE_TOP), SHOAL_ENOTFOUND);
  ck_assert_mem_eq(before, e, sizeof e);
  /* A single entry. */
  struct queue_entry one[] = { dl(7, 42) };
  ck_assert_int_eq(queue_move(one, 1, 7, QUEUE_MOVE_DOWN), 0);
  ck_assert_uint_eq(one[0].position, 0);
}
END_TEST

START_TEST(test_move_random)
{
  /* Moves compared with the same moves on a plain array of ids. */
  struct queue_entry e[20];
  uint32_t ref[20];
  for (uint32_t i = 0; i < 20; i++) {
    e[i] = dl(100 + i, 19 - i);   /* queue order is reverse of the array */
    ref[19 - i] = 100 + i;
  }
  for (int it = 0; it < 5000; it++) {
    uint32_t id = 100 + rng() % 20;
    enum queue_move_dir d = (enum queue_move_dir)(rng() % 4);
    ck_assert_int_eq(queue_move(e, 20, id, d), 0);
    size_t j = 0;
    while (ref[j] != id)
      j++;
    if (d == QUEUE_MOVE_TOP) {
      memmove(&ref[1], &ref[0], j * sizeof ref[0]);
      ref[0] = id;
    } else if (d == QUEUE_MOVE_BOTTOM) {
      memmove(&ref[j], &ref[j + 1], (19 - j) * sizeof ref[0]);
      ref[19] = id;
    } else if (d == QUEUE_MOVE_UP && j > 0) {
      ref[j] = ref[j - 1];
      ref[j - 1] = id;
    } else if (d == QUEUE_MOVE_DOWN && j < 19) {
      ref[j] = ref[j + 1];
      ref[j + 1] = id;
    }
    for (uint32_t i = 0; i < 20; i++)
      ck_assert_uint_eq(ref[e[i].position], e[i].id);
  }
}
END_TEST

Suite *queue_suite(void)
{
  Suite *s = suite_create("queue");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_empty);
  tcase_add_test(tc, test_limits_in_order);
  tcase_add_test(tc, test_position_not_array_order);
  tcase_add_test(tc, test_paused_error_never_run);
  tcase_add_test(tc, test_nothing_to_do);
  tcase_add_test(tc, test_completion_frees_slot);
  tcase_add_test(tc, test_random_properties);
  tcase_add_test(tc, test_seed_done);
  tcase_add_test(tc, test_ratio);
  tcase_add_test(tc, test_limits_pick);
  tcase_add_test(tc, test_move);
  tcase_add_test(tc, test_move_random);
  suite_add_tcase(s, tc);
  return s;
}
