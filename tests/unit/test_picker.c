/* test_picker.c -- unit tests for the piece picker, with a randomized swarm simulation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "peer/picker.h"

#define BS PICKER_BLOCK_SIZE

static void bf_full(struct bitfield *bf, uint32_t n)
{
  ck_assert_int_eq(bitfield_init(bf, n), 0);
  bitfield_set_all(bf);
}

static void bf_empty(struct bitfield *bf, uint32_t n)
{
  ck_assert_int_eq(bitfield_init(bf, n), 0);
}

/* A torrent of n pieces of `blocks` full blocks each. */
static struct picker *mkp(uint32_t n, uint32_t blocks)
{
  struct picker *p = picker_new(n, blocks * BS, (uint64_t)n * blocks * BS);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* mkp, and one peer that has every piece: `all` (for the caller to free). */
static struct picker *mkp_full(uint32_t n, uint32_t blocks, struct bitfield *all)
{
  struct picker *p = mkp(n, blocks);
  bf_full(all, n);
  picker_add_bitfield(p, all);
  return p;
}

static uint32_t lcg(uint32_t *s)
{
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

START_TEST(test_new_invalid)
{
  ck_assert_ptr_null(picker_new(0, BS, BS));
  ck_assert_ptr_null(picker_new(1, 0, BS));
  ck_assert_ptr_null(picker_new(1, BS, 0));
  ck_assert_ptr_null(picker_new(2, BS, BS));          /* one piece's worth */
  ck_assert_ptr_null(picker_new(1, BS, BS + 1));      /* needs two pieces */
  ck_assert_ptr_null(picker_new(3, 100, 201 + 100));  /* needs four */
  struct picker *p = picker_new(3, 100, 201);
  ck_assert_ptr_nonnull(p);
  picker_free(p);
  picker_free(NULL);
}
END_TEST

START_TEST(test_block_sizes)
{
  /* 40000-byte pieces: 16384 + 16384 + 7232; last piece 20000: 16384 + 3616 */
  struct picker *p = picker_new(3, 40000, 100000);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(picker_piece_size(p, 0), 40000);
  ck_assert_uint_eq(picker_piece_size(p, 2), 20000);
  ck_assert_uint_eq(picker_piece_size(p, 3), 0);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 0), 3);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 2), 2);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 3), 0);

  struct bitfield bf;
  bf_full(&bf, 3);
  struct picker_block out[16];
  int n = picker_pick(p, &bf, 1, out, 16, 0);
  ck_assert_int_eq(n, 8);
  uint64_t sum[3] = {0, 0, 0};
  for (int i = 0; i < n; i++) {
    ck_assert_uint_lt(out[i].piece, 3);
    ck_assert_uint_eq(out[i].begin % BS, 0);
    uint32_t size = picker_piece_size(p, out[i].piece);
    uint32_t want = size - out[i].begin < BS ? size - out[i].begin : BS;
    ck_assert_uint_eq(out[i].length, want);
    sum[out[i].piece] += out[i].length;
    if (out[i].piece == 2 && out[i].begin == BS)
      ck_assert_uint_eq(out[i].length, 3616);
    if (out[i].piece == 0 && out[i].begin == 2 * BS)
      ck_assert_uint_eq(out[i].length, 7232);
  }
  ck_assert_uint_eq(sum[0], 40000);
  ck_assert_uint_eq(sum[1], 40000);
  ck_assert_uint_eq(sum[2], 20000);
  bitfield_free(&bf);
  picker_free(p);

  /* pieces shorter than a block, odd last piece */
  p = picker_new(2, 10000, 15000);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 0), 1);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 1), 1);
  bf_full(&bf, 2);
  n = picker_pick(p, &bf, 1, out, 16, 3);
  ck_assert_int_eq(n, 2);
  for (int i = 0; i < n; i++) {
    ck_assert_uint_eq(out[i].begin, 0);
    ck_assert_uint_eq(out[i].length, out[i].piece == 0 ? 10000 : 5000);
  }
  bitfield_free(&bf);
  picker_free(p);

  /* a single exact block */
  p = picker_new(1, BS, BS);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 0), 1);
  picker_free(p);
}
END_TEST

START_TEST(test_rarest_first)
{
  /* 12 one-block pieces; 0..3 held so random-first is over */
  struct picker *p = mkp(12, 1);
  for (uint32_t i = 0; i < 4; i++)
    picker_have(p, i);
  picker_set_max_active(p, 100);
  /* availability of piece i (4..11): a permutation of 1..8 */
  static const uint32_t av[12] = {0, 0, 0, 0, 5, 2, 8, 1, 7, 3, 6, 4};
  struct bitfield peers[8];
  for (uint32_t k = 0; k < 8; k++) {
    bf_empty(&peers[k], 12);
    for (uint32_t i = 4; i < 12; i++)
      if (k < av[i])
        bitfield_set(&peers[k], i);
    picker_add_bitfield(p, &peers[k]);
  }
  struct bitfield all;
  bf_full(&all, 12);
  struct picker_block out[4];
  uint32_t expect = 1;
  for (int round = 0; round < 8; round++) {
    ck_assert_int_eq(picker_pick(p, &all, 50, out, 1, (uint32_t)round * 977u), 1);
    ck_assert_uint_eq(av[out[0].piece], expect);
    expect++;
  }
  ck_assert_int_eq(picker_pick(p, &all, 50, out, 1, 0), 0);
  for (uint32_t k = 0; k < 8; k++)
    bitfield_free(&peers[k]);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_rarest_many_per_call)
{
  /* one call starting many pieces (several scans): availability order kept */
  struct picker *p = mkp(204, 1);
  for (uint32_t i = 200; i < 204; i++)
    picker_have(p, i);
  picker_set_max_active(p, 1000);
  struct bitfield bf[7];
  for (uint32_t k = 0; k < 7; k++) {
    bf_empty(&bf[k], 204);
    for (uint32_t i = 0; i < 200; i++)
      if (k <= (i * 37) % 7)
        bitfield_set(&bf[k], i);
    picker_add_bitfield(p, &bf[k]);
  }
  struct bitfield all;
  bf_full(&all, 204);
  struct picker_block out[150];
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 150, 77), 150);
  bool seen[200] = {false};
  for (int i = 0; i < 150; i++) {
    ck_assert_uint_lt(out[i].piece, 200);
    ck_assert(!seen[out[i].piece]);
    seen[out[i].piece] = true;
    if (i > 0)
      ck_assert_uint_le((out[i - 1].piece * 37) % 7, (out[i].piece * 37) % 7);
  }
  ck_assert_uint_eq(picker_active_count(p), 150);
  for (uint32_t k = 0; k < 7; k++)
    bitfield_free(&bf[k]);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_rarest_only_what_peer_has)
{
  struct picker *p = mkp(10, 2);
  for (uint32_t i = 0; i < 4; i++)
    picker_have(p, i);
  struct bitfield a, b;
  bf_empty(&a, 10);
  bf_empty(&b, 10);
  bitfield_set(&a, 5);   /* piece 5: avail 1 */
  bitfield_set_all(&b);  /* everything else: avail 1, piece 5: 2 */
  picker_add_bitfield(p, &a);
  picker_add_bitfield(p, &b);
  struct bitfield c;
  bf_empty(&c, 10);
  bitfield_set(&c, 5);
  bitfield_set(&c, 8);
  bitfield_set(&c, 2); /* held */
  struct picker_block out[8];
  int n = picker_pick(p, &c, 3, out, 8, 1);
  ck_assert_int_eq(n, 4);
  /* piece 8 (avail 1) before piece 5 (avail 2) */
  ck_assert_uint_eq(out[0].piece, 8);
  ck_assert_uint_eq(out[1].piece, 8);
  ck_assert_uint_eq(out[2].piece, 5);
  ck_assert_uint_eq(out[3].piece, 5);
  /* a bitfield of the wrong size is refused everywhere */
  struct bitfield wrong;
  bf_full(&wrong, 11);
  ck_assert_int_eq(picker_pick(p, &wrong, 4, out, 8, 1), 0);
  picker_add_bitfield(p, &wrong);     /* ignored */
  picker_remove_bitfield(p, &wrong);  /* ignored */
  picker_add_have(p, 10);             /* out of range: ignored */
  picker_add_have(p, UINT32_MAX);
  ck_assert_int_eq(picker_pick(p, &c, 3, out, 0, 1), 0);
  ck_assert_int_eq(picker_pick(p, &c, 3, out, -5, 1), 0);
  ck_assert_int_eq(picker_pick(p, NULL, 3, out, 5, 1), 0);
  bitfield_free(&wrong);
  bitfield_free(&a);
  bitfield_free(&b);
  bitfield_free(&c);
  picker_free(p);
}
END_TEST

