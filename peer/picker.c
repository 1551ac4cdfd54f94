/* picker.c -- block selection: random first pieces, rarest first, started pieces first, endgame. */
#include "peer/picker.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(PICKER_ENDGAME_MAX_DUP >= 1 && PICKER_ENDGAME_MAX_DUP <= 255,
               "requesters per block are counted in a uint8_t");
_Static_assert(PICKER_BLOCK_SIZE > 0, "block size");

/* Per-piece state byte: priority in the low two bits, then flags.  A piece is
 * a candidate for starting exactly when its byte is 1 or 2 (no flag set). */
#define ST_PRIO 0x03u
#define ST_HAVE 0x04u
#define ST_ACTIVE 0x08u

#define RANK_NORMAL 0x80000000u
#define AVAIL_MAX 0x7fffffffu

#define DEFAULT_MAX_ACTIVE 16u
#define MAX_ACTIVE_CAP 4096u  /* hard bound on partially downloaded pieces */
#define MAX_ACTIVE_BLOCKS (1u << 20) /* and on their block state (8 MiB), which
                                        lowers the bound for huge pieces */
#define SCAN_BATCH 32u        /* new pieces chosen by one rarest-first scan */

/* One block of a started piece: 8 bytes.  While not received, req[0..nreq)
 * are the peers asked for it; once received, nreq is 0 and req[0] is the
 * peer that sent it. */
struct pblock {
  picker_peer_t req[PICKER_ENDGAME_MAX_DUP];
  uint8_t nreq;
  uint8_t received;
};

/* A started piece: allocated when its first block is requested (or arrives),
 * freed when the piece is held or nothing about it is left pending. */
struct apiece {
  uint32_t piece;
  uint32_t nblocks;
  uint32_t nreceived;
  uint32_t nrequested;  /* blocks not received with nreq > 0 */
  uint32_t hint;        /* every block below this index is requested or received */
  struct pblock blk[];
};

struct picker {
  uint32_t num_pieces;
  uint32_t piece_length;
  uint32_t last_size;
  uint64_t total_length;
  uint32_t max_active;
  uint8_t *st;          /* [num_pieces] priority and flags */
  uint32_t *rank;       /* [num_pieces] rarest-first key, lower first: RANK_NORMAL
                           unless priority 2, plus the number of peers that
                           have the piece (saturating at AVAIL_MAX) */
  uint32_t *slot;       /* [num_pieces] index into act when ST_ACTIVE */
  struct apiece **act;  /* started pieces */
  uint32_t nact;
  uint32_t act_cap;
  uint32_t act_wanted;  /* started pieces with priority > 0 */
  uint32_t have_count;
  uint64_t have_bytes;
  uint32_t wanted_left; /* pieces with priority > 0 not held */
  uint32_t high_left;   /* pieces with priority 2 not held */
  uint64_t wanted_bytes_left;
  uint64_t *startable;  /* bit i % 64 of word i / 64 for piece i: not held,
                           not started, priority > 0 */
  bool sequential;      /* new pieces in index order (high priority first) */
};

static uint32_t piece_size(const struct picker *p, uint32_t piece)
{
  return piece + 1 == p->num_pieces ? p->last_size : p->piece_length;
}

static uint32_t blocks_for(uint32_t size)
{
  return size / PICKER_BLOCK_SIZE + (size % PICKER_BLOCK_SIZE != 0);
}

static uint32_t block_len(uint32_t size, uint32_t begin)
{
  uint32_t rest = size - begin;
  return rest < PICKER_BLOCK_SIZE ? rest : PICKER_BLOCK_SIZE;
}

static bool has_bit(const uint8_t *bits, uint32_t i)
{
  return (bits[i >> 3] >> (7 - (i & 7))) & 1;
}

