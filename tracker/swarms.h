/* swarms.h -- the tracker's bookkeeping: peers per infohash, expiry, random peer selection (pure: no I/O, time passed in). */
#ifndef TRACKER_SWARMS_H_
#define TRACKER_SWARMS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SWARMS_ID_LEN 20     /* infohash and peer id */
#define SWARMS_KEY_LEN 16    /* hash key: random bytes from the caller */

/* Caps on memory.  A swarm is created by the first announce of its infohash
 * and removed as soon as it has no peers (its `downloaded` count goes with it). */
struct swarms_limits {
  uint32_t max_swarms;           /* distinct infohashes */
  uint32_t max_peers_per_swarm;
  uint32_t max_peers;            /* over all swarms */
};
extern const struct swarms_limits swarms_default_limits; /* 100000, 10000, 1000000 */

enum swarms_event {
  SWARMS_EVENT_NONE = 0,   /* a regular announce */
  SWARMS_EVENT_STARTED,
  SWARMS_EVENT_COMPLETED,
  SWARMS_EVENT_STOPPED,
};

/* One announce, already validated by the caller.  A peer is identified by its
 * peer id together with its IP address (not its port: a re-announce from the
 * same id and IP updates the port). */
struct swarms_announce {
  const uint8_t *info_hash;       /* SWARMS_ID_LEN bytes */
  const uint8_t *peer_id;         /* SWARMS_ID_LEN bytes */
  const struct sockaddr *addr;    /* AF_INET or AF_INET6: the peer's IP and listening port */
  uint64_t left;                  /* 0: the peer is a seed */
  enum swarms_event event;
};

struct swarms_stats {
  uint32_t complete;      /* seeds */
  uint32_t incomplete;    /* leechers */
  uint64_t downloaded;    /* `completed` events seen (once per peer) */
};

/* A peer handed out by swarms_select. */
struct swarms_peer {
  uint8_t id[SWARMS_ID_LEN];
  struct sockaddr_storage addr;   /* AF_INET or AF_INET6 with the peer's port */
  bool seed;
};

struct swarms;

/* Creates an empty table.  `lim` NULL means swarms_default_limits (a zero
 * field also means its default).  `key` keys the hash of infohashes and peer
 * ids (clients choose those, so the key must be secret and random); it also
 * seeds the random peer selection.  Returns NULL when out of memory.  Free
 * with swarms_free(). */
struct swarms *swarms_new(const struct swarms_limits *lim, const uint8_t key[SWARMS_KEY_LEN]);
void swarms_free(struct swarms *s);

/* Records one announce at time `now` (seconds, any monotonic origin):
 * inserts or refreshes the peer (seed when left == 0), removes it on
 * SWARMS_EVENT_STOPPED (a stop from an unknown peer or for an unknown
 * infohash changes nothing), and counts SWARMS_EVENT_COMPLETED in
 * `downloaded` once per peer.  Fills *st (if not NULL) with the swarm's counts
 * after the change.
 * Returns 0 when the peer is recorded (or removed), SWARMS_NOT_STORED when it
 * could not be recorded because a cap is reached (the swarm's peers, all
 * peers, or the number of swarms; the swarm and the peer's earlier state are
 * unchanged and the caller still answers), UV_EINVAL for an address that is
 * neither IPv4 nor IPv6, or UV_ENOMEM. */
#define SWARMS_NOT_STORED 1
int swarms_announce(struct swarms *s, const struct swarms_announce *a, uint64_t now,
                    struct swarms_stats *st);

/* Chooses up to `want` peers of the swarm at random (uniformly, without
 * repeats) into out[0..want).  Never returns the requester: neither the peer
 * with `self_id` at the IP of `self`, nor any peer at exactly the IP and port
 * of `self`.  When `self_seed` is true only leechers are chosen (seeds have no
 * use for seeds).  Returns how many were written (0 for an unknown infohash).
 * Does not change the swarms except for the random state. */
size_t swarms_select(struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN],
                     const uint8_t self_id[SWARMS_ID_LEN], const struct sockaddr *self,
                     bool self_seed, struct swarms_peer *out, size_t want);

/* As swarms_select, but chooses only among the peers of one address family
 * (AF_INET or AF_INET6; 0: any), e.g. for a compact list of one entry size. */
size_t swarms_select_family(struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN],
                            const uint8_t self_id[SWARMS_ID_LEN], const struct sockaddr *self,
                            bool self_seed, int family, struct swarms_peer *out, size_t want);

/* Counts of one swarm: 0, or SHOAL_ENOTFOUND (and *st zeroed) when no peer
 * of that infohash is known. */
int swarms_lookup(const struct swarms *s, const uint8_t info_hash[SWARMS_ID_LEN],
                  struct swarms_stats *st);

/* Number of swarms, and of peers over all swarms. */
size_t swarms_count(const struct swarms *s);
size_t swarms_peer_count(const struct swarms *s);

/* The i-th swarm (0 <= i < swarms_count()): its infohash and counts; 0, or
 * UV_EINVAL for i out of range.  The order is arbitrary and changes whenever
 * a swarm is added or removed. */
int swarms_at(const struct swarms *s, size_t i, uint8_t info_hash[SWARMS_ID_LEN],
              struct swarms_stats *st);

/* Removes every peer not heard from for more than `max_age` seconds before
 * `now`, and the swarms left empty.  Returns how many peers were removed. */
size_t swarms_sweep(struct swarms *s, uint64_t now, uint64_t max_age);

#endif
