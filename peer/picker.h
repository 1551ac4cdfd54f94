/* picker.h -- which blocks to ask for next: random first pieces, then rarest first,
 * finishing started pieces first, endgame at the end.  Pure: no I/O, no clock. */
#ifndef PEER_PICKER_H_
#define PEER_PICKER_H_

#include <stdbool.h>
#include <stdint.h>

#include "common/bitfield.h"

#define PICKER_BLOCK_SIZE 16384u
#define PICKER_RANDOM_FIRST 4u     /* pieces picked at random before rarest-first starts */
#define PICKER_ENDGAME_MAX_DUP 3u  /* at most this many peers asked for one block in endgame */

struct picker;  /* opaque */

/* A block: `length` is PICKER_BLOCK_SIZE except for the last block of the
 * last piece (and of pieces shorter than a block). */
struct picker_block {
  uint32_t piece;
  uint32_t begin;
  uint32_t length;
};

/* Peers are named by small ids that the caller chooses (unique among the
 * torrent's live peers; an id may be reused after the peer is gone and all of
 * its requests were returned with picker_unrequest). */
typedef uint16_t picker_peer_t;

/* piece_length > 0, total_length > 0, num_pieces == ceil(total/piece_length).
 * Returns NULL on allocation failure. */
struct picker *picker_new(uint32_t num_pieces, uint32_t piece_length, uint64_t total_length);
void picker_free(struct picker *p);

uint32_t picker_piece_size(const struct picker *p, uint32_t piece);
uint32_t picker_blocks_in_piece(const struct picker *p, uint32_t piece);

/* We hold this piece (verified): never pick it again.  Used at start-up for
 * pieces found on disk, and after a hash check passed. */
void picker_have(struct picker *p, uint32_t piece);
bool picker_has(const struct picker *p, uint32_t piece);
/* The opposite of picker_have: the piece is wanted again (its data turned
 * out not to be whole on disk, e.g. part of it fell in a file that was
 * skipped and is wanted now). */
void picker_unhave(struct picker *p, uint32_t piece);

/* Priority per piece: 0 = do not download, 1 = normal (default), 2 = high
 * (picked before normal ones). */
void picker_set_priority(struct picker *p, uint32_t piece, uint8_t prio);
/* True when every piece with priority > 0 is held. */
bool picker_done(const struct picker *p);

/* Availability bookkeeping: how many connected peers have each piece. */
void picker_add_bitfield(struct picker *p, const struct bitfield *peer_has);
void picker_remove_bitfield(struct picker *p, const struct bitfield *peer_has);
void picker_add_have(struct picker *p, uint32_t piece);

/* Most pieces we keep partially downloaded at once (memory bound); when
 * reached, only started pieces (and endgame) are picked from.  Default 16;
 * 0 counts as 1; capped at 4096 pieces and, for huge pieces, lower (the
 * started pieces' block state stays within 2^20 blocks). */
void picker_set_max_active(struct picker *p, uint32_t n);

/* Sequential mode (for previewing media): new pieces are started in index
 * order -- the lowest-numbered wanted piece the peer has, high priority
 * first -- instead of random-first / rarest-first.  Default off. */
void picker_set_sequential(struct picker *p, bool on);

/* Chooses up to `max` blocks for `peer`, which has the pieces in peer_has,
 * writes them to out and records them as requested by that peer; returns how
 * many.  Order of preference: blocks of pieces already started (most complete
 * first), then high priority, then -- for the first PICKER_RANDOM_FIRST
 * pieces -- a random piece, then the rarest piece (ties broken by rnd).  When
 * every wanted block is requested or received (endgame), blocks not yet
 * received are picked again from other peers, at most PICKER_ENDGAME_MAX_DUP
 * requests each, never twice from the same peer.  rnd is the caller's random
 * number (fresh per call). */
int picker_pick(struct picker *p, const struct bitfield *peer_has, picker_peer_t peer,
                struct picker_block *out, int max, uint32_t rnd);

/* A request to `peer` for the block at piece/begin is given up (choked,
 * rejected, timed out, disconnected): the block can be picked again.
 * Unknown blocks are ignored. */
void picker_unrequest(struct picker *p, uint32_t piece, uint32_t begin, picker_peer_t peer);

/* The block at piece/begin arrived from `peer`.  Returns:
 *   1  accepted, and the piece now has every block: hash it;
 *   0  accepted;
 *  -1  not wanted (we hold the piece, the block was already received, or
 *      begin is not a block boundary): discard the data.
 * When accepted, other peers that were still asked for the same block
 * (endgame) are written to others[0..*nothers) (at most max_others) so the
 * caller can send them CANCEL; their requests are dropped from the picker.
 * The sender of each block is remembered for picker_piece_failed(). */
int picker_received(struct picker *p, uint32_t piece, uint32_t begin, picker_peer_t peer,
                    picker_peer_t *others, int max_others, int *nothers);

/* Hash result for a piece that picker_received() reported complete.
 * passed: we hold it now (same as picker_have).
 * failed: every block of the piece is forgotten so it is downloaded again;
 *         the distinct peers that sent its blocks are written to
 *         senders[0..return) (at most max) so the caller can strike them. */
void picker_piece_passed(struct picker *p, uint32_t piece);
int picker_piece_failed(struct picker *p, uint32_t piece, picker_peer_t *senders, int max);

/* For a piece whose blocks have all been received (picker_received returned
 * 1, before picker_piece_passed/failed): the sender of each block, in block
 * order, into out[0..n).  Returns n (picker_blocks_in_piece), or -1 when the
 * piece is not complete or max < n. */
int picker_block_senders(const struct picker *p, uint32_t piece, picker_peer_t *out, uint32_t max);

/* The caller dropped a partially received piece (e.g. its buffer): forget
 * its received blocks too. Requests outstanding for it stay recorded. */
void picker_piece_reset(struct picker *p, uint32_t piece);

bool picker_in_endgame(const struct picker *p);
uint32_t picker_active_count(const struct picker *p);  /* pieces started, not yet held */
uint32_t picker_have_count(const struct picker *p);
uint64_t picker_have_bytes(const struct picker *p);
uint64_t picker_wanted_bytes_left(const struct picker *p); /* bytes of wanted pieces not held */

#endif
