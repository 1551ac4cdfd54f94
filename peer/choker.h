/* choker.h -- who gets our upload slots: tit-for-tat with a rotating optimistic
 * unchoke while downloading, fastest-upload-first while seeding.  Pure. */
#ifndef PEER_CHOKER_H_
#define PEER_CHOKER_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHOKER_INTERVAL_MS 10000u        /* run choker_decide this often */
#define CHOKER_OPTIMISTIC_EVERY 3u       /* rotate the optimistic unchoke every 3rd run (30 s) */
#define CHOKER_DEFAULT_SLOTS 4u

struct choker_peer {
  void *ctx;              /* caller's, untouched */
  uint64_t down_rate;     /* payload bytes/s we receive from the peer (recent) */
  uint64_t up_rate;       /* payload bytes/s we send to the peer (recent) */
  bool interested;        /* the peer is interested in us */
  bool snubbed;           /* it sent us nothing for a long time while we wanted data */
  bool unchoked;          /* in: current state; out: decision */
  bool optimistic;        /* in: current optimistic slot; out: decision */
};

struct choker_config {
  unsigned slots;         /* upload slots including the optimistic one (>= 1) */
  bool seeding;           /* we have everything: rank by up_rate */
};

/* Decides, for all n peers, who is unchoked.  Only interested peers take
 * slots.  Leeching: the slots-1 interested, non-snubbed peers with the best
 * down_rate are unchoked (regular slots), plus one optimistic peer.  Seeding:
 * the slots-1 best by up_rate, plus one optimistic.  The optimistic peer is
 * kept unless rotate is true (or it left/lost interest, or it now earned a
 * regular slot), in which case another choked interested peer is chosen at
 * random using rnd.  Peers that are not interested are choked. Ties keep
 * currently unchoked peers first, so the set does not flap. */
void choker_decide(struct choker_peer *peers, size_t n, const struct choker_config *cfg,
                   bool rotate, uint32_t rnd);

#endif