START_TEST(test_rarest_ties_random)
{
  /* 64 equally rare pieces: different rnd values spread the first pick */
  bool seen[64] = {false};
  int distinct = 0;
  for (uint32_t r = 0; r < 200; r++) {
    struct picker *p = mkp(68, 1);
    for (uint32_t i = 64; i < 68; i++)
      picker_have(p, i);
    struct bitfield all;
    bf_full(&all, 68);
    picker_add_bitfield(p, &all);
    struct picker_block out[1];
    ck_assert_int_eq(picker_pick(p, &all, 1, out, 1, r * 2654435761u), 1);
    ck_assert_uint_lt(out[0].piece, 64);
    if (!seen[out[0].piece]) {
      seen[out[0].piece] = true;
      distinct++;
    }
    bitfield_free(&all);
    picker_free(p);
  }
  ck_assert_int_ge(distinct, 32);
}
END_TEST

/* Sequential mode: pieces start in index order, skipping what the peer
 * lacks and what we hold; high priority still goes first. */
START_TEST(test_sequential)
{
  struct bitfield all;
  struct picker *p = mkp_full(40, 1, &all);
  picker_set_sequential(p, true);
  picker_have(p, 0);
  struct picker_block out[8];
  int n = picker_pick(p, &all, 1, out, 3, 12345);
  ck_assert_int_eq(n, 3);
  ck_assert_uint_eq(out[0].piece, 1);
  ck_assert_uint_eq(out[1].piece, 2);
  ck_assert_uint_eq(out[2].piece, 3);
  struct bitfield some;
  bf_empty(&some, 40);
  bitfield_set(&some, 9);
  bitfield_set(&some, 30);
  bitfield_set(&some, 7);
  picker_add_bitfield(p, &some);
  n = picker_pick(p, &some, 2, out, 1, 999);
  ck_assert_int_eq(n, 1);
  ck_assert_uint_eq(out[0].piece, 7);
  picker_set_priority(p, 30, 2);
  n = picker_pick(p, &some, 2, out, 1, 999);
  ck_assert_int_eq(n, 1);
  ck_assert_uint_eq(out[0].piece, 30);
  /* off again: no longer in order (random-first over 36 candidates) */
  picker_set_sequential(p, false);
  bool out_of_order = false;
  for (uint32_t seed = 1; seed < 50 && !out_of_order; seed++) {
    n = picker_pick(p, &all, (picker_peer_t)(10 + seed), out, 1, seed * 7919u);
    ck_assert_int_eq(n, 1);
    out_of_order = out[0].piece != 4 + seed - 1;
  }
  ck_assert(out_of_order);
  bitfield_free(&all);
  bitfield_free(&some);
  picker_free(p);
}
END_TEST

/* A held piece given back is wanted and picked again; counts follow. */
START_TEST(test_unhave)
{
  struct bitfield all;
  struct picker *p = mkp_full(4, 1, &all);
  for (uint32_t i = 0; i < 4; i++)
    picker_have(p, i);
  ck_assert(picker_done(p));
  ck_assert_uint_eq(picker_have_count(p), 4);
  picker_unhave(p, 2);
  picker_unhave(p, 2);                                /* twice: no change */
  ck_assert(!picker_has(p, 2));
  ck_assert(!picker_done(p));
  ck_assert_uint_eq(picker_have_count(p), 3);
  ck_assert_uint_eq(picker_have_bytes(p), 3 * BS);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), BS);
  struct picker_block out[4];
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 4, 7), 1);
  ck_assert_uint_eq(out[0].piece, 2);
  /* a piece not wanted (priority 0) given back stays out of the count */
  picker_set_priority(p, 3, 0);
  picker_unhave(p, 3);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), BS);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_random_first)
{
  /* piece 0 is rarest, but the first pieces are random */
  int not_rarest = 0;
  bool seen[40] = {false};
  int distinct = 0;
  for (uint32_t r = 0; r < 100; r++) {
    struct picker *p = mkp(40, 1);
    struct bitfield all, some;
    bf_full(&all, 40);
    bf_full(&some, 40);
    bitfield_clear(&some, 0);
    picker_add_bitfield(p, &all);
    for (int k = 0; k < 5; k++)
      picker_add_bitfield(p, &some);
    struct bitfield peer;
    bf_full(&peer, 40);
    bitfield_clear(&peer, 39); /* never offered: the peer lacks it */
    struct picker_block out[1];
    ck_assert_int_eq(picker_pick(p, &peer, 1, out, 1, r * 2246822519u + 7), 1);
    ck_assert_uint_ne(out[0].piece, 39);
    if (out[0].piece != 0)
      not_rarest++;
    if (!seen[out[0].piece]) {
      seen[out[0].piece] = true;
      distinct++;
    }
    /* once PICKER_RANDOM_FIRST pieces are held, rarest first */
    for (uint32_t i = 10; i < 10 + PICKER_RANDOM_FIRST; i++)
      picker_have(p, i);
    picker_unrequest(p, out[0].piece, 0, 1);
    ck_assert_uint_eq(picker_active_count(p), 0);
    ck_assert_int_eq(picker_pick(p, &peer, 2, out, 1, r * 2246822519u + 7), 1);
    ck_assert_uint_eq(out[0].piece, 0);
    bitfield_free(&all);
    bitfield_free(&some);
    bitfield_free(&peer);
    picker_free(p);
  }
  ck_assert_int_ge(not_rarest, 80);
  ck_assert_int_ge(distinct, 15);
}
END_TEST

