/* exchange.c -- extension messages (BEP 10): the handshake, metadata for magnet links (BEP 9), peer exchange (BEP 11). */
#include <stdlib.h>

#include "common/compact.h"
#include "common/err.h"
#include "common/log.h"
#include "peer/engine-int.h"

/* Sends an extension message built into b (a whole framed message) when
 * building it went well (built == 0); frees b either way. */
static void send_buf(struct peer *p, struct buf *b, int built)
{
  if (built == 0 && b->len)
    peer__send(p, b->p, b->len);
  buf_free(b);
}

void exchange__send_handshake(struct torrent *t, struct peer *p)
{
  struct buf b;
  buf_init(&b, 4096);
  struct ext_handshake_opts o = {
    .port = t->session->port,
    .reqq = PEER_MAX_INCOMING_REQUESTS,
    .metadata_size = t->has_metadata && t->m->info_len <= EXT_MAX_METADATA ? (uint32_t)t->m->info_len : 0,
    .yourip = (const struct sockaddr *)&p->addr,
    .no_pex = t->m->private_,
  };
  send_buf(p, &b, ext_handshake_build(&b, &o));
}

/* ---- ut_metadata ---- */

/* Asks p for metadata pieces nobody is fetching, up to PEER_MAX_MD_INFLIGHT. */
static void md_request(struct torrent *t, struct peer *p)
{
  if (t->has_metadata || p->state != PEER_ACTIVE || p->ext.ut_metadata == 0 || t->md.size == 0)
    return;
  if (p->ext.metadata_size != t->md.size)
    return;                                    /* it describes another size: not from this one */
  uint64_t now = engine__now(t->session);
  uint32_t piece;
  while (p->md_inflight < PEER_MAX_MD_INFLIGHT &&
         ext_md_asm_pick(&t->md, now, EXT_MD_REQUEST_TIMEOUT_MS, &piece) == 0) {
    struct buf b;
    buf_init(&b, 256);
    int r = ext_md_build_request(&b, p->ext.ut_metadata, piece);
    send_buf(p, &b, r);
    if (r != 0)
      return;
    p->md_inflight++;
  }
}

static int on_metadata(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  uint32_t known = t->has_metadata ? (uint32_t)t->m->info_len : t->md.size;
  struct ext_md_msg msg;
  char err[SHOAL_ERRLEN];
  if (ext_md_parse(m->payload, m->payload_len, known, &msg, err, sizeof err) != 0) {
    LOG_DEBUG("peer %s: bad metadata message: %s", p->name, err);
    return SHOAL_EPROTO;
  }
  switch (msg.type) {
  case EXT_MD_REQUEST: {
    if (p->ext.ut_metadata == 0)
      return 0;                                /* it never told us where to answer */
    struct buf b;
    buf_init(&b, EXT_MD_BLOCK + 256);
    int r;
    if (t->has_metadata && t->m->info_len <= EXT_MAX_METADATA && p->write_queued < PEER_MAX_WRITE_QUEUE &&
        msg.piece < ext_md_pieces((uint32_t)t->m->info_len))
      r = ext_md_build_data(&b, p->ext.ut_metadata, msg.piece, t->m->info, (uint32_t)t->m->info_len);
    else
      r = ext_md_build_reject(&b, p->ext.ut_metadata, msg.piece);
    send_buf(p, &b, r);
    return 0;
  }
  case EXT_MD_DATA: {
    if (t->has_metadata)
      return 0;                                /* late: we have it already */
    if (p->md_inflight > 0)
      p->md_inflight--;
    int r = ext_md_asm_put(&t->md, msg.piece, msg.data, msg.data_len);
    if (r == 1) {
      torrent__verify_metadata(t);             /* hashed and parsed on the threadpool */
      return 0;
    }
    if (r < 0)
      return r;
    md_request(t, p);
    return 0;
  }
  case EXT_MD_REJECT:
    if (p->md_inflight > 0)
      p->md_inflight--;
    ext_md_asm_unask(&t->md, msg.piece);
    return 0;
  default:
    return 0;                                  /* BEP 9: unknown types are ignored */
  }
}

/* ---- ut_pex ---- */

/* Where a connected peer accepts connections: the address we dialled, or
 * its address with the port from its extension handshake. */
static bool listen_addr(const struct peer *q, struct sockaddr_storage *out)
{
  *out = q->addr;
  if (q->outgoing)
    return true;
  if (q->ext.port == 0)
    return false;
  if (out->ss_family == AF_INET)
    ((struct sockaddr_in *)out)->sin_port = htons(q->ext.port);
  else
    ((struct sockaddr_in6 *)out)->sin6_port = htons(q->ext.port);
  return true;
}

static bool addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  return addrbook_same_addr(a, (const struct sockaddr *)b);
}

static bool in_set(const struct sockaddr_storage *set, unsigned n, const struct sockaddr_storage *a)
{
  for (unsigned i = 0; i < n; i++)
    if (addr_eq(&set[i], a))
      return true;
  return false;
}

