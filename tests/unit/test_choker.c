/* test_choker.c -- unit tests for the choker: slots, ranking, optimistic unchoke. */
#include <check.h>
#include <string.h>

#include "peer/choker.h"

static struct choker_peer mk(uint64_t down, uint64_t up, bool interested)
{
  struct choker_peer c;
  memset(&c, 0, sizeof(c));
  c.down_rate = down;
  c.up_rate = up;
  c.interested = interested;
  return c;
}

static size_t count_unchoked(const struct choker_peer *p, size_t n)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += p[i].unchoked;
  return k;
}

static size_t count_optimistic(const struct choker_peer *p, size_t n, size_t *which)
{
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i].optimistic) {
      k++;
      if (which != NULL)
        *which = i;
    }
  }
  return k;
}

START_TEST(test_slots_and_ranking_leech)
{
  struct choker_peer p[8];
  for (size_t i = 0; i < 8; i++)
    p[i] = mk(100 * (i + 1), 1000 - 100 * i, true);
  struct choker_config cfg = {.slots = 4, .seeding = false};
  choker_decide(p, 8, &cfg, false, 0);
  ck_assert_uint_eq(count_unchoked(p, 8), 4);
  /* three best downloaders get regular slots */
  ck_assert(p[7].unchoked && !p[7].optimistic);
  ck_assert(p[6].unchoked && !p[6].optimistic);
  ck_assert(p[5].unchoked && !p[5].optimistic);
  size_t o = 99;
  ck_assert_uint_eq(count_optimistic(p, 8, &o), 1);
  ck_assert_uint_lt(o, 5);
  ck_assert(p[o].unchoked);
}
END_TEST

START_TEST(test_ranking_seed)
{
  struct choker_peer p[8];
  for (size_t i = 0; i < 8; i++)
    p[i] = mk(100 * (i + 1), 1000 - 100 * i, true);
  p[1].snubbed = true; /* irrelevant while seeding */
  struct choker_config cfg = {.slots = 4, .seeding = true};
  choker_decide(p, 8, &cfg, false, 0);
  ck_assert_uint_eq(count_unchoked(p, 8), 4);
  ck_assert(p[0].unchoked && !p[0].optimistic);
  ck_assert(p[1].unchoked && !p[1].optimistic);
  ck_assert(p[2].unchoked && !p[2].optimistic);
  size_t o = 99;
  ck_assert_uint_eq(count_optimistic(p, 8, &o), 1);
  ck_assert_uint_ge(o, 3);
}
END_TEST

START_TEST(test_interested_only)
{
  struct choker_peer p[6];
  for (size_t i = 0; i < 6; i++)
    p[i] = mk(1000 * (i + 1), 0, false);
  p[0].unchoked = true;
  p[5].unchoked = true;
  p[5].optimistic = true;
  p[2].interested = true;
  struct choker_config cfg = {.slots = 4, .seeding = false};
  choker_decide(p, 6, &cfg, false, 7);
  ck_assert_uint_eq(count_unchoked(p, 6), 1);
  ck_assert(p[2].unchoked);
  ck_assert(!p[2].optimistic); /* it gets a regular slot */
  ck_assert_uint_eq(count_optimistic(p, 6, NULL), 0);
  /* nobody interested: all choked */
  p[2].interested = false;
  choker_decide(p, 6, &cfg, true, 3);
  ck_assert_uint_eq(count_unchoked(p, 6), 0);
  ck_assert_uint_eq(count_optimistic(p, 6, NULL), 0);
}
END_TEST

START_TEST(test_optimistic_kept_until_rotate)
{
  struct choker_peer p[10];
  for (size_t i = 0; i < 10; i++)
    p[i] = mk(i < 3 ? 1000 : 0, 0, true);
  struct choker_config cfg = {.slots = 4, .seeding = false};
  choker_decide(p, 10, &cfg, true, 5);
  size_t o = 99;
  ck_assert_uint_eq(count_optimistic(p, 10, &o), 1);
  ck_assert_uint_ge(o, 3);
  /* many runs with different rnd, no rotation: kept */
  for (uint32_t r = 0; r < 50; r++) {
    choker_decide(p, 10, &cfg, false, r * 7919u);
    size_t o2 = 99;
    ck_assert_uint_eq(count_optimistic(p, 10, &o2), 1);
    ck_assert_uint_eq(o2, o);
    ck_assert(p[o].unchoked);
    ck_assert_uint_eq(count_unchoked(p, 10), 4);
  }
  /* rotation picks another, choked, interested peer */
  p[o + (o == 9 ? -1 : 1)].interested = false;
  bool was_choked[10];
  for (size_t i = 0; i < 10; i++)
    was_choked[i] = !p[i].unchoked;
  choker_decide(p, 10, &cfg, true, 12345);
  size_t o3 = 99;
  ck_assert_uint_eq(count_optimistic(p, 10, &o3), 1);
  ck_assert_uint_ne(o3, o);
  ck_assert(was_choked[o3]);
  ck_assert(p[o3].interested);
  ck_assert(!p[o].unchoked);
  ck_assert_uint_eq(count_unchoked(p, 10), 4);
}
END_TEST