START_TEST(test_started_first)
{
  struct picker *p = mkp(20, 4);
  for (uint32_t i = 16; i < 20; i++)
    picker_have(p, i);
  struct bitfield all;
  bf_full(&all, 20);
  picker_add_bitfield(p, &all);
  struct picker_block out[8];
  /* peer 1 starts a piece and takes half of it */
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 2, 11), 2);
  uint32_t x = out[0].piece;
  ck_assert_uint_eq(out[1].piece, x);
  ck_assert_uint_eq(out[0].begin, 0);
  ck_assert_uint_eq(out[1].begin, BS);
  /* peer 2 gets the rest of that piece first, then a new one */
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 3, 999), 3);
  ck_assert_uint_eq(out[0].piece, x);
  ck_assert_uint_eq(out[0].begin, 2 * BS);
  ck_assert_uint_eq(out[1].piece, x);
  ck_assert_uint_eq(out[1].begin, 3 * BS);
  uint32_t y = out[2].piece;
  ck_assert_uint_ne(y, x);
  ck_assert_uint_eq(out[2].begin, 0);
  ck_assert_uint_eq(picker_active_count(p), 2);

  /* peer 3 takes the rest of y, then all of a third piece z; once y has
   * three blocks received, freeing one block of each: y (more complete) first */
  ck_assert_int_eq(picker_pick(p, &all, 3, out, 3, 5), 3); /* rest of y */
  for (int i = 0; i < 3; i++)
    ck_assert_uint_eq(out[i].piece, y);
  ck_assert_int_eq(picker_pick(p, &all, 3, out, 4, 5), 4);
  uint32_t z = out[0].piece;
  ck_assert_uint_ne(z, x);
  ck_assert_uint_ne(z, y);
  int nothers;
  /* y: three blocks received, z: none received */
  ck_assert_int_eq(picker_received(p, y, 0, 2, NULL, 0, &nothers), 0);
  ck_assert_int_eq(picker_received(p, y, BS, 3, NULL, 0, &nothers), 0);
  ck_assert_int_eq(picker_received(p, y, 2 * BS, 3, NULL, 0, &nothers), 0);
  picker_unrequest(p, z, BS, 3);
  picker_unrequest(p, y, 3 * BS, 3);
  ck_assert_int_eq(picker_pick(p, &all, 4, out, 1, 5), 1);
  ck_assert_uint_eq(out[0].piece, y);
  ck_assert_uint_eq(out[0].begin, 3 * BS);
  ck_assert_int_eq(picker_pick(p, &all, 4, out, 1, 5), 1);
  ck_assert_uint_eq(out[0].piece, z);
  ck_assert_uint_eq(out[0].begin, BS);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_priorities)
{
  struct bitfield all;
  struct picker *p = mkp_full(30, 2, &all);
  picker_add_bitfield(p, &all);
  for (uint32_t i = 0; i < 10; i++)
    picker_have(p, i);
  for (uint32_t i = 10; i < 20; i++)
    picker_set_priority(p, i, 0);
  picker_set_priority(p, 25, 2);
  picker_set_priority(p, 26, 3); /* invalid: ignored */
  /* piece 21 is rarer, but 25 has high priority */
  struct bitfield one;
  bf_empty(&one, 30);
  bitfield_set(&one, 21);
  picker_remove_bitfield(p, &one);
  picker_set_max_active(p, 100);
  struct picker_block out[64];
  int n = picker_pick(p, &all, 1, out, 2, 0);
  ck_assert_int_eq(n, 2);
  ck_assert_uint_eq(out[0].piece, 25);
  ck_assert_uint_eq(out[1].piece, 25);
  n = picker_pick(p, &all, 1, out, 2, 0);
  ck_assert_int_eq(n, 2);
  ck_assert_uint_eq(out[0].piece, 21);
  /* everything else: never held or priority-0 pieces */
  n = picker_pick(p, &all, 1, out, 64, 0);
  ck_assert_int_eq(n, 2 * 8);
  for (int i = 0; i < n; i++) {
    ck_assert_uint_ge(out[i].piece, 20);
    ck_assert_uint_ne(out[i].piece, 25);
    ck_assert_uint_ne(out[i].piece, 21);
  }
  /* every wanted block is requested now: another peer gets copies */
  ck_assert(picker_in_endgame(p));
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 64, 0), 2 * 10);
  bitfield_free(&all);
  bitfield_free(&one);
  picker_free(p);
}
END_TEST

START_TEST(test_priorities_random_and_started)
{
  /* random-first still takes high priority first */
  for (uint32_t r = 0; r < 50; r++) {
    struct picker *p = mkp(30, 2);
    picker_set_priority(p, 17, 2);
    picker_set_priority(p, 3, 2);
    struct bitfield all;
    bf_full(&all, 30);
    bitfield_clear(&all, 3);
    struct picker_block out[4];
    ck_assert_int_eq(picker_pick(p, &all, 1, out, 1, r * 2654435761u + 1), 1);
    ck_assert_uint_eq(out[0].piece, 17);
    bitfield_free(&all);
    picker_free(p);
  }
  /* among started pieces, high priority first even if less complete */
  struct picker *p = mkp(10, 4);
  struct bitfield all;
  bf_full(&all, 10);
  struct bitfield b;
  bf_empty(&b, 10);
  bitfield_set(&b, 2);
  struct picker_block out[8];
  ck_assert_int_eq(picker_pick(p, &b, 1, out, 1, 0), 1);
  ck_assert_uint_eq(out[0].piece, 2);
  bitfield_clear(&b, 2);
  bitfield_set(&b, 6);
  ck_assert_int_eq(picker_pick(p, &b, 1, out, 3, 0), 3);
  ck_assert_uint_eq(out[0].piece, 6);
  /* piece 6 has 1 free block, piece 2 has 3; piece 2 becomes high */
  picker_set_priority(p, 2, 2);
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 1, 0), 1);
  ck_assert_uint_eq(out[0].piece, 2);
  picker_set_priority(p, 2, 1);
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 1, 0), 1);
  ck_assert_uint_eq(out[0].piece, 6);
  /* a started piece set to priority 0 is not picked from any more */
  picker_set_priority(p, 2, 0);
  ck_assert_int_eq(picker_pick(p, &b, 3, out, 8, 0), 0);
  ck_assert_uint_eq(picker_active_count(p), 2);
  bitfield_clear(&b, 6);
  bitfield_set(&b, 2);
  ck_assert_int_eq(picker_pick(p, &b, 3, out, 8, 0), 0);
  bitfield_free(&all);
  bitfield_free(&b);
  picker_free(p);
}
END_TEST

