/* udp.h -- the tracker's UDP side (BEP 15): connection ids, request handling (pure) and the libuv server around it. */
#ifndef TRACKER_UDP_H_
#define TRACKER_UDP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "tracker/swarms.h"

#define TRACKERUDP_PROTOCOL_ID 0x41727101980ULL  /* connection id field of a connect */
#define TRACKERUDP_SECRET_LEN 16                 /* key of the connection-id hash */
#define TRACKERUDP_ROTATE_S 120                  /* secrets rotate this often */
#define TRACKERUDP_NUMWANT_DEFAULT 50            /* num_want -1 (or any negative) */
#define TRACKERUDP_NUMWANT_MAX 200               /* larger values are clamped */
#define TRACKERUDP_REPLY_MAX 1452                /* an answer fits one 1500-byte IPv6 packet */
#define TRACKERUDP_SCRAPE_MAX 74                 /* infohashes answered per scrape */
#define TRACKERUDP_PACKET_MAX 8192               /* longer datagrams are dropped */
#define TRACKERUDP_MIN_PACKET 16                 /* connection id, action, transaction id */
#define TRACKERUDP_ANNOUNCE_LEN 98               /* announce request without options */

struct trackerudp_config {
  uint32_t interval;        /* seconds between announces asked of clients; default 1800 */
};

/* Fills in the defaults above. */
void trackerudp_config_default(struct trackerudp_config *cfg);

/* ---- connection ids ---- */

/* A connection id is a keyed hash (SipHash-2-4) of the client's address
 * (family, IP, port; IPv4-mapped IPv6 counts as IPv4) under the current
 * secret.  Ids under the current or the previous secret are accepted, so an
 * id stays valid between TRACKERUDP_ROTATE_S and 2 * TRACKERUDP_ROTATE_S
 * seconds after it was handed out (BEP 15 asks for at least two minutes).
 * Times are seconds on any monotonic clock. */
struct trackerudp_secrets {
  uint8_t cur[TRACKERUDP_SECRET_LEN];
  uint8_t prev[TRACKERUDP_SECRET_LEN];
  bool have_prev;
  uint64_t rotated_at;
};

/* Starts with `key` (random, secret) as the current secret and no previous one. */
void trackerudp_secrets_init(struct trackerudp_secrets *s, const uint8_t key[TRACKERUDP_SECRET_LEN],
                             uint64_t now);
/* True when TRACKERUDP_ROTATE_S have passed since the last rotation (or
 * the clock went back). */
bool trackerudp_secrets_due(const struct trackerudp_secrets *s, uint64_t now);
/* The current secret becomes the previous one and `fresh` the current one;
 * after 2 * TRACKERUDP_ROTATE_S without a rotation the old current secret is
 * dropped as well (its ids are old enough). */
void trackerudp_secrets_rotate(struct trackerudp_secrets *s, const uint8_t fresh[TRACKERUDP_SECRET_LEN],
                               uint64_t now);
/* The id for a client address (AF_INET or AF_INET6; 0 for others). */
uint64_t trackerudp_conn_id(const struct trackerudp_secrets *s, const struct sockaddr *client);
/* True when id is the client's id under the current or previous secret. */
bool trackerudp_conn_id_ok(const struct trackerudp_secrets *s, const struct sockaddr *client, uint64_t id);

/* ---- pure request handling (no I/O) ---- */

/* Handles one datagram from `from` at time `now` (seconds, the clock of
 * swarms_sweep) and appends the answer to `out` (give it a max of at least
 * TRACKERUDP_REPLY_MAX).  Every size is checked before a field is read.
 * No answer at all (out unchanged) for: a datagram shorter than 16 bytes or
 * longer than TRACKERUDP_PACKET_MAX, a source neither IPv4 nor IPv6 or with
 * port 0, a connect whose connection id is not the protocol id, and any
 * other request whose connection id is not valid for `from` (BEP 15: such
 * requests are ignored).  Answers:
 *  - connect: the client's connection id (16 bytes);
 *  - announce (at least 98 bytes; BEP 41 options after them are ignored):
 *    the peer is recorded (IP from `from`, the IP field is ignored; port
 *    from the packet), then interval, leechers, seeders and up to num_want
 *    peers (negative: TRACKERUDP_NUMWANT_DEFAULT; at most
 *    TRACKERUDP_NUMWANT_MAX and what fits in TRACKERUDP_REPLY_MAX) of the
 *    requester's family: 6-byte entries for IPv4 clients, 18-byte for IPv6.
 *    The requester is never in its own answer; a seed gets only leechers.
 *  - scrape: seeders, completed, leechers for each whole infohash in the
 *    packet, at most TRACKERUDP_SCRAPE_MAX;
 *  - error (action 3) with a message for a short announce, an event above 3,
 *    port 0, a scrape without a whole infohash, an unknown action.
 * Returns 0 (also when nothing is answered), the buf error when out is
 * full, or UV_ENOMEM. */
int trackerudp_handle(struct swarms *s, const struct trackerudp_config *cfg,
                      const struct trackerudp_secrets *sec, const uint8_t *pkt, size_t len,
                      const struct sockaddr *from, uint64_t now, struct buf *out);

/* ---- the server ---- */

struct trackerudp_server;

/* Binds a UDP socket to `bind` (IPv4 or IPv6, dual-stack for "::"; port 0
 * picks a free one) on `loop` and answers BEP 15 requests from `swarms`
 * (borrowed: it must outlive the server), with the time uv_now(loop) / 1000.
 * Secrets come from libsodium (sodium_init must have succeeded) and rotate
 * every TRACKERUDP_ROTATE_S.  On success *out is the server.  On error
 * (e.g. UV_EADDRINUSE) *out is untouched and the half-made server frees
 * itself on the next run of the loop. */
int trackerudp_server_new(uv_loop_t *loop, struct swarms *swarms, const struct trackerudp_config *cfg,
                          const struct sockaddr *bind, struct trackerudp_server **out);

/* The address actually bound.  0 or a libuv error. */
int trackerudp_server_addr(const struct trackerudp_server *srv, struct sockaddr_storage *out);

/* Datagrams received and answers sent since the start. */
uint64_t trackerudp_server_received(const struct trackerudp_server *srv);
uint64_t trackerudp_server_answered(const struct trackerudp_server *srv);

/* Closes the socket; the server frees itself once it is closed (let the
 * loop run).  srv is invalid afterwards. */
void trackerudp_server_close(struct trackerudp_server *srv);

#endif