static int on_pex(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  if (t->m->private_)
    return 0;                                  /* BEP 27: private torrents do not exchange peers */
  uint64_t now = engine__now(t->session);
  if (p->pex_in_ms && now - p->pex_in_ms < PEX_MIN_GAP_IN_MS) {
    LOG_DEBUG("peer %s: PEX too often, ignored", p->name);
    return 0;
  }
  p->pex_in_ms = now;
  struct ext_pex *x = malloc(sizeof *x);
  if (x == NULL)
    return 0;
  char err[SHOAL_ERRLEN];
  if (ext_pex_parse(m->payload, m->payload_len, x, err, sizeof err) != 0) {
    LOG_DEBUG("peer %s: bad PEX message: %s", p->name, err);
    free(x);
    return 0;                                  /* a bad PEX costs the peer nothing but its advice */
  }
  size_t n = MIN(x->nadded, (size_t)PEX_MAX_ADD);
  for (size_t i = 0; i < n; i++)
    torrent_add_peer(t, (const struct sockaddr *)&x->added[i].addr, false);
  LOG_DEBUG("peer %s: PEX gave %zu addresses", p->name, n);
  free(x);
  return 0;
}

/* One PEX round: every peer that speaks ut_pex hears which peers joined
 * and left since the last round (the first time, all of them).  Between
 * full rounds only peers that had no message yet are told (everyone). */
static void pex_round(struct torrent *t, bool full_round, uint64_t now)
{
  struct ext_pex_peer cur[EXT_PEX_MAX_ADDED];
  struct sockaddr_storage cur_addrs[EXT_PEX_MAX_ADDED];
  unsigned ncur = 0;
  for (struct peer *q = t->peers; q && ncur < EXT_PEX_MAX_ADDED; q = q->next) {
    if (q->state != PEER_ACTIVE || !listen_addr(q, &cur[ncur].addr))
      continue;
    cur[ncur].flags = (uint8_t)((q->seed ? EXT_PEX_F_SEED : 0) | (q->outgoing ? EXT_PEX_F_REACHABLE : 0));
    cur_addrs[ncur] = cur[ncur].addr;
    ncur++;
  }
  struct ext_pex_peer added[EXT_PEX_MAX_ADDED];
  struct sockaddr_storage dropped[EXT_PEX_MAX_DROPPED];
  unsigned nadded = 0, ndropped = 0;
  for (unsigned i = 0; full_round && i < ncur; i++)
    if (!in_set(t->pex_prev, t->npex_prev, &cur[i].addr))
      added[nadded++] = cur[i];
  for (unsigned i = 0; full_round && i < t->npex_prev && ndropped < EXT_PEX_MAX_DROPPED; i++)
    if (!in_set(cur_addrs, ncur, &t->pex_prev[i]))
      dropped[ndropped++] = t->pex_prev[i];

  for (struct peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_ACTIVE || p->ext.ut_pex == 0 || now - p->started_ms < 5000)
      continue;
    if (p->pex_sent && !full_round)
      continue;
    /* the first message carries everyone; later ones the changes */
    const struct ext_pex_peer *a = p->pex_sent ? added : cur;
    unsigned na = p->pex_sent ? nadded : ncur;
    struct ext_pex_peer mine[EXT_PEX_MAX_ADDED];
    unsigned nm = 0;
    struct sockaddr_storage self;
    bool has_self = listen_addr(p, &self);
    for (unsigned i = 0; i < na; i++)
      if (!has_self || !addr_eq(&a[i].addr, &self))
        mine[nm++] = a[i];
    unsigned nd = p->pex_sent ? ndropped : 0;
    if (p->pex_sent && nm == 0 && nd == 0)
      continue;
    struct buf b;
    buf_init(&b, 8192);
    send_buf(p, &b, ext_pex_build(&b, p->ext.ut_pex, mine, nm, dropped, nd));
    p->pex_sent = true;
  }
  if (full_round) {
    memcpy(t->pex_prev, cur_addrs, ncur * sizeof *cur_addrs);
    t->npex_prev = ncur;
  }
}

void exchange__tick(struct torrent *t, uint64_t now)
{
  if (!t->has_metadata)
    for (struct peer *p = t->peers; p; p = p->next)
      md_request(t, p);              /* re-asks pieces that timed out */
  if (t->m->private_ || t->peers == NULL)
    return;
  if (t->pex_prev == NULL && (t->pex_prev = calloc(EXT_PEX_MAX_ADDED, sizeof *t->pex_prev)) == NULL)
    return;                          /* allocated once there are peers */
  pex_round(t, t->ticks % (PEX_INTERVAL_MS / TORRENT_TICK_MS) == 0, now);
}

/* ---- dispatch ---- */

int exchange__on_extended(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  switch (m->ext_id) {
  case EXT_ID_HANDSHAKE: {
    char err[SHOAL_ERRLEN];
    if (ext_handshake_parse(&p->ext, m->payload, m->payload_len, err, sizeof err) != 0) {
      LOG_DEBUG("peer %s: bad extension handshake: %s", p->name, err);
      return SHOAL_EPROTO;
    }
    if (p->ext.v[0])
      LOG_DEBUG("peer %s: client \"%s\"", p->name, p->ext.v);
    if (!t->has_metadata && p->ext.metadata_size && t->md.size == 0 &&
        ext_md_asm_set_size(&t->md, p->ext.metadata_size) == 0)
      LOG_INFO("%s: fetching %u bytes of metadata", t->m->name, p->ext.metadata_size);
    md_request(t, p);
    return 0;
  }
  case EXT_ID_UT_METADATA:
    return on_metadata(t, p, m);
  case EXT_ID_UT_PEX:
    return on_pex(t, p, m);
  default:
    return 0;                                  /* an extension we did not offer: ignored */
  }
}