static uint32_t xorshift(uint32_t *s)
{
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* Keeps the startable bit of a piece in step with its state byte. */
static void refresh(struct picker *p, uint32_t piece)
{
  uint64_t bit = 1ull << (piece & 63);
  if ((unsigned)p->st[piece] - 1u <= 1u)
    p->startable[piece >> 6] |= bit;
  else
    p->startable[piece >> 6] &= ~bit;
}

struct picker *picker_new(uint32_t num_pieces, uint32_t piece_length, uint64_t total_length)
{
  if (num_pieces == 0 || piece_length == 0 || total_length == 0)
    return NULL;
  /* num_pieces == ceil(total / piece_length); products fit in 64 bits. */
  if ((uint64_t)(num_pieces - 1) * piece_length >= total_length ||
      (uint64_t)num_pieces * piece_length < total_length)
    return NULL;
  struct picker *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->num_pieces = num_pieces;
  p->piece_length = piece_length;
  p->total_length = total_length;
  p->last_size = (uint32_t)(total_length - (uint64_t)(num_pieces - 1) * piece_length);
  p->st = malloc(num_pieces);
  p->rank = malloc((size_t)num_pieces * sizeof(*p->rank));
  p->slot = calloc(num_pieces, sizeof(*p->slot));
  p->startable = calloc(num_pieces / 64 + 1, sizeof(*p->startable));
  if (p->st == NULL || p->rank == NULL || p->slot == NULL ||
      p->startable == NULL) {
    picker_free(p);
    return NULL;
  }
  memset(p->st, 1, num_pieces);
  for (uint32_t i = 0; i < num_pieces; i++) {
    p->rank[i] = RANK_NORMAL;
    refresh(p, i);
  }
  p->wanted_left = num_pieces;
  p->wanted_bytes_left = total_length;
  picker_set_max_active(p, DEFAULT_MAX_ACTIVE);
  return p;
}

void picker_free(struct picker *p)
{
  if (p == NULL)
    return;
  for (uint32_t i = 0; i < p->nact; i++)
    free(p->act[i]);
  free(p->act);
  free(p->st);
  free(p->rank);
  free(p->slot);
  free(p->startable);
  free(p);
}

uint32_t picker_piece_size(const struct picker *p, uint32_t piece)
{
  if (p == NULL || piece >= p->num_pieces)
    return 0;
  return piece_size(p, piece);
}

uint32_t picker_blocks_in_piece(const struct picker *p, uint32_t piece)
{
  if (p == NULL || piece >= p->num_pieces)
    return 0;
  return blocks_for(piece_size(p, piece));
}

/* --- started pieces --- */

static struct apiece *active_of(const struct picker *p, uint32_t piece)
{
  return (p->st[piece] & ST_ACTIVE) ? p->act[p->slot[piece]] : NULL;
}

static uint32_t free_blocks(const struct apiece *a)
{
  return a->nblocks - a->nreceived - a->nrequested;
}

static struct apiece *activate(struct picker *p, uint32_t piece)
{
  if (p->nact == p->act_cap) {
    uint32_t cap = p->act_cap ? p->act_cap * 2 : 16;
    struct apiece **na = realloc(p->act, cap * sizeof(*na));
    if (na == NULL)
      return NULL;
    p->act = na;
    p->act_cap = cap;
  }
  uint32_t nb = blocks_for(piece_size(p, piece));
  struct apiece *a = calloc(1, sizeof(*a) + (size_t)nb * sizeof(a->blk[0]));
  if (a == NULL)
    return NULL;
  a->piece = piece;
  a->nblocks = nb;
  p->slot[piece] = p->nact;
  p->act[p->nact++] = a;
  p->st[piece] |= ST_ACTIVE;
  if (p->st[piece] & ST_PRIO)
    p->act_wanted++;
  refresh(p, piece);
  return a;
}

static void deactivate(struct picker *p, struct apiece *a)
{
  uint32_t piece = a->piece;
  uint32_t i = p->slot[piece];
  struct apiece *last = p->act[--p->nact];
  p->act[i] = last;
  p->slot[last->piece] = i;
  p->st[piece] &= (uint8_t)~ST_ACTIVE;
  if (p->st[piece] & ST_PRIO)
    p->act_wanted--;
  refresh(p, piece);
  free(a);
}

/* A started piece with nothing received and nothing requested is not
 * started any more. */
static void maybe_release(struct picker *p, struct apiece *a)
{
  if (a->nreceived == 0 && a->nrequested == 0)
    deactivate(p, a);
}

static bool requested_by(const struct pblock *b, picker_peer_t peer)
{
  for (unsigned j = 0; j < b->nreq; j++)
    if (b->req[j] == peer)
      return true;
  return false;
}

static void add_request(struct picker *p, struct apiece *a, uint32_t i, picker_peer_t peer,
                        struct picker_block *out, int *n)
{
  struct pblock *b = &a->blk[i];
  if (b->nreq == 0)
    a->nrequested++;
  b->req[b->nreq++] = peer;
  uint32_t begin = i * PICKER_BLOCK_SIZE;
  out[*n].piece = a->piece;
  out[*n].begin = begin;
  out[*n].length = block_len(piece_size(p, a->piece), begin);
  (*n)++;
}

/* Requests the free blocks of a, lowest first, until max. */
static void take_free(struct picker *p, struct apiece *a, picker_peer_t peer,
                      struct picker_block *out, int *n, int max)
{
  uint32_t i = a->hint;
  for (; i < a->nblocks && *n < max; i++) {
    const struct pblock *b = &a->blk[i];
    if (!b->received && b->nreq == 0)
      add_request(p, a, i, peer, out, n);
  }
  a->hint = i;
}

/* Is a (started, wanted, the peer has it, has free blocks) preferred to b?
 * Higher priority first, then fewest free blocks, then most received. */
static bool started_better(const struct picker *p, const struct apiece *a, const struct apiece *b)
{
  unsigned pa = p->st[a->piece] & ST_PRIO, pb = p->st[b->piece] & ST_PRIO;
  if (pa != pb)
    return pa > pb;
  uint32_t fa = free_blocks(a), fb = free_blocks(b);
  if (fa != fb)
    return fa < fb;
  return a->nreceived > b->nreceived;
}

static void pick_started(struct picker *p, const uint8_t *has, picker_peer_t peer,
                         struct picker_block *out, int *n, int max)
{
  while (*n < max) {
    struct apiece *best = NULL;
    for (uint32_t i = 0; i < p->nact; i++) {
      struct apiece *a = p->act[i];
      if ((p->st[a->piece] & ST_PRIO) == 0 || free_blocks(a) == 0 || !has_bit(has, a->piece))
        continue;
      if (best == NULL || started_better(p, a, best))
        best = a;
    }
    if (best == NULL)
      return;
    take_free(p, best, peer, out, n, max);
  }
}

/* --- new pieces --- */

/* Inserts piece i into cand[0..*c) (at most k), kept sorted by rank;
 * equal ranks keep scan order.  The caller checked that i ranks before the
 * last entry when the list is full. */
static void cand_insert(const struct picker *p, uint32_t *cand, uint32_t *c, uint32_t k, uint32_t i)
{
  uint32_t r = p->rank[i];
  uint32_t j = *c < k ? (*c)++ : k - 1;
  while (j > 0 && r < p->rank[cand[j - 1]]) {
    cand[j] = cand[j - 1];
    j--;
  }
  cand[j] = i;
}

/* Reverses the bit order inside each byte: a wire bitfield (piece 0 in the
 * high bit of byte 0) loaded little-endian becomes bit i = piece i. */
static uint64_t rev_in_bytes(uint64_t v)
{
  v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
  v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
  v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
  return v;
}

/* Word w of the pieces that are startable and that the peer has: bit b
 * stands for piece 64 * w + b. */
static uint64_t cand_word(const struct picker *p, const uint8_t *has, uint32_t w)
{
  size_t off = (size_t)w * 8, nbytes = bitfield_bytes(p->num_pieces);
  uint64_t v;
  if (off + 8 <= nbytes) {
    memcpy(&v, has + off, 8);
    v = le64toh(v);
  } else {
    v = 0;
    for (size_t j = 0; off + j < nbytes; j++)
      v |= (uint64_t)has[off + j] << (8 * j);
  }
  return rev_in_bytes(v) & p->startable[w];
}

/* Candidate bits of word w restricted to pieces in [lo, hi). */
static uint64_t cand_word_range(const struct picker *p, const uint8_t *has, uint32_t w,
                                uint32_t lo, uint32_t hi)
{
  uint64_t m = cand_word(p, has, w);
  uint64_t base = (uint64_t)w * 64;
  if (lo > base)
    m &= ~0ull << (lo - base);
  if (hi < base + 64)
    m &= (1ull << (hi - base)) - 1;
  return m;
}

/* Rarest-first scan of the pieces in [lo, hi) (lo < hi) into cand[0..*c)
 * (at most k).  Returns false when the scan stopped early: k candidates
 * found that no piece can beat. */
static bool scan_rarest(const struct picker *p, const uint8_t *has, uint32_t lo, uint32_t hi,
                        uint32_t *cand, uint32_t *c, uint32_t k)
{
  const uint32_t *rank = p->rank;
  /* A piece enters the list when it ranks below `bar` (the last entry once
   * the list is full).  `best`: top priority and only this peer has it;
   * nothing ranks lower once the caller counts the peer's own bitfield. */
  uint32_t best = (p->high_left > 0 ? 0 : RANK_NORMAL) | 1;
  uint32_t n = *c;
  uint32_t bar = n == k ? rank[cand[k - 1]] : UINT32_MAX;
  for (uint32_t w = lo >> 6; w <= (hi - 1) >> 6; w++) {
    uint64_t m = cand_word_range(p, has, w, lo, hi);
    uint32_t base = w * 64;
    for (; m != 0; m &= m - 1) {
      uint32_t i = base + (uint32_t)__builtin_ctzll(m);
      if (rank[i] >= bar)
        continue;
      cand_insert(p, cand, &n, k, i);
      if (n == k) {
        bar = rank[cand[k - 1]];
        if (bar <= best) {
          *c = n;
          return false;
        }
      }
    }
  }
  *c = n;
  return true;
}

/* First candidate at or after start (wrapping) of the highest priority the
 * peer offers; UINT32_MAX if none. */
static uint32_t scan_random(const struct picker *p, const uint8_t *has, uint32_t start)
{
  uint32_t found = UINT32_MAX;
  uint32_t ranges[2][2] = {{start, p->num_pieces}, {0, start}};
  for (int r = 0; r < 2; r++) {
    uint32_t lo = ranges[r][0], hi = ranges[r][1];
    if (lo >= hi)
      continue;
    for (uint32_t w = lo >> 6; w <= (hi - 1) >> 6; w++) {
      uint64_t m = cand_word_range(p, has, w, lo, hi);
      for (; m != 0; m &= m - 1) {
        uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(m);
        if (p->st[i] == 2 || p->high_left == 0)
          return i;
        if (found == UINT32_MAX)
          found = i;
      }
    }
  }
  return found;
}

static void pick_new(struct picker *p, const uint8_t *has, picker_peer_t peer,
                     struct picker_block *out, int *n, int max, uint32_t rnd)
{
  uint32_t rng = rnd ^ 0x9e3779b9u;
  if (rng == 0)
    rng = 1;
  uint32_t full = blocks_for(p->piece_length);
  while (*n < max && p->nact < p->max_active && p->wanted_left > p->act_wanted) {
    uint32_t cand[SCAN_BATCH];
    uint32_t c = 0;
    if (p->sequential) {
      uint32_t i = scan_random(p, has, 0);       /* the lowest-numbered one it has */
      if (i != UINT32_MAX)
        cand[c++] = i;
    } else if (p->have_count < PICKER_RANDOM_FIRST) {
      uint32_t i = scan_random(p, has, xorshift(&rng) % p->num_pieces);
      if (i != UINT32_MAX)
        cand[c++] = i;
    } else {
      uint32_t need = (uint32_t)(max - *n) / full + 1;
      uint32_t k = p->max_active - p->nact;
      if (k > need)
        k = need;
      if (k > SCAN_BATCH)
        k = SCAN_BATCH;
      uint32_t start = (rnd ^ xorshift(&rng)) % p->num_pieces;
      if (scan_rarest(p, has, start, p->num_pieces, cand, &c, k) && start > 0)
        scan_rarest(p, has, 0, start, cand, &c, k);
    }
    if (c == 0)
      return;
    for (uint32_t j = 0; j < c && *n < max; j++) {
      struct apiece *a = activate(p, cand[j]);
      if (a == NULL)
        return;
      take_free(p, a, peer, out, n, max);
    }
  }
}

/* --- endgame --- */

static bool in_endgame(const struct picker *p)
{
  if (p->wanted_left == 0 || p->wanted_left != p->act_wanted)
    return false;
  for (uint32_t i = 0; i < p->nact; i++) {
    const struct apiece *a = p->act[i];
    if ((p->st[a->piece] & ST_PRIO) && free_blocks(a) != 0)
      return false;
  }
  return true;
}

/* Duplicates requests for blocks not yet received, least-requested first. */
static void pick_endgame(struct picker *p, const uint8_t *has, picker_peer_t peer,
                         struct picker_block *out, int *n, int max)
{
  for (unsigned level = 1; level < PICKER_ENDGAME_MAX_DUP && *n < max; level++) {
    for (uint32_t i = 0; i < p->nact && *n < max; i++) {
      struct apiece *a = p->act[i];
      if ((p->st[a->piece] & ST_PRIO) == 0 || a->nreceived == a->nblocks ||
          !has_bit(has, a->piece))
        continue;
      for (uint32_t b = 0; b < a->nblocks && *n < max; b++) {
        const struct pblock *blk = &a->blk[b];
        if (blk->received || blk->nreq != level || requested_by(blk, peer))
          continue;
        add_request(p, a, b, peer, out, n);
      }
    }
  }
}

void picker_set_sequential(struct picker *p, bool on)
{
  if (p != NULL)
    p->sequential = on;
}

int picker_pick(struct picker *p, const struct bitfield *peer_has, picker_peer_t peer,
                struct picker_block *out, int max, uint32_t rnd)
{
  if (p == NULL || peer_has == NULL || peer_has->bits == NULL || out == NULL || max <= 0 ||
      peer_has->nbits != p->num_pieces || p->wanted_left == 0)
    return 0;
  int n = 0;
  pick_started(p, peer_has->bits, peer, out, &n, max);
  if (n < max)
    pick_new(p, peer_has->bits, peer, out, &n, max, rnd);
  if (n < max && in_endgame(p))
    pick_endgame(p, peer_has->bits, peer, out, &n, max);
  return n;
}

/* --- requests and arrivals --- */

/* The started piece and block index for piece/begin, or NULL when the
 * arguments are invalid or the piece is not started. */
static struct apiece *find_block(const struct picker *p, uint32_t piece, uint32_t begin,
                                 uint32_t *idx)
{
  if (p == NULL || piece >= p->num_pieces || begin % PICKER_BLOCK_SIZE != 0 ||
      begin >= piece_size(p, piece))
    return NULL;
  *idx = begin / PICKER_BLOCK_SIZE;
  return active_of(p, piece);
}

void picker_unrequest(struct picker *p, uint32_t piece, uint32_t begin, picker_peer_t peer)
{
  uint32_t i;
  struct apiece *a = find_block(p, piece, begin, &i);
  if (a == NULL)
    return;
  struct pblock *b = &a->blk[i];
  if (b->received)
    return;
  for (unsigned j = 0; j < b->nreq; j++) {
    if (b->req[j] != peer)
      continue;
    b->req[j] = b->req[--b->nreq];
    if (b->nreq == 0) {
      a->nrequested--;
      if (i < a->hint)
        a->hint = i;
      maybe_release(p, a);
    }
    return;
  }
}

int picker_received(struct picker *p, uint32_t piece, uint32_t begin, picker_peer_t peer,
                    picker_peer_t *others, int max_others, int *nothers)
{
  if (nothers != NULL)
    *nothers = 0;
  if (p == NULL || piece >= p->num_pieces || begin % PICKER_BLOCK_SIZE != 0 ||
      begin >= piece_size(p, piece) || (p->st[piece] & ST_HAVE))
    return -1;
  struct apiece *a = active_of(p, piece);
  if (a == NULL) {
    /* Not requested (or given up): take it while within the memory bound. */
    if ((p->st[piece] & ST_PRIO) == 0 || p->nact >= p->max_active)
      return -1;
    a = activate(p, piece);
    if (a == NULL)
      return -1;
  }
  struct pblock *b = &a->blk[begin / PICKER_BLOCK_SIZE];
  if (b->received)
    return -1;
  int k = 0;
  for (unsigned j = 0; j < b->nreq; j++)
    if (b->req[j] != peer && others != NULL && k < max_others)
      others[k++] = b->req[j];
  if (b->nreq != 0)
    a->nrequested--;
  b->nreq = 0;
  b->received = 1;
  b->req[0] = peer;
  a->nreceived++;
  if (nothers != NULL)
    *nothers = k;
  return a->nreceived == a->nblocks ? 1 : 0;
}

/* Forgets the received blocks of a; their senders go to out (distinct, at
 * most max).  Outstanding requests stay. */
static int forget_received(struct picker *p, struct apiece *a, picker_peer_t *out, int max)
{
  int n = 0;
  for (uint32_t i = 0; i < a->nblocks; i++) {
    struct pblock *b = &a->blk[i];
    if (!b->received)
      continue;
    picker_peer_t s = b->req[0];
    bool dup = false;
    for (int j = 0; j < n && !dup; j++)
      dup = out[j] == s;
    if (out != NULL && n < max && !dup)
      out[n++] = s;
    b->received = 0;
    b->nreq = 0;
  }
  a->nreceived = 0;
  a->hint = 0;
  maybe_release(p, a);
  return n;
}

int picker_block_senders(const struct picker *p, uint32_t piece, picker_peer_t *out, uint32_t max)
{
  if (p == NULL || piece >= p->num_pieces)
    return -1;
  const struct apiece *a = active_of(p, piece);
  if (a == NULL || a->nreceived != a->nblocks || a->nblocks > max)
    return -1;
  for (uint32_t i = 0; i < a->nblocks; i++)
    out[i] = a->blk[i].req[0];
  return (int)a->nblocks;
}

int picker_piece_failed(struct picker *p, uint32_t piece, picker_peer_t *senders, int max)
{
  if (p == NULL || piece >= p->num_pieces)
    return 0;
  struct apiece *a = active_of(p, piece);
  if (a == NULL)
    return 0;
  return forget_received(p, a, senders, max);
}

void picker_piece_reset(struct picker *p, uint32_t piece)
{
  if (p == NULL || piece >= p->num_pieces)
    return;
  struct apiece *a = active_of(p, piece);
  if (a != NULL)
    forget_received(p, a, NULL, 0);
}

/* --- holding, priorities, availability --- */

void picker_have(struct picker *p, uint32_t piece)
{
  if (p == NULL || piece >= p->num_pieces || (p->st[piece] & ST_HAVE))
    return;
  struct apiece *a = active_of(p, piece);
  if (a != NULL)
    deactivate(p, a);
  uint32_t size = piece_size(p, piece);
  unsigned prio = p->st[piece] & ST_PRIO;
  p->st[piece] |= ST_HAVE;
  refresh(p, piece);
  p->have_count++;
  p->have_bytes += size;
  if (prio != 0) {
    p->wanted_left--;
    p->wanted_bytes_left -= size;
  }
  if (prio == 2)
    p->high_left--;
}

void picker_unhave(struct picker *p, uint32_t piece)
{
  if (p == NULL || piece >= p->num_pieces || !(p->st[piece] & ST_HAVE))
    return;
  uint32_t size = piece_size(p, piece);
  unsigned prio = p->st[piece] & ST_PRIO;
  p->st[piece] &= (uint8_t)~ST_HAVE;
  refresh(p, piece);
  p->have_count--;
  p->have_bytes -= size;
  if (prio != 0) {
    p->wanted_left++;
    p->wanted_bytes_left += size;
  }
  if (prio == 2)
    p->high_left++;
}

void picker_piece_passed(struct picker *p, uint32_t piece)
{
  picker_have(p, piece);
}

bool picker_has(const struct picker *p, uint32_t piece)
{
  return p != NULL && piece < p->num_pieces && (p->st[piece] & ST_HAVE);
}

void picker_set_priority(struct picker *p, uint32_t piece, uint8_t prio)
{
  if (p == NULL || piece >= p->num_pieces || prio > 2)
    return;
  uint8_t s = p->st[piece];
  unsigned old = s & ST_PRIO;
  if (old == prio)
    return;
  p->st[piece] = (uint8_t)((s & ~ST_PRIO) | prio);
  p->rank[piece] = (prio == 2 ? 0 : RANK_NORMAL) | (p->rank[piece] & AVAIL_MAX);
  refresh(p, piece);
  if (s & ST_HAVE)
    return;
  uint32_t size = piece_size(p, piece);
  if (old == 0) {
    p->wanted_left++;
    p->wanted_bytes_left += size;
    if (s & ST_ACTIVE)
      p->act_wanted++;
  } else if (prio == 0) {
    p->wanted_left--;
    p->wanted_bytes_left -= size;
    if (s & ST_ACTIVE)
      p->act_wanted--;
  }
  if (old == 2)
    p->high_left--;
  if (prio == 2)
    p->high_left++;
}

bool picker_done(const struct picker *p)
{
  return p != NULL && p->wanted_left == 0;
}

void picker_add_bitfield(struct picker *p, const struct bitfield *peer_has)
{
  if (p == NULL || peer_has == NULL || peer_has->bits == NULL || peer_has->nbits != p->num_pieces)
    return;
  size_t nbytes = bitfield_bytes(p->num_pieces);
  for (size_t j = 0; j < nbytes; j++) {
    uint8_t byte = peer_has->bits[j];
    for (uint32_t i = (uint32_t)j * 8; byte != 0; i++, byte = (uint8_t)(byte << 1))
      if ((byte & 0x80u) && i < p->num_pieces && (p->rank[i] & AVAIL_MAX) != AVAIL_MAX)
        p->rank[i]++;
  }
}

void picker_remove_bitfield(struct picker *p, const struct bitfield *peer_has)
{
  if (p == NULL || peer_has == NULL || peer_has->bits == NULL || peer_has->nbits != p->num_pieces)
    return;
  size_t nbytes = bitfield_bytes(p->num_pieces);
  for (size_t j = 0; j < nbytes; j++) {
    uint8_t byte = peer_has->bits[j];
    for (uint32_t i = (uint32_t)j * 8; byte != 0; i++, byte = (uint8_t)(byte << 1))
      if ((byte & 0x80u) && i < p->num_pieces && (p->rank[i] & AVAIL_MAX) != 0)
        p->rank[i]--;
  }
}

void picker_add_have(struct picker *p, uint32_t piece)
{
  if (p == NULL || piece >= p->num_pieces || (p->rank[piece] & AVAIL_MAX) == AVAIL_MAX)
    return;
  p->rank[piece]++;
}

void picker_set_max_active(struct picker *p, uint32_t n)
{
  if (p == NULL)
    return;
  uint32_t cap = MAX_ACTIVE_BLOCKS / blocks_for(p->piece_length);
  if (cap > MAX_ACTIVE_CAP)
    cap = MAX_ACTIVE_CAP;
  if (n > cap)
    n = cap;
  if (n == 0)
    n = 1;
  p->max_active = n;
}

/* --- figures --- */

bool picker_in_endgame(const struct picker *p)
{
  return p != NULL && in_endgame(p);
}

uint32_t picker_active_count(const struct picker *p)
{
  return p != NULL ? p->nact : 0;
}

uint32_t picker_have_count(const struct picker *p)
{
  return p != NULL ? p->have_count : 0;
}

uint64_t picker_have_bytes(const struct picker *p)
{
  return p != NULL ? p->have_bytes : 0;
}

uint64_t picker_wanted_bytes_left(const struct picker *p)
{
  return p != NULL ? p->wanted_bytes_left : 0;
}