START_TEST(test_unrequest)
{
  struct picker *p = mkp(1, 3);
  struct bitfield all;
  bf_full(&all, 1);
  struct picker_block out[4];
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 4, 0), 3);
  ck_assert_uint_eq(picker_active_count(p), 1);
  /* wrong peer, bad begin, bad piece: ignored */
  picker_unrequest(p, 0, BS, 2);
  picker_unrequest(p, 0, BS + 1, 1);
  picker_unrequest(p, 0, 3 * BS, 1);
  picker_unrequest(p, 1, 0, 1);
  picker_unrequest(p, UINT32_MAX, UINT32_MAX, 1);
  ck_assert(picker_in_endgame(p));
  picker_unrequest(p, 0, BS, 1);
  ck_assert(!picker_in_endgame(p));
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 1, 0), 1);
  ck_assert_uint_eq(out[0].begin, BS);
  ck_assert_uint_eq(out[0].length, BS);
  /* give back everything: the piece is no longer started */
  picker_unrequest(p, 0, 0, 1);
  picker_unrequest(p, 0, 2 * BS, 1);
  picker_unrequest(p, 0, BS, 2);
  ck_assert_uint_eq(picker_active_count(p), 0);
  ck_assert_int_eq(picker_pick(p, &all, 3, out, 4, 0), 3);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_received)
{
  struct picker *p = picker_new(2, 2 * BS, 3 * BS + 100);
  ck_assert_ptr_nonnull(p);
  struct bitfield all;
  bf_full(&all, 2);
  struct picker_block out[8];
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 8, 0), 4);
  picker_peer_t others[4];
  int no = 77;
  /* malformed */
  ck_assert_int_eq(picker_received(p, 2, 0, 1, others, 4, &no), -1);
  ck_assert_int_eq(no, 0);
  ck_assert_int_eq(picker_received(p, UINT32_MAX, 0, 1, others, 4, &no), -1);
  ck_assert_int_eq(picker_received(p, 0, 1, 1, others, 4, &no), -1);
  ck_assert_int_eq(picker_received(p, 0, 2 * BS, 1, others, 4, &no), -1);
  ck_assert_int_eq(picker_received(p, 1, 2 * BS, 1, others, 4, &no), -1);
  ck_assert_int_eq(picker_received(p, 1, UINT32_MAX - (UINT32_MAX % BS), 1, others, 4, &no), -1);
  /* accepted, then duplicates refused */
  ck_assert_int_eq(picker_received(p, 0, 0, 1, others, 4, &no), 0);
  ck_assert_int_eq(no, 0);
  ck_assert_int_eq(picker_received(p, 0, 0, 1, others, 4, &no), -1);
  ck_assert_int_eq(picker_received(p, 0, 0, 2, others, 4, &no), -1);
  ck_assert_int_eq(picker_received(p, 0, BS, 1, others, 4, NULL), 1);
  ck_assert_int_eq(picker_received(p, 0, BS, 1, others, 4, &no), -1);
  picker_piece_passed(p, 0);
  ck_assert(picker_has(p, 0));
  ck_assert(!picker_has(p, 1));
  ck_assert(!picker_has(p, 2));
  ck_assert_int_eq(picker_received(p, 0, 0, 1, others, 4, &no), -1); /* held */
  /* the short last piece: 16384 + 100 */
  ck_assert_int_eq(picker_received(p, 1, BS, 1, others, 4, &no), 0);
  ck_assert_int_eq(picker_received(p, 1, 0, 3, others, 4, &no), 1); /* not the requester: fine */
  ck_assert_int_eq(no, 1);
  ck_assert_uint_eq(others[0], 1); /* peer 1 still had it requested */
  picker_piece_passed(p, 1);
  ck_assert(picker_done(p));
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 8, 0), 0);
  ck_assert_uint_eq(picker_active_count(p), 0);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_received_unrequested)
{
  struct picker *p = mkp(10, 2);
  picker_set_max_active(p, 2);
  picker_set_priority(p, 9, 0);
  int no;
  /* nobody asked for it: taken while within the active bound */
  ck_assert_int_eq(picker_received(p, 3, 0, 7, NULL, 0, &no), 0);
  ck_assert_uint_eq(picker_active_count(p), 1);
  ck_assert_int_eq(picker_received(p, 9, 0, 7, NULL, 0, &no), -1); /* priority 0 */
  ck_assert_int_eq(picker_received(p, 4, BS, 7, NULL, 0, &no), 0);
  ck_assert_uint_eq(picker_active_count(p), 2);
  ck_assert_int_eq(picker_received(p, 5, 0, 7, NULL, 0, &no), -1); /* bound reached */
  ck_assert_uint_eq(picker_active_count(p), 2);
  ck_assert_int_eq(picker_received(p, 3, BS, 8, NULL, 0, &no), 1);
  picker_peer_t s[4];
  ck_assert_int_eq(picker_piece_failed(p, 3, s, 4), 2);
  ck_assert_uint_eq(picker_active_count(p), 1);
  picker_free(p);
}
END_TEST

static bool contains(const picker_peer_t *a, int n, picker_peer_t v)
{
  for (int i = 0; i < n; i++)
    if (a[i] == v)
      return true;
  return false;
}

START_TEST(test_endgame)
{
  struct picker *p = mkp(1, 2);
  struct bitfield all;
  bf_full(&all, 1);
  struct picker_block out[8];
  ck_assert(!picker_in_endgame(p));
  ck_assert_int_eq(picker_pick(p, &all, 10, out, 8, 0), 2);
  ck_assert(picker_in_endgame(p));
  ck_assert_int_eq(picker_pick(p, &all, 10, out, 8, 0), 0); /* never the same peer twice */
  ck_assert_int_eq(picker_pick(p, &all, 11, out, 8, 0), 2);
  ck_assert_int_eq(picker_pick(p, &all, 12, out, 1, 0), 1);
  ck_assert_uint_eq(out[0].begin, 0);
  ck_assert_int_eq(picker_pick(p, &all, 12, out, 8, 0), 1);
  ck_assert_uint_eq(out[0].begin, BS);
  ck_assert_uint_eq(out[0].length, BS);
  ck_assert_int_eq(picker_pick(p, &all, 13, out, 8, 0), 0); /* PICKER_ENDGAME_MAX_DUP == 3 */
  struct bitfield none;
  bf_empty(&none, 1);
  ck_assert_int_eq(picker_pick(p, &none, 14, out, 8, 0), 0);

  picker_peer_t others[4];
  int no;
  ck_assert_int_eq(picker_received(p, 0, 0, 11, others, 4, &no), 0);
  ck_assert_int_eq(no, 2);
  ck_assert(contains(others, 2, 10));
  ck_assert(contains(others, 2, 12));
  /* those requests are gone: unrequest is a no-op, and no peer gets block 0 */
  picker_unrequest(p, 0, 0, 10);
  ck_assert_int_eq(picker_pick(p, &all, 13, out, 8, 0), 0);
  /* block 1 has three requesters; one gives up, a fourth peer may ask */
  picker_unrequest(p, 0, BS, 10);
  ck_assert(picker_in_endgame(p));
  ck_assert_int_eq(picker_pick(p, &all, 13, out, 8, 0), 1);
  ck_assert_uint_eq(out[0].begin, BS);
  /* only room for one other in the output: still all dropped */
  ck_assert_int_eq(picker_received(p, 0, BS, 13, others, 1, &no), 1);
  ck_assert_int_eq(no, 1);
  ck_assert(others[0] == 11 || others[0] == 12);
  picker_unrequest(p, 0, BS, 11);
  picker_unrequest(p, 0, BS, 12);
  /* smart ban: senders are 11 and 13 */
  picker_peer_t s[4];
  ck_assert_int_eq(picker_piece_failed(p, 0, s, 4), 2);
  ck_assert(contains(s, 2, 11));
  ck_assert(contains(s, 2, 13));
  ck_assert(!picker_in_endgame(p));
  ck_assert_uint_eq(picker_active_count(p), 0);
  ck_assert_int_eq(picker_pick(p, &all, 10, out, 8, 0), 2);
  bitfield_free(&all);
  bitfield_free(&none);
  picker_free(p);
}
END_TEST

