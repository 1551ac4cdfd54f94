/* choker.c -- upload slot decisions: tit-for-tat regular slots plus one rotating optimistic unchoke. */
#include "peer/choker.h"

/* The ranking is a strict total order: rate (down_rate while leeching,
 * up_rate while seeding) high first, then peers unchoked now first (so equal
 * rates do not flap), then lower index first. */
static uint64_t rate_of(const struct choker_peer *c, bool seeding)
{
  return seeding ? c->up_rate : c->down_rate;
}

/* On equal rates: holders of a regular slot now, then the optimistic peer. */
static int incumbency(const struct choker_peer *c)
{
  return c->unchoked ? (c->optimistic ? 1 : 2) : 0;
}

static bool ranks_before(const struct choker_peer *a, size_t ia, const struct choker_peer *b,
                         size_t ib, bool seeding)
{
  uint64_t ra = rate_of(a, seeding), rb = rate_of(b, seeding);
  if (ra != rb)
    return ra > rb;
  int ca = incumbency(a), cb = incumbency(b);
  if (ca != cb)
    return ca > cb;
  return ia < ib;
}

static bool regular_eligible(const struct choker_peer *c, bool seeding)
{
  return c->interested && (seeding || !c->snubbed);
}

/* The regular slots go to the eligible peers ranking at or before `last`
 * (the worst one admitted); `last` is a copy of that peer's input. */
struct cutoff {
  bool any;
  size_t idx;
  struct choker_peer peer;
  bool seeding;
};

static bool is_regular(const struct cutoff *cut, const struct choker_peer *c, size_t i)
{
  if (!cut->any || !regular_eligible(c, cut->seeding))
    return false;
  return i == cut->idx || ranks_before(c, i, &cut->peer, cut->idx, cut->seeding);
}

void choker_decide(struct choker_peer *peers, size_t n, const struct choker_config *cfg,
                   bool rotate, uint32_t rnd)
{
  if (peers == NULL || n == 0)
    return;
  unsigned slots = cfg != NULL ? cfg->slots : CHOKER_DEFAULT_SLOTS;
  bool seeding = cfg != NULL && cfg->seeding;
  if (slots == 0)
    slots = 1;
  size_t regular = slots - 1;

  /* Select the `regular` best one at a time without scratch memory: each
   * round takes the best eligible peer ranking after the previous one.
   * Everything up to the final loop reads only the input flags. */
  struct cutoff cut = {.any = false, .idx = 0, .seeding = seeding};
  for (size_t taken = 0; taken < regular; taken++) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
      if (!regular_eligible(&peers[i], seeding))
        continue;
      if (cut.any && !ranks_before(&cut.peer, cut.idx, &peers[i], i, seeding))
        continue;
      if (best == SIZE_MAX || ranks_before(&peers[i], i, &peers[best], best, seeding))
        best = i;
    }
    if (best == SIZE_MAX)
      break;
    cut.any = true;
    cut.idx = best;
    cut.peer = peers[best];
  }

  /* Keep the current optimistic peer unless told to rotate, or it is no
   * longer interested, or it earned a regular slot. */
  size_t old = SIZE_MAX;
  for (size_t i = 0; i < n; i++) {
    if (peers[i].optimistic) {
      old = i;
      break;
    }
  }
  bool old_ok = old != SIZE_MAX && peers[old].interested && !is_regular(&cut, &peers[old], old);
  size_t opt = SIZE_MAX;
  if (old_ok && !rotate) {
    opt = old;
  } else {
    /* Choose at random among interested peers without a regular slot,
     * preferring those choked now; the old optimistic peer only when there
     * is nobody else. */
    size_t nchoked = 0, nother = 0;
    for (size_t i = 0; i < n; i++) {
      if (!peers[i].interested || i == old || is_regular(&cut, &peers[i], i))
        continue;
      if (peers[i].unchoked)
        nother++;
      else
        nchoked++;
    }
    bool want_choked = nchoked > 0;
    size_t m = want_choked ? nchoked : nother;
    if (m > 0) {
      size_t pick = rnd % m;
      for (size_t i = 0; i < n; i++) {
        if (!peers[i].interested || i == old || is_regular(&cut, &peers[i], i) ||
            peers[i].unchoked == want_choked)
          continue;
        if (pick-- == 0) {
          opt = i;
          break;
        }
      }
    } else if (old_ok) {
      opt = old;
    }
  }

  /* Write the decision; is_regular(i) reads only peer i's own input (and
   * the copy in cut), so writing in order is safe. */
  for (size_t i = 0; i < n; i++) {
    bool reg = is_regular(&cut, &peers[i], i);
    peers[i].optimistic = i == opt;
    peers[i].unchoked = reg || i == opt;
  }
}