START_TEST(test_rotation_covers_candidates)
{
  /* over many rotations every choked interested peer gets a turn */
  struct choker_peer p[8];
  for (size_t i = 0; i < 8; i++)
    p[i] = mk(i < 3 ? 500 : 0, 0, true);
  struct choker_config cfg = {.slots = 4, .seeding = false};
  bool seen[8] = {false};
  uint32_t r = 1;
  for (int k = 0; k < 200; k++) {
    r = r * 1103515245u + 12345u;
    choker_decide(p, 8, &cfg, true, r >> 8);
    size_t o = 99;
    ck_assert_uint_eq(count_optimistic(p, 8, &o), 1);
    ck_assert_uint_ge(o, 3);
    seen[o] = true;
  }
  for (size_t i = 3; i < 8; i++)
    ck_assert(seen[i]);
}
END_TEST

START_TEST(test_optimistic_leaves)
{
  struct choker_peer p[6];
  for (size_t i = 0; i < 6; i++)
    p[i] = mk(0, 0, true);
  p[4].optimistic = true;
  p[4].unchoked = true;
  struct choker_config cfg = {.slots = 1, .seeding = false};
  choker_decide(p, 6, &cfg, false, 0);
  ck_assert(p[4].optimistic && p[4].unchoked);
  ck_assert_uint_eq(count_unchoked(p, 6), 1);
  /* loses interest: replaced without rotate */
  p[4].interested = false;
  choker_decide(p, 6, &cfg, false, 2);
  size_t o = 99;
  ck_assert_uint_eq(count_optimistic(p, 6, &o), 1);
  ck_assert_uint_ne(o, 4);
  ck_assert(!p[4].unchoked);
  ck_assert_uint_eq(count_unchoked(p, 6), 1);
}
END_TEST

START_TEST(test_optimistic_earns_regular)
{
  struct choker_peer p[6];
  for (size_t i = 0; i < 6; i++)
    p[i] = mk(10, 0, true);
  struct choker_config cfg = {.slots = 3, .seeding = false};
  p[0].unchoked = p[1].unchoked = true;
  p[5].unchoked = p[5].optimistic = true;
  p[5].down_rate = 1000000; /* now the best */
  choker_decide(p, 6, &cfg, false, 0);
  ck_assert(p[5].unchoked);
  ck_assert(!p[5].optimistic);
  size_t o = 99;
  ck_assert_uint_eq(count_optimistic(p, 6, &o), 1);
  ck_assert(o == 2 || o == 3 || o == 4 || o == 1);
  ck_assert_uint_eq(count_unchoked(p, 6), 3);
}
END_TEST

START_TEST(test_no_flapping_on_ties)
{
  struct choker_peer p[8];
  for (size_t i = 0; i < 8; i++)
    p[i] = mk(100, 100, true);
  /* currently unchoked: 5, 6, 7 regular; 0 optimistic */
  p[5].unchoked = p[6].unchoked = p[7].unchoked = true;
  p[0].unchoked = p[0].optimistic = true;
  struct choker_config cfg = {.slots = 4, .seeding = false};
  for (uint32_t r = 0; r < 20; r++) {
    choker_decide(p, 8, &cfg, false, r);
    ck_assert(p[5].unchoked && p[6].unchoked && p[7].unchoked);
    ck_assert(p[0].unchoked && p[0].optimistic);
    ck_assert_uint_eq(count_unchoked(p, 8), 4);
  }
  cfg.seeding = true;
  choker_decide(p, 8, &cfg, false, 9);
  ck_assert(p[5].unchoked && p[6].unchoked && p[7].unchoked && p[0].optimistic);
  /* a strictly faster peer does displace the tied ones */
  cfg.seeding = false;
  p[3].down_rate = 101;
  choker_decide(p, 8, &cfg, false, 0);
  ck_assert(p[3].unchoked && !p[3].optimistic);
  ck_assert(p[0].optimistic);
  ck_assert_uint_eq(count_unchoked(p, 8), 4);
}
END_TEST