START_TEST(test_endgame_needs_all_requested)
{
  /* endgame only once every wanted block is requested; unwanted pieces do
   * not hold it back */
  struct picker *p = mkp(3, 2);
  picker_set_priority(p, 2, 0);
  struct bitfield all, only0;
  bf_full(&all, 3);
  bf_empty(&only0, 3);
  bitfield_set(&only0, 0);
  struct picker_block out[8];
  ck_assert_int_eq(picker_pick(p, &only0, 1, out, 8, 0), 2);
  ck_assert(!picker_in_endgame(p));
  ck_assert_int_eq(picker_pick(p, &only0, 2, out, 8, 0), 0);
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 1, 0), 1);
  ck_assert_uint_eq(out[0].piece, 1);
  ck_assert(!picker_in_endgame(p));
  /* the last free block, then duplicates in the same call */
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 8, 0), 3);
  ck_assert_uint_eq(out[0].piece, 1);
  ck_assert_uint_eq(out[0].begin, BS);
  ck_assert_uint_eq(out[1].piece, 0);
  ck_assert_uint_eq(out[2].piece, 0);
  ck_assert(picker_in_endgame(p));
  bitfield_free(&all);
  bitfield_free(&only0);
  picker_free(p);
}
END_TEST

START_TEST(test_failed_and_reset)
{
  struct picker *p = mkp(2, 4);
  struct bitfield all;
  bf_full(&all, 2);
  struct picker_block out[8];
  ck_assert_int_eq(picker_pick(p, &all, 1, out, 4, 0), 4);
  uint32_t x = out[0].piece;
  struct bitfield bx;
  bf_empty(&bx, 2);
  bitfield_set(&bx, x);
  int no;
  ck_assert_int_eq(picker_received(p, x, 0, 5, NULL, 0, &no), 0);
  ck_assert_int_eq(picker_received(p, x, BS, 6, NULL, 0, &no), 0);
  ck_assert_int_eq(picker_received(p, x, 2 * BS, 5, NULL, 0, &no), 0);
  ck_assert_int_eq(picker_received(p, x, 3 * BS, 9, NULL, 0, &no), 1);
  ck_assert_uint_eq(picker_have_bytes(p), 0);
  picker_peer_t s[8];
  ck_assert_int_eq(picker_piece_failed(p, x, s, 2), 2); /* capped by max */
  /* already forgotten: nothing more to report */
  ck_assert_int_eq(picker_piece_failed(p, x, s, 8), 0);
  ck_assert_uint_eq(picker_active_count(p), 0);
  ck_assert_uint_eq(picker_have_count(p), 0);
  ck_assert(!picker_has(p, x));
  /* downloaded again, from other peers */
  ck_assert_int_eq(picker_pick(p, &bx, 2, out, 4, 0), 4);
  ck_assert_uint_eq(out[0].piece, x);
  for (uint32_t b = 0; b < 4; b++)
    ck_assert_int_eq(picker_received(p, x, b * BS, (picker_peer_t)(b % 2 ? 5 : 9), NULL, 0, &no),
                     b == 3 ? 1 : 0);
  ck_assert_int_eq(picker_piece_failed(p, x, s, 8), 2);
  ck_assert(contains(s, 2, 5));
  ck_assert(contains(s, 2, 9));
  ck_assert_int_eq(picker_piece_failed(p, 7, s, 8), 0);
  ck_assert_int_eq(picker_piece_failed(p, x, NULL, 8), 0);

  /* reset: received blocks forgotten, outstanding requests kept */
  ck_assert_int_eq(picker_pick(p, &bx, 3, out, 4, 0), 4);
  ck_assert_uint_eq(out[0].piece, x);
  ck_assert_int_eq(picker_received(p, x, 0, 3, NULL, 0, &no), 0);
  ck_assert_int_eq(picker_received(p, x, BS, 3, NULL, 0, &no), 0);
  picker_piece_reset(p, x);
  picker_piece_reset(p, 99);
  ck_assert_uint_eq(picker_active_count(p), 1);
  ck_assert_int_eq(picker_received(p, x, 0, 3, NULL, 0, &no), 0); /* wanted again */
  picker_unrequest(p, x, 2 * BS, 3);
  /* blocks 1 and 2 of x, the other piece, then (endgame) block 3 of x again */
  ck_assert_int_eq(picker_pick(p, &all, 4, out, 8, 0), 7);
  ck_assert_uint_eq(out[0].piece, x);
  ck_assert_uint_eq(out[0].begin, BS);
  ck_assert_uint_eq(out[1].piece, x);
  ck_assert_uint_eq(out[1].begin, 2 * BS);
  for (int i = 2; i < 6; i++)
    ck_assert_uint_ne(out[i].piece, x);
  ck_assert_uint_eq(out[6].piece, x);
  ck_assert_uint_eq(out[6].begin, 3 * BS);
  ck_assert(picker_in_endgame(p));
  /* a piece held in between is simply dropped */
  picker_have(p, x);
  ck_assert_uint_eq(picker_active_count(p), 1);
  ck_assert_int_eq(picker_received(p, x, 3 * BS, 3, NULL, 0, &no), -1);
  ck_assert_int_eq(picker_piece_failed(p, x, s, 8), 0);
  ck_assert(picker_has(p, x));
  bitfield_free(&bx);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

START_TEST(test_max_active)
{
  struct bitfield all;
  struct picker *p = mkp_full(100, 4, &all);
  struct picker_block out[512];
  /* default bound: 16 pieces */
  int n = picker_pick(p, &all, 1, out, 512, 0);
  ck_assert_int_eq(n, 16 * 4);
  ck_assert_uint_eq(picker_active_count(p), 16);
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 512, 0), 0);
  ck_assert(!picker_in_endgame(p));
  picker_free(p);

  p = mkp(100, 4);
  picker_set_max_active(p, 3);
  n = picker_pick(p, &all, 1, out, 512, 0);
  ck_assert_int_eq(n, 12);
  bool piece_seen[100] = {false};
  int distinct = 0;
  for (int i = 0; i < n; i++) {
    if (!piece_seen[out[i].piece]) {
      piece_seen[out[i].piece] = true;
      distinct++;
    }
  }
  ck_assert_int_eq(distinct, 3);
  ck_assert_uint_eq(picker_active_count(p), 3);
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 512, 0), 0);
  /* finishing one frees a slot */
  uint32_t x = out[0].piece;
  int no;
  for (uint32_t b = 0; b < 4; b++)
    picker_received(p, x, b * BS, 1, NULL, 0, &no);
  ck_assert_uint_eq(picker_active_count(p), 3); /* complete, not yet held */
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 512, 0), 0);
  picker_piece_passed(p, x);
  ck_assert_uint_eq(picker_active_count(p), 2);
  ck_assert_int_eq(picker_pick(p, &all, 2, out, 512, 0), 4);
  ck_assert_uint_eq(picker_active_count(p), 3);
  /* 0 means 1 */
  picker_set_max_active(p, 0);
  ck_assert_int_eq(picker_pick(p, &all, 3, out, 512, 0), 0);
  /* a large bound: every other piece (96 * 4 blocks), then endgame copies
   * of the 3 started pieces' blocks (12) */
  picker_set_max_active(p, 1000000);
  ck_assert_int_eq(picker_pick(p, &all, 3, out, 512, 0), 96 * 4 + 12);
  ck_assert_uint_eq(picker_active_count(p), 99);
  ck_assert(picker_in_endgame(p));
  bitfield_free(&all);
  picker_free(p);

  /* huge pieces (2 GiB: 131072 blocks each) lower the bound to 8 so that
   * block state stays within 8 MiB */
  p = picker_new(20, 1u << 31, 20ull << 31);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(picker_blocks_in_piece(p, 19), 131072);
  picker_set_max_active(p, 16);
  for (uint32_t k = 0; k < 20; k++) {
    struct bitfield one;
    bf_empty(&one, 20);
    bitfield_set(&one, k);
    ck_assert_int_eq(picker_pick(p, &one, (picker_peer_t)k, out, 1, k), k < 8 ? 1 : 0);
    if (k < 8) {
      ck_assert_uint_eq(out[0].piece, k);
      ck_assert_uint_eq(out[0].length, BS);
    }
    bitfield_free(&one);
  }
  ck_assert_uint_eq(picker_active_count(p), 8);
  picker_free(p);
}
END_TEST

START_TEST(test_counters)
{
  /* 5 pieces of 40000 bytes, last 10000: total 170000 */
  struct picker *p = picker_new(5, 40000, 170000);
  ck_assert_ptr_nonnull(p);
  ck_assert(!picker_done(p));
  ck_assert_uint_eq(picker_have_bytes(p), 0);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 170000);
  picker_set_priority(p, 1, 0);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 130000);
  picker_set_priority(p, 4, 2);
  picker_set_priority(p, 4, 2);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 130000);
  picker_have(p, 4);
  picker_have(p, 4);
  picker_have(p, 5); /* out of range */
  ck_assert_uint_eq(picker_have_count(p), 1);
  ck_assert_uint_eq(picker_have_bytes(p), 10000);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 120000);
  picker_have(p, 0);
  picker_piece_passed(p, 2);
  ck_assert(!picker_done(p));
  picker_have(p, 3);
  ck_assert(picker_done(p));
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 0);
  ck_assert_uint_eq(picker_have_bytes(p), 130000);
  ck_assert_uint_eq(picker_have_count(p), 4);
  /* wanting the skipped piece again */
  picker_set_priority(p, 1, 1);
  ck_assert(!picker_done(p));
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 40000);
  picker_set_priority(p, 1, 0);
  ck_assert(picker_done(p));
  /* priority of a held piece changes nothing */
  picker_set_priority(p, 0, 0);
  picker_set_priority(p, 0, 2);
  ck_assert(picker_done(p));
  ck_assert_uint_eq(picker_have_bytes(p), 130000);
  picker_have(p, 1);
  ck_assert_uint_eq(picker_have_bytes(p), 170000);
  ck_assert_uint_eq(picker_wanted_bytes_left(p), 0);
  picker_free(p);
}
END_TEST

START_TEST(test_scale)
{
  /* 100,000 pieces of 16 blocks, 200 peers with random bitfields */
  const uint32_t np = 100000, npeers = 200;
  struct picker *p = mkp(np, 16);
  struct bitfield *peers = calloc(npeers, sizeof(*peers));
  ck_assert_ptr_nonnull(peers);
  uint32_t s = 12345;
  for (uint32_t k = 0; k < npeers; k++) {
    bf_empty(&peers[k], np);
    for (uint32_t i = 0; i < np; i++)
      if (lcg(&s) % 4 != 0)
        bitfield_set(&peers[k], i);
    picker_add_bitfield(p, &peers[k]);
  }
  for (uint32_t i = 0; i < PICKER_RANDOM_FIRST; i++)
    picker_have(p, np - 1 - i);
  struct picker_block out[64];
  uint32_t completed = 0;
  for (uint32_t call = 0; call < 400; call++) {
    picker_peer_t peer = (picker_peer_t)(call % npeers);
    int n = picker_pick(p, &peers[peer], peer, out, 64, lcg(&s));
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n; i++) {
      ck_assert(bitfield_get(&peers[peer], out[i].piece));
      int no;
      int r = picker_received(p, out[i].piece, out[i].begin, peer, NULL, 0, &no);
      ck_assert_int_ge(r, 0);
      if (r == 1) {
        picker_piece_passed(p, out[i].piece);
        completed++;
      }
    }
    ck_assert_uint_le(picker_active_count(p), 16);
  }
  ck_assert_uint_eq(picker_have_count(p), completed + PICKER_RANDOM_FIRST);
  ck_assert_uint_ge(completed, 400 * 64 / 16 - 16);
  for (uint32_t k = 0; k < npeers; k++) {
    picker_remove_bitfield(p, &peers[k]);
    bitfield_free(&peers[k]);
  }
  free(peers);
  picker_free(p);
}
END_TEST

/* --- randomized swarm simulation --- */

#define SIM_PEERS 6
#define SIM_MAXP 40
#define SIM_MAXB 8
#define SIM_MAXOUT 512

struct sim_req {
  uint32_t piece, block;
};