START_TEST(test_snubbed_no_regular)
{
  struct choker_peer p[5];
  for (size_t i = 0; i < 5; i++)
    p[i] = mk(100 * (i + 1), 0, true);
  p[4].snubbed = true;
  p[3].snubbed = true;
  struct choker_config cfg = {.slots = 3, .seeding = false};
  choker_decide(p, 5, &cfg, false, 0);
  ck_assert(p[2].unchoked && !p[2].optimistic);
  ck_assert(p[1].unchoked && !p[1].optimistic);
  ck_assert(!(p[4].unchoked && !p[4].optimistic));
  ck_assert(!(p[3].unchoked && !p[3].optimistic));
  ck_assert_uint_eq(count_unchoked(p, 5), 3);
  /* all snubbed: only the optimistic slot is used */
  for (size_t i = 0; i < 5; i++) {
    p[i].snubbed = true;
    p[i].unchoked = p[i].optimistic = false;
  }
  choker_decide(p, 5, &cfg, false, 1);
  ck_assert_uint_eq(count_unchoked(p, 5), 1);
  ck_assert_uint_eq(count_optimistic(p, 5, NULL), 1);
}
END_TEST

START_TEST(test_n_zero_and_one_slot)
{
  struct choker_config cfg = {.slots = 4, .seeding = false};
  choker_decide(NULL, 0, &cfg, true, 1); /* must not crash */
  struct choker_peer one = mk(5, 5, true);
  choker_decide(&one, 0, &cfg, true, 1);
  ck_assert(!one.unchoked);

  struct choker_peer p[4];
  for (size_t i = 0; i < 4; i++)
    p[i] = mk(1000 * (i + 1), 0, true);
  cfg.slots = 1;
  choker_decide(p, 4, &cfg, false, 2);
  ck_assert_uint_eq(count_unchoked(p, 4), 1);
  size_t o = 99;
  ck_assert_uint_eq(count_optimistic(p, 4, &o), 1);
  ck_assert_uint_eq(o, 2); /* rnd 2 among four choked candidates */
  ck_assert(p[o].unchoked);
  /* slots 0 behaves as 1 */
  cfg.slots = 0;
  choker_decide(p, 4, &cfg, false, 0);
  ck_assert_uint_eq(count_unchoked(p, 4), 1);
  ck_assert(p[2].optimistic);
  /* a single interested peer with slots 1 keeps the slot across rotations */
  struct choker_peer s = mk(0, 0, true);
  cfg.slots = 1;
  for (int k = 0; k < 3; k++) {
    choker_decide(&s, 1, &cfg, true, (uint32_t)k);
    ck_assert(s.unchoked && s.optimistic);
  }
}
END_TEST

START_TEST(test_fewer_interested_than_slots)
{
  struct choker_peer p[3];
  p[0] = mk(10, 0, true);
  p[1] = mk(20, 0, true);
  p[2] = mk(30, 0, false);
  struct choker_config cfg = {.slots = 4, .seeding = false};
  choker_decide(p, 3, &cfg, true, 0);
  ck_assert(p[0].unchoked && p[1].unchoked && !p[2].unchoked);
  ck_assert_uint_eq(count_optimistic(p, 3, NULL), 0);
}
END_TEST

START_TEST(test_deterministic)
{
  struct choker_peer a[12], b[12];
  uint32_t r = 99;
  for (size_t i = 0; i < 12; i++) {
    r = r * 1103515245u + 12345u;
    a[i] = mk(r % 7, (r >> 8) % 5, (r >> 16) & 1);
    a[i].snubbed = ((r >> 20) & 3) == 0;
    a[i].unchoked = (r >> 24) & 1;
  }
  a[3].optimistic = true;
  memcpy(b, a, sizeof(a));
  struct choker_config cfg = {.slots = 5, .seeding = false};
  choker_decide(a, 12, &cfg, true, 4242);
  choker_decide(b, 12, &cfg, true, 4242);
  for (size_t i = 0; i < 12; i++) {
    ck_assert_int_eq(a[i].unchoked, b[i].unchoked);
    ck_assert_int_eq(a[i].optimistic, b[i].optimistic);
    if (!a[i].interested)
      ck_assert(!a[i].unchoked);
  }
  ck_assert_uint_le(count_unchoked(a, 12), 5);
  ck_assert_uint_le(count_optimistic(a, 12, NULL), 1);
}
END_TEST

Suite *choker_suite(void)
{
  Suite *s = suite_create("choker");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_slots_and_ranking_leech);
  tcase_add_test(tc, test_ranking_seed);
  tcase_add_test(tc, test_interested_only);
  tcase_add_test(tc, test_optimistic_kept_until_rotate);
  tcase_add_test(tc, test_rotation_covers_candidates);
  tcase_add_test(tc, test_optimistic_leaves);
  tcase_add_test(tc, test_optimistic_earns_regular);
  tcase_add_test(tc, test_no_flapping_on_ties);
  tcase_add_test(tc, test_snubbed_no_regular);
  tcase_add_test(tc, test_n_zero_and_one_slot);
  tcase_add_test(tc, test_fewer_interested_than_slots);
  tcase_add_test(tc, test_deterministic);
  suite_add_tcase(s, tc);
  return s;
}