struct sim {
  struct picker *p;
  uint32_t np;
  uint32_t plen;
  uint64_t total;
  uint8_t prio[SIM_MAXP];
  bool held[SIM_MAXP];
  uint32_t fails[SIM_MAXP];
  /* per block */
  uint8_t reqmask[SIM_MAXP][SIM_MAXB]; /* bit k: peer k asked */
  bool received[SIM_MAXP][SIM_MAXB];
  uint8_t sender[SIM_MAXP][SIM_MAXB];
  uint32_t recv_count[SIM_MAXP][SIM_MAXB]; /* arrivals accepted since last reset */
  struct bitfield has[SIM_PEERS];
  struct sim_req out[SIM_PEERS][SIM_MAXOUT];
  uint32_t nout[SIM_PEERS];
};

static uint32_t sim_nblocks(const struct sim *m, uint32_t piece)
{
  uint32_t size = piece + 1 == m->np ? (uint32_t)(m->total - (uint64_t)(m->np - 1) * m->plen)
                                     : m->plen;
  return (size + BS - 1) / BS;
}

static void sim_drop_out(struct sim *m, uint32_t k, uint32_t piece, uint32_t block)
{
  for (uint32_t j = 0; j < m->nout[k]; j++) {
    if (m->out[k][j].piece == piece && m->out[k][j].block == block) {
      m->out[k][j] = m->out[k][--m->nout[k]];
      return;
    }
  }
  ck_abort_msg("request not found in the model");
}

static int popcount8(uint8_t v)
{
  return __builtin_popcount(v);
}

static void sim_cover(struct sim *m, uint32_t k)
{
  for (uint32_t i = 0; i < m->np; i++) {
    bool any = false;
    for (uint32_t q = 0; q < SIM_PEERS; q++)
      any = any || bitfield_get(&m->has[q], i);
    if (!any)
      bitfield_set(&m->has[k], i);
  }
}

static void sim_random_bf(struct sim *m, uint32_t k, uint32_t *s)
{
  bitfield_clear_all(&m->has[k]);
  uint32_t density = lcg(s) % 4; /* 0: a seed */
  for (uint32_t i = 0; i < m->np; i++)
    if (density == 0 || lcg(s) % 4 < density)
      bitfield_set(&m->has[k], i);
}

static void sim_check_counts(struct sim *m)
{
  uint32_t have = 0;
  uint64_t left = 0;
  for (uint32_t i = 0; i < m->np; i++) {
    if (m->held[i])
      have++;
    else if (m->prio[i] > 0)
      left += picker_piece_size(m->p, i);
  }
  ck_assert_uint_eq(picker_have_count(m->p), have);
  ck_assert_uint_eq(picker_wanted_bytes_left(m->p), left);
  ck_assert_int_eq(picker_done(m->p), left == 0);
}

static void sim_run(uint32_t seed)
{
  static struct sim m;
  memset(&m, 0, sizeof(m));
  uint32_t s = seed;
  m.np = 1 + lcg(&s) % SIM_MAXP;
  static const uint32_t plens[] = {BS, 2 * BS, 5000, 3 * BS + 777, 8 * BS};
  m.plen = plens[lcg(&s) % 5];
  m.total = (uint64_t)(m.np - 1) * m.plen + 1 + lcg(&s) % m.plen;
  m.p = picker_new(m.np, m.plen, m.total);
  ck_assert_ptr_nonnull(m.p);
  uint32_t max_active = 1 + lcg(&s) % 8;
  picker_set_max_active(m.p, max_active);
  for (uint32_t i = 0; i < m.np; i++) {
    uint32_t r = lcg(&s) % 10;
    m.prio[i] = r == 0 ? 0 : r < 3 ? 2 : 1;
    picker_set_priority(m.p, i, m.prio[i]);
    if (lcg(&s) % 8 == 0) {
      m.held[i] = true;
      picker_have(m.p, i);
    }
  }
  for (uint32_t k = 0; k < SIM_PEERS; k++) {
    ck_assert_int_eq(bitfield_init(&m.has[k], m.np), 0);
    sim_random_bf(&m, k, &s);
  }
  sim_cover(&m, 0);
  for (uint32_t k = 0; k < SIM_PEERS; k++)
    picker_add_bitfield(m.p, &m.has[k]);
  sim_check_counts(&m);

  uint32_t steps = 0;
  while (!picker_done(m.p)) {
    ck_assert_uint_lt(++steps, 200000);
    uint32_t k = lcg(&s) % SIM_PEERS;
    uint32_t act = lcg(&s) % 100;
    if (act < 40) {
      /* pick */
      struct picker_block blocks[16];
      int max = 1 + (int)(lcg(&s) % 16);
      if (m.nout[k] + (uint32_t)max > SIM_MAXOUT)
        continue;
      int n = picker_pick(m.p, &m.has[k], (picker_peer_t)k, blocks, max, lcg(&s));
      ck_assert_int_ge(n, 0);
      ck_assert_int_le(n, max);
      bool dup = false;
      for (int i = 0; i < n; i++) {
        uint32_t pc = blocks[i].piece;
        ck_assert_uint_lt(pc, m.np);
        ck_assert(!m.held[pc]);
        ck_assert_uint_gt(m.prio[pc], 0);
        ck_assert(bitfield_get(&m.has[k], pc));
        ck_assert_uint_eq(blocks[i].begin % BS, 0);
        uint32_t b = blocks[i].begin / BS;
        ck_assert_uint_lt(b, sim_nblocks(&m, pc));
        uint32_t size = picker_piece_size(m.p, pc);
        ck_assert_uint_eq(blocks[i].length,
                          size - blocks[i].begin < BS ? size - blocks[i].begin : BS);
        ck_assert(!m.received[pc][b]);
        ck_assert(!(m.reqmask[pc][b] & (1u << k)));       /* never twice per peer */
        if (m.reqmask[pc][b] != 0)
          dup = true;
        m.reqmask[pc][b] |= (uint8_t)(1u << k);
        ck_assert_int_le(popcount8(m.reqmask[pc][b]), PICKER_ENDGAME_MAX_DUP);
        m.out[k][m.nout[k]].piece = pc;
        m.out[k][m.nout[k]].block = b;
        m.nout[k]++;
      }
      if (dup)
        ck_assert(picker_in_endgame(m.p));
      ck_assert_uint_le(picker_active_count(m.p), max_active);
    } else if (act < 85) {
      /* an outstanding block arrives */
      if (m.nout[k] == 0)
        continue;
      struct sim_req rq = m.out[k][lcg(&s) % m.nout[k]];
      uint32_t pc = rq.piece, b = rq.block;
      picker_peer_t others[8];
      int no = -1;
      int r = picker_received(m.p, pc, b * BS, (picker_peer_t)k, others, 8, &no);
      ck_assert(!m.received[pc][b]); /* requests are dropped on arrival */
      ck_assert_int_ge(r, 0);
      /* others == the other requesters */
      uint8_t expect = (uint8_t)(m.reqmask[pc][b] & ~(1u << k));
      ck_assert_int_eq(no, popcount8(expect));
      for (int j = 0; j < no; j++) {
        ck_assert_uint_lt(others[j], SIM_PEERS);
        ck_assert(expect & (1u << others[j]));
        expect &= (uint8_t)~(1u << others[j]);
        sim_drop_out(&m, others[j], pc, b);
      }
      sim_drop_out(&m, k, pc, b);
      m.reqmask[pc][b] = 0;
      m.received[pc][b] = true;
      m.sender[pc][b] = (uint8_t)k;
      m.recv_count[pc][b]++;
      uint32_t nb = sim_nblocks(&m, pc), got = 0;
      for (uint32_t j = 0; j < nb; j++)
        got += m.received[pc][j];
      ck_assert_int_eq(r, got == nb ? 1 : 0);
      if (r == 1) {
        if (m.fails[pc] < 2 && lcg(&s) % 5 == 0) {
          m.fails[pc]++;
          picker_peer_t snd[SIM_PEERS + 2];
          int ns = picker_piece_failed(m.p, pc, snd, SIM_PEERS + 2);
          uint8_t want = 0;
          for (uint32_t j = 0; j < nb; j++)
            want |= (uint8_t)(1u << m.sender[pc][j]);
          ck_assert_int_eq(ns, popcount8(want));
          for (int j = 0; j < ns; j++) {
            ck_assert_uint_lt(snd[j], SIM_PEERS);
            ck_assert(want & (1u << snd[j]));
            want &= (uint8_t)~(1u << snd[j]);
          }
          for (uint32_t j = 0; j < nb; j++) {
            m.received[pc][j] = false;
            m.recv_count[pc][j] = 0;
          }
        } else {
          for (uint32_t j = 0; j < nb; j++)
            ck_assert_uint_eq(m.recv_count[pc][j], 1);
          picker_piece_passed(m.p, pc);
          m.held[pc] = true;
          ck_assert(picker_has(m.p, pc));
        }
      } else {
        /* a duplicate arrival is refused */
        ck_assert_int_eq(picker_received(m.p, pc, b * BS, (picker_peer_t)((k + 1) % SIM_PEERS),
                                         others, 8, &no), -1);
      }
    } else if (act < 95) {
      /* a request is given up */
      if (m.nout[k] == 0)
        continue;
      struct sim_req rq = m.out[k][lcg(&s) % m.nout[k]];
      picker_unrequest(m.p, rq.piece, rq.block * BS, (picker_peer_t)k);
      m.reqmask[rq.piece][rq.block] &= (uint8_t)~(1u << k);
      sim_drop_out(&m, k, rq.piece, rq.block);
    } else if (act < 98) {
      /* the peer leaves and a new one takes its id */
      while (m.nout[k] > 0) {
        struct sim_req rq = m.out[k][m.nout[k] - 1];
        picker_unrequest(m.p, rq.piece, rq.block * BS, (picker_peer_t)k);
        m.reqmask[rq.piece][rq.block] &= (uint8_t)~(1u << k);
        m.nout[k]--;
      }
      picker_remove_bitfield(m.p, &m.has[k]);
      sim_random_bf(&m, k, &s);
      sim_cover(&m, k);
      picker_add_bitfield(m.p, &m.has[k]);
    } else {
      /* the caller drops a partial piece */
      uint32_t pc = lcg(&s) % m.np;
      if (m.held[pc])
        continue;
      picker_piece_reset(m.p, pc);
      for (uint32_t j = 0; j < sim_nblocks(&m, pc); j++) {
        m.received[pc][j] = false;
        m.recv_count[pc][j] = 0;
      }
    }
    sim_check_counts(&m);
  }
  for (uint32_t i = 0; i < m.np; i++)
    ck_assert(m.held[i] || m.prio[i] == 0);
  ck_assert_uint_eq(picker_active_count(m.p), 0);
  for (uint32_t k = 0; k < SIM_PEERS; k++)
    bitfield_free(&m.has[k]);
  picker_free(m.p);
}

START_TEST(test_simulation)
{
  for (uint32_t seed = 1; seed <= 60; seed++)
    sim_run(seed * 7919u);
}
END_TEST

/* Who sent each block of a complete piece, for telling an honest sender from
 * a bad one after a failed hash check. */
START_TEST(test_block_senders)
{
  struct bitfield all;
  struct picker *p = mkp_full(2, 4, &all);
  struct picker_block b[8];
  picker_peer_t who[8];
  int n = picker_pick(p, &all, 7, b, 2, 1);
  ck_assert_int_eq(n, 2);
  uint32_t piece = b[0].piece;
  ck_assert_uint_eq(b[1].piece, piece);
  int m = picker_pick(p, &all, 9, b + 2, 2, 2);
  ck_assert_int_eq(m, 2);
  ck_assert_uint_eq(b[2].piece, piece);
  ck_assert_int_eq(picker_block_senders(p, piece, who, 8), -1);   /* not complete yet */
  int others;
  for (int i = 0; i < 4; i++)
    picker_received(p, piece, b[i].begin, i < 2 ? 7 : 9, NULL, 0, &others);
  ck_assert_int_eq(picker_block_senders(p, piece, who, 3), -1);   /* too small */
  ck_assert_int_eq(picker_block_senders(p, piece, who, 8), 4);
  for (int i = 0; i < 4; i++) {
    uint32_t blk = b[i].begin / BS;
    ck_assert_uint_eq(who[blk], i < 2 ? 7 : 9);
  }
  ck_assert_int_eq(picker_block_senders(p, 1 - piece, who, 8), -1);
  ck_assert_int_eq(picker_block_senders(p, 5, who, 8), -1);
  bitfield_free(&all);
  picker_free(p);
}
END_TEST

Suite *picker_suite(void)
{
  Suite *s = suite_create("picker");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_new_invalid);
  tcase_add_test(tc, test_block_senders);
  tcase_add_test(tc, test_block_sizes);
  tcase_add_test(tc, test_rarest_first);
  tcase_add_test(tc, test_rarest_many_per_call);
  tcase_add_test(tc, test_rarest_only_what_peer_has);
  tcase_add_test(tc, test_rarest_ties_random);
  tcase_add_test(tc, test_random_first);
  tcase_add_test(tc, test_sequential);
  tcase_add_test(tc, test_unhave);
  tcase_add_test(tc, test_started_first);
  tcase_add_test(tc, test_priorities);
  tcase_add_test(tc, test_priorities_random_and_started);
  tcase_add_test(tc, test_unrequest);
  tcase_add_test(tc, test_received);
  tcase_add_test(tc, test_received_unrequested);
  tcase_add_test(tc, test_endgame);
  tcase_add_test(tc, test_endgame_needs_all_requested);
  tcase_add_test(tc, test_failed_and_reset);
  tcase_add_test(tc, test_max_active);
  tcase_add_test(tc, test_counters);
  suite_add_tcase(s, tc);
  TCase *big = tcase_create("scale");
  tcase_set_timeout(big, 60);
  tcase_add_test(big, test_scale);
  tcase_add_test(big, test_simulation);
  suite_add_tcase(s, big);
  return s;
}
