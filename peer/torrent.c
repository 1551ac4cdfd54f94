/* torrent.c -- one torrent: checking, then downloading and uploading with its peers, then seeding. */
#include <sodium.h>
#include <stdlib.h>

#include "common/compact.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "peer/announce.h"
#include "peer/choker.h"
#include "peer/engine-int.h"
#include "peer/ext.h"
#include "peer/storage.h"

static void fill_requests(struct torrent *t, struct peer *p);
static void update_interest(struct torrent *t, struct peer *p);
static void try_connect(struct torrent *t);
static void maybe_stopped(struct torrent *t);

const struct manifest *torrent_manifest(const struct torrent *t) { return t->m; }

uint32_t torrent__num_pieces(const struct torrent *t)
{
  return t->has_metadata ? t->m->num_pieces : WIRE_PIECES_UNKNOWN;
}

static bool allowed_out(const struct peer *p, uint32_t piece)
{
  for (unsigned i = 0; i < p->nallowed_out; i++)
    if (p->allowed_out[i] == piece)
      return true;
  return false;
}

/* ---- bookkeeping ---- */

static bool id_used(const struct torrent *t, picker_peer_t id) { return t->id_used[id >> 3] & (1u << (id & 7)); }

static int alloc_peer_id(struct torrent *t, picker_peer_t *out)
{
  if (t->id_used == NULL && (t->id_used = calloc(65536 / 8, 1)) == NULL)
    return UV_ENOMEM;                        /* allocated with the first peer */
  for (unsigned i = 0; i < 65536; i++) {
    picker_peer_t id = (picker_peer_t)(t->next_id + i);
    if (!id_used(t, id)) {
      t->id_used[id >> 3] |= (uint8_t)(1u << (id & 7));
      t->next_id = (picker_peer_t)(id + 1);
      *out = id;
      return 0;
    }
  }
  return UV_EMFILE;
}

static void link_peer(struct torrent *t, struct peer *p)
{
  p->torrent = t;
  DLIST_PUSH(t->peers, p);
  t->npeers++;
  t->session->npeers++;
}

static void unlink_peer(struct torrent *t, struct peer *p)
{
  DLIST_REMOVE(t->peers, p);
  t->npeers--;
  t->session->npeers--;
}

/* How many pieces p has that we lack. */
static uint32_t count_wanted(const struct torrent *t, const struct peer *p)
{
  uint32_t w = 0;
  size_t nb = bitfield_bytes(t->m->num_pieces);
  for (size_t i = 0; i < nb; i++)
    w += (uint32_t)__builtin_popcount(p->have.bits[i] & (uint8_t)~t->have.bits[i]);
  return w;
}

void torrent_add_peer(struct torrent *t, const struct sockaddr *sa, bool manual)
{
  bool added;
  if (addrbook_add(&t->book, sa, manual, &added) && added &&
      (t->state == TORRENT_DOWNLOADING || t->state == TORRENT_SEEDING || t->state == TORRENT_METADATA))
    try_connect(t);
}

/* ---- sending ---- */

static void send_simple(struct peer *p, uint8_t id)
{
  uint8_t m[5];
  peer__send(p, m, wire_put_simple(m, id));
}

static void set_choke(struct torrent *t, struct peer *p, bool choke)
{
  if (p->am_choking == choke)
    return;
  p->am_choking = choke;
  send_simple(p, choke ? WIRE_CHOKE : WIRE_UNCHOKE);
  if (!choke)
    return;
  if (!p->fast) {
    p->inq_len = 0;            /* BEP 3: their pending requests are dropped */
    return;
  }
  /* BEP 6: every request we will not serve is rejected; allowed-fast ones stay */
  unsigned kept = 0;
  for (unsigned k = 0; k < p->inq_len; k++) {
    struct peer_req rq = p->inq[(p->inq_head + k) % PEER_MAX_INCOMING_REQUESTS];
    if (allowed_out(p, rq.piece)) {
      p->inq[(p->inq_head + kept++) % PEER_MAX_INCOMING_REQUESTS] = rq;
      continue;
    }
    uint8_t r[17];
    peer__send(p, r, ext_put_reject(r, rq.piece, rq.begin, rq.length));
  }
  p->inq_len = kept;
  (void)t;
}

/* Gives back bytes taken from a torrent's bucket and the session's
 * (ratelimit_take2) but not used. */
static void refund2(struct ratelimit *t, struct ratelimit *s, uint64_t n)
{
  ratelimit_refund(t, n);
  ratelimit_refund(s, n);
}

/* ---- requests we send ---- */

static void drop_request_at(struct peer *p, unsigned i)
{
  memmove(&p->reqs[i], &p->reqs[i + 1], (p->nreqs - i - 1) * sizeof *p->reqs);
  p->nreqs--;
}

static void unrequest_all(struct torrent *t, struct peer *p)
{
  for (unsigned i = 0; i < p->nreqs; i++)
    picker_unrequest(t->picker, p->reqs[i].piece, p->reqs[i].begin, p->id);
  p->nreqs = 0;
}

/* Sends CANCEL for our request i to p and forgets it; its block may still
 * arrive (it may be on the wire already), which is then not held against p. */
static void cancel_request(struct peer *p, unsigned i)
{
  struct peer_req rq = p->reqs[i];
  uint8_t c[17];
  peer__send(p, c, wire_put_request(c, WIRE_CANCEL, rq.piece, rq.begin, rq.length));
  p->cancelled[p->ncancelled_next++ % PEER_CANCEL_MEMORY] = rq;
  drop_request_at(p, i);
}

static bool was_cancelled(struct peer *p, const struct wire_msg *m)
{
  for (unsigned i = 0; i < PEER_CANCEL_MEMORY; i++) {
    struct peer_req *c = &p->cancelled[i];
    if (c->length && c->piece == m->index && c->begin == m->begin && c->length == m->length) {
      c->length = 0;
      return true;
    }
  }
  return false;
}

/* A peer that sits on our requests: cancel them and let others have them. */
static void cancel_all(struct torrent *t, struct peer *p)
{
  for (unsigned i = 0; i < p->nreqs; i++)
    picker_unrequest(t->picker, p->reqs[i].piece, p->reqs[i].begin, p->id);
  while (p->nreqs > 0)
    cancel_request(p, p->nreqs - 1);
}

static void fill_requests(struct torrent *t, struct peer *p)
{
  if (p->state != PEER_ACTIVE || !p->am_interested || t->state != TORRENT_DOWNLOADING)
    return;
  const struct bitfield *from = &p->have;
  if (p->peer_choking) {
    /* BEP 6: while choked, only the pieces it allowed us */
    if (!p->fast || p->nallowed_in == 0)
      return;
    if (p->fast_pick.bits == NULL && bitfield_init(&p->fast_pick, t->m->num_pieces) < 0)
      return;
    bitfield_clear_all(&p->fast_pick);
    for (unsigned i = 0; i < p->nallowed_in; i++)
      if (bitfield_get(&p->have, p->allowed_in[i]))
        bitfield_set(&p->fast_pick, p->allowed_in[i]);
    from = &p->fast_pick;
  }
  unsigned target = MIN(p->target_reqs, p->ext.reqq);
  if (p->nreqs >= target)
    return;
  struct picker_block blocks[PEER_MAX_PIPELINE];
  int want = (int)(target - p->nreqs);
  struct session *s = t->session;
  uint64_t now = engine__now(s);
  bool limited = t->rl_down.rate || s->rl_down.rate;
  if (limited) {
    /* ask for no more than the limits grant now (each block is paid for
     * when requested; the data follows within about a round trip) */
    uint64_t grant = ratelimit_take2(&t->rl_down, &s->rl_down, (uint64_t)want * PICKER_BLOCK_SIZE, now);
    int fit = (int)(grant / PICKER_BLOCK_SIZE);
    refund2(&t->rl_down, &s->rl_down, grant - (uint64_t)fit * PICKER_BLOCK_SIZE);
    if (fit < want) {
      t->rl_wait = true;
      session__rate_wait(s);
    }
    want = fit;
    if (want == 0)
      return;
  }
  int n = picker_pick(t->picker, from, p->id, blocks, want, randombytes_random());
  if (limited && n < want) {
    uint64_t unused = (uint64_t)(want - MAX(n, 0)) * PICKER_BLOCK_SIZE;
    for (int i = 0; i < n; i++)
      unused += PICKER_BLOCK_SIZE - blocks[i].length;   /* short last blocks */
    refund2(&t->rl_down, &s->rl_down, unused);
  }
  if (n <= 0)
    return;
  uint8_t *d;
  void *w = peer__wreq_new((size_t)n * 17, &d);
  if (w == NULL)
    return;
  for (int i = 0; i < n; i++) {
    d += wire_put_request(d, WIRE_REQUEST, blocks[i].piece, blocks[i].begin, blocks[i].length);
    p->reqs[p->nreqs++] = (struct peer_req){ blocks[i].piece, blocks[i].begin, blocks[i].length, now };
  }
  peer__wreq_send(p, w);
}

static void update_interest(struct torrent *t, struct peer *p)
{
  bool want = p->wanted > 0 && t->state == TORRENT_DOWNLOADING;
  if (want == p->am_interested)
    return;
  p->am_interested = want;
  send_simple(p, want ? WIRE_INTERESTED : WIRE_NOT_INTERESTED);
  if (want)
    fill_requests(t, p);
}

/* ---- pieces ---- */

struct write_ctx {
  struct torrent *t;
  uint32_t piece;
};

static void broadcast_have(struct torrent *t, uint32_t piece)
{
  uint8_t m[9];
  wire_put_have(m, piece);
  for (struct peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_ACTIVE)
      continue;
    if (bitfield_get(&p->have, piece)) {
      if (p->wanted > 0 && --p->wanted == 0)
        update_interest(t, p);
      continue;
    }
    peer__send(p, m, sizeof m);
  }
}

static void become_seed(struct torrent *t);

static struct peer *peer_by_id(struct torrent *t, picker_peer_t id)
{
  for (struct peer *p = t->peers; p; p = p->next)
    if (p->state == PEER_ACTIVE && p->id == id)
      return p;
  return NULL;
}

static bool is_banned(const struct torrent *t, const uint8_t peer_id[20])
{
  for (unsigned i = 0; i < t->nbanned; i++)
    if (memcmp(t->banned[i], peer_id, 20) == 0)
      return true;
  return false;
}

/* Bans a peer id: its connections are closed and it is refused from now on. */
static void ban(struct torrent *t, const uint8_t peer_id[20], const char *why)
{
  static const uint8_t zero[20];
  if (memcmp(peer_id, zero, 20) == 0 || is_banned(t, peer_id))
    return;
  if (t->banned == NULL)
    t->banned = calloc(TORRENT_MAX_BANNED, sizeof *t->banned);
  if (t->banned && t->nbanned < TORRENT_MAX_BANNED)
    memcpy(t->banned[t->nbanned++], peer_id, 20);
  struct peer *next;
  for (struct peer *p = t->peers; p; p = next) {
    next = p->next;
    if (p->state != PEER_ACTIVE || memcmp(p->peer_id, peer_id, 20) != 0)
      continue;
    LOG_WARN("peer %s: banned: %s", p->name, why);
    if (p->entry)
      p->entry->banned = true;
    peer__close(p, why);
  }
}

static void strike(struct torrent *t, picker_peer_t id)
{
  struct peer *p = peer_by_id(t, id);
  if (p == NULL)
    return;
  p->strikes++;
  LOG_INFO("peer %s: strike %u for bad data", p->name, p->strikes);
  if (p->strikes >= PEER_MAX_STRIKES)
    ban(t, p->peer_id, "sent bad data too often");
}

/* ---- smart ban: which of several senders spoiled a piece ---- */

struct block_hash_job {
  uv_work_t req;
  struct torrent *t;
  uint32_t piece, size, nblocks;
  bool good;                        /* data passed its hash check */
  unsigned slot;                    /* bad copy: its suspect record ... */
  uint32_t gen;                     /* ... as long as the record is still this one */
  uint8_t *data;
  uint8_t (*hash)[20];
};

static void suspect_free(struct suspect *sp)
{
  free(sp->hash);
  free(sp->good);
  free(sp->sender);
  memset(sp, 0, sizeof *sp);
}

static void job_free(struct block_hash_job *j)
{
  free(j->data);
  free(j->hash);
  free(j);
}

static void hash_blocks_work(uv_work_t *req)
{
  struct block_hash_job *j = container_of(req, struct block_hash_job, req);
  for (uint32_t i = 0; i < j->nblocks; i++) {
    uint32_t off = i * PICKER_BLOCK_SIZE;
    hash_sha1(j->data + off, MIN(PICKER_BLOCK_SIZE, j->size - off), j->hash[i]);
  }
}

/* Both copies are hashed: ban the senders of the blocks that differ. */
static void suspect_judge(struct torrent *t, struct suspect *sp)
{
  for (uint32_t i = 0; i < sp->nblocks; i++)
    if (memcmp(sp->hash[i], sp->good[i], 20) != 0)
      ban(t, sp->sender[i], "sent a corrupt block");
  suspect_free(sp);
}

static void hash_blocks_done(uv_work_t *req, int status)
{
  struct block_hash_job *j = container_of(req, struct block_hash_job, req);
  struct torrent *t = j->t;
  t->jobs_in_flight--;
  if (status < 0 || t->state == TORRENT_STOPPING) {
    job_free(j);
    maybe_stopped(t);
    return;
  }
  if (!j->good) {
    struct suspect *sp = &t->suspects[j->slot];
    if (sp->nblocks == j->nblocks && sp->gen == j->gen) {   /* not given away meanwhile */
      sp->hash = j->hash;
      j->hash = NULL;
      sp->bad_ready = true;
      if (sp->good)
        suspect_judge(t, sp);
    }
    job_free(j);
    return;
  }
  /* a good copy: judge every record of this piece, or leave it the hashes */
  for (unsigned k = 0; k < TORRENT_MAX_SUSPECTS; k++) {
    struct suspect *sp = &t->suspects[k];
    if (sp->nblocks != j->nblocks || sp->piece != j->piece || sp->good)
      continue;
    sp->good = malloc((size_t)j->nblocks * sizeof *sp->good);
    if (sp->good == NULL) {
      suspect_free(sp);
      continue;
    }
    memcpy(sp->good, j->hash, (size_t)j->nblocks * sizeof *sp->good);
    if (sp->bad_ready)
      suspect_judge(t, sp);
  }
  job_free(j);
}

static bool has_suspect(const struct torrent *t, uint32_t piece)
{
  for (unsigned k = 0; k < TORRENT_MAX_SUSPECTS; k++)
    if (t->suspects[k].nblocks && t->suspects[k].piece == piece)
      return true;
  return false;
}

/* Hashes the blocks of data (taken over) on the threadpool; a bad copy's
 * hashes go to suspect record `slot`. */
static void queue_block_hashes(struct torrent *t, uint32_t piece, uint8_t *data, bool good, unsigned slot)
{
  uint32_t size = manifest_piece_size(t->m, piece);
  uint32_t nb = (size + PICKER_BLOCK_SIZE - 1) / PICKER_BLOCK_SIZE;
  struct block_hash_job *j = calloc(1, sizeof *j);
  if (j == NULL || (j->hash = calloc(nb, sizeof *j->hash)) == NULL) {
    free(j);
    free(data);
    return;
  }
  /* every field is set before the job can run on another thread */
  j->t = t;
  j->piece = piece;
  j->size = size;
  j->nblocks = nb;
  j->good = good;
  j->slot = slot;
  j->gen = good ? 0 : t->suspects[slot].gen;
  j->data = data;
  if (uv_queue_work(t->session->loop, &j->req, hash_blocks_work, hash_blocks_done) < 0) {
    job_free(j);
    return;
  }
  t->jobs_in_flight++;
}

/* A piece failed: strike a lone sender at once; with several senders,
 * remember who sent which block so that a good copy can tell. */
static void piece_failed(struct torrent *t, uint32_t piece, uint8_t *data)
{
  picker_peer_t who[MANIFEST_MAX_PIECE_LEN / PICKER_BLOCK_SIZE];   /* 2 KiB */
  int nb = picker_block_senders(t->picker, piece, who, ARRAY_SIZE(who));
  bool several = false;
  for (int i = 1; i < nb; i++)
    several |= who[i] != who[0];
  if (nb > 0 && !several) {
    strike(t, who[0]);
    free(data);
  } else if (nb > 0) {
    /* the record exists from now on, so a good copy that is hashed before
     * this bad one still finds it (the oldest record gives way) */
    unsigned slot = t->suspect_next++ % TORRENT_MAX_SUSPECTS;
    struct suspect *sp = &t->suspects[slot];
    suspect_free(sp);
    sp->sender = calloc((size_t)nb, sizeof *sp->sender);
    if (sp->sender == NULL) {
      free(data);
    } else {
      for (int i = 0; i < nb; i++) {
        struct peer *p = peer_by_id(t, who[i]);
        if (p)
          memcpy(sp->sender[i], p->peer_id, 20);
      }
      sp->piece = piece;
      sp->nblocks = (uint32_t)nb;
      sp->gen = ++t->suspect_gen;
      queue_block_hashes(t, piece, data, false, slot);
    }
  } else {
    free(data);
  }
  picker_piece_failed(t->picker, piece, NULL, 0);
}

/* Stops the torrent on an error; msg is the whole line for people. */
static void fail_torrent_msg(struct torrent *t, int err, const char *msg)
{
  if (t->state == TORRENT_ERROR || t->state == TORRENT_STOPPING)
    return;
  if (t->ev.error == NULL)
    LOG_ERROR("%s: %s", t->m->name, msg);
  t->state = TORRENT_ERROR;
  struct peer *next;
  for (struct peer *p = t->peers; p; p = next) {
    next = p->next;
    peer__close(p, "torrent stopped on an error");
  }
  if (t->ev.error)
    t->ev.error(t, err, msg, t->ev_ctx);
}

static void fail_torrent(struct torrent *t, int err, const char *what)
{
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", what, shoal_strerror(err));
  fail_torrent_msg(t, err, msg);
}

/* Files touched by a piece: [*first, *end). */
static void piece_files(const struct manifest *m, uint32_t piece, uint32_t *first, uint32_t *end)
{
  uint64_t start = (uint64_t)piece * m->piece_length, stop = start + manifest_piece_size(m, piece);
  int f = manifest_file_at(m, start);
  *first = f < 0 ? m->num_files : (uint32_t)f;
  uint32_t e = *first;
  while (e < m->num_files && m->files[e].offset < stop)
    e++;
  *end = e;
}

/* A file with bytes of its own on disk (not padding, not empty). */
static bool has_data(const struct manifest *m, uint32_t f)
{
  return m->files[f].length > 0 && !(m->files[f].attr & MANIFEST_ATTR_PAD);
}

/* A piece is whole on disk unless it spans a file left out. */
static bool whole_on_disk(const struct torrent *t, uint32_t piece)
{
  if (t->file_prio == NULL)
    return true;
  uint32_t f, e;
  piece_files(t->m, piece, &f, &e);
  for (; f < e; f++)
    if (t->file_prio[f] == 0 && has_data(t->m, f))
      return false;
  return true;
}

/* Counts, per file, the pieces touching it that we do not hold yet. */
static void count_files_missing(struct torrent *t)
{
  const struct manifest *m = t->m;
  free(t->file_missing);
  t->file_missing = calloc(m->num_files, sizeof *t->file_missing);
  if (t->file_missing == NULL)
    return;                                    /* no file_done events then */
  for (uint32_t i = 0; i < m->num_pieces; i++) {
    if (picker_has(t->picker, i))
      continue;
    uint32_t f, e;
    piece_files(m, i, &f, &e);
    for (; f < e; f++)
      t->file_missing[f]++;
  }
}

static void note_files_done(struct torrent *t, uint32_t piece)
{
  if (t->file_missing == NULL)
    return;
  const struct manifest *m = t->m;
  uint32_t f, e;
  piece_files(m, piece, &f, &e);
  for (; f < e; f++) {
    if (t->file_missing[f] == 0 || --t->file_missing[f] > 0)
      continue;
    bool wanted = (t->file_prio == NULL || t->file_prio[f] > 0) && !(m->files[f].attr & MANIFEST_ATTR_PAD);
    if (wanted && t->ev.file_done)
      t->ev.file_done(t, f, t->ev_ctx);
  }
}

static void on_piece_written(void *ctx, int status)
{
  struct write_ctx *wc = ctx;
  struct torrent *t = wc->t;
  uint32_t piece = wc->piece;
  free(wc);
  t->writes_in_flight--;
  uint8_t *data = t->pbuf[piece];
  t->pbuf[piece] = NULL;
  if (t->state != TORRENT_DOWNLOADING) {
    free(data);
    if (t->state == TORRENT_STOPPING)
      maybe_stopped(t);
    return;
  }
  if (status == 0) {
    if (has_suspect(t, piece))
      queue_block_hashes(t, piece, data, true, 0);      /* a good copy: find the bad blocks */
    else
      free(data);
    picker_piece_passed(t->picker, piece);
    if (whole_on_disk(t, piece)) {             /* only what we can serve is announced */
      bitfield_set(&t->have, piece);
      broadcast_have(t, piece);
    }
    note_files_done(t, piece);
    if (t->state != TORRENT_DOWNLOADING)
      return;                                  /* the program stopped us */
    if (picker_done(t->picker)) {
      become_seed(t);
      return;
    }
    /* a slot for a piece in progress is free again: keep every pipeline full */
    for (struct peer *p = t->peers; p; p = p->next)
      fill_requests(t, p);
    return;
  }
  if (status == SHOAL_EHASH) {
    t->wasted += manifest_piece_size(t->m, piece);
    LOG_WARN("%s: piece %u failed its hash check; downloading it again", t->m->name, piece);
    piece_failed(t, piece, data);
    for (struct peer *p = t->peers; p; p = p->next)
      fill_requests(t, p);
    return;
  }
  free(data);
  picker_piece_reset(t->picker, piece);
  fail_torrent(t, status, "cannot write data");
}

static int on_block(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  unsigned i;
  for (i = 0; i < p->nreqs; i++)
    if (p->reqs[i].piece == m->index && p->reqs[i].begin == m->begin)
      break;
  if (i == p->nreqs || p->reqs[i].length != m->length) {
    t->wasted += m->length;
    if (was_cancelled(p, m))
      return 0;                                 /* crossed our CANCEL on the wire */
    if (++p->unrequested > PEER_MAX_UNREQUESTED)
      return SHOAL_EPROTO;                      /* data nobody asked for */
    return 0;
  }
  drop_request_at(p, i);
  uint64_t now = engine__now(t->session);
  p->last_block_ms = now;
  p->snubbed = false;
  rate_add(&p->down, m->length);
  rate_add(&t->down, m->length);

  picker_peer_t others[PICKER_ENDGAME_MAX_DUP + 1];
  int nothers = 0;
  int r = picker_received(t->picker, m->index, m->begin, p->id, others, (int)ARRAY_SIZE(others), &nothers);
  if (r < 0) {
    t->wasted += m->length;
    fill_requests(t, p);
    return 0;
  }
  uint8_t *pb = t->pbuf[m->index];
  if (pb == NULL) {
    pb = t->pbuf[m->index] = malloc(manifest_piece_size(t->m, m->index));
    if (pb == NULL) {
      picker_piece_reset(t->picker, m->index);
      return UV_ENOMEM;
    }
  }
  memcpy(pb + m->begin, m->payload, m->length);
  for (int k = 0; k < nothers; k++) {
    for (struct peer *o = t->peers; o; o = o->next) {
      if (o->state != PEER_ACTIVE || o->id != others[k])
        continue;
      for (unsigned j = 0; j < o->nreqs; j++) {
        if (o->reqs[j].piece == m->index && o->reqs[j].begin == m->begin) {
          cancel_request(o, j);
          break;
        }
      }
      fill_requests(t, o);
    }
  }
  if (r == 1) {
    struct write_ctx *wc = malloc(sizeof *wc);
    if (wc == NULL)
      return UV_ENOMEM;
    wc->t = t;
    wc->piece = m->index;
    int e = storage_write_piece(t->storage, m->index, pb, on_piece_written, wc);
    if (e < 0) {
      free(wc);
      free(t->pbuf[m->index]);
      t->pbuf[m->index] = NULL;
      picker_piece_reset(t->picker, m->index);
      fail_torrent(t, e, "cannot write data");
      return 0;
    }
    t->writes_in_flight++;
  }
  fill_requests(t, p);
  return 0;
}

/* ---- uploading ---- */

/* Contiguous requests of one piece, read from disk at once and sent as
 * one scatter write of their PIECE messages. */
#define SPAN_BLOCKS (PEER_SPAN_MAX / PICKER_BLOCK_SIZE)
struct span {
  struct peer *p;
  uint32_t piece, begin, len;
  unsigned nblocks;
  uint32_t blen[SPAN_BLOCKS];
  uint8_t hdr[SPAN_BLOCKS][13];
  uint8_t data[];
};

static void on_span_read(void *ctx, int status)
{
  struct span *sp = ctx;
  struct peer *p = sp->p;
  p->reads_in_flight--;
  if (p->state == PEER_CLOSING || p->torrent == NULL || status < 0) {
    if (status < 0 && status != UV_ECANCELED && p->state != PEER_CLOSING)
      LOG_WARN("peer %s: cannot read a block to upload: %s", p->name, shoal_strerror(status));
    free(sp);
    if (p->state == PEER_CLOSING)
      peer__maybe_free(p);
    else if (status < 0 && status != UV_ECANCELED)
      peer__close(p, "local read error");
    return;
  }
  struct torrent *t = p->torrent;
  uv_buf_t bufs[2 * SPAN_BLOCKS];
  uint32_t off = 0;
  for (unsigned i = 0; i < sp->nblocks; i++) {
    wire_put_piece_header(sp->hdr[i], sp->piece, sp->begin + off, sp->blen[i]);
    bufs[2 * i] = uv_buf_init((char *)sp->hdr[i], 13);
    bufs[2 * i + 1] = uv_buf_init((char *)sp->data + off, sp->blen[i]);
    off += sp->blen[i];
  }
  rate_add(&p->up, sp->len);
  rate_add(&t->up, sp->len);
  peer__send_bufs(p, sp, bufs, 2 * sp->nblocks);
  torrent__serve(t, p);
}

void torrent__serve(struct torrent *t, struct peer *p)
{
  struct session *s = t->session;
  bool limited = t->rl_up.rate || s->rl_up.rate;
  uint64_t now = limited ? engine__now(s) : 0;
  while (p->state == PEER_ACTIVE && (!p->am_choking || p->fast) && p->inq_len > 0 &&
         p->reads_in_flight < PEER_MAX_READS_IN_FLIGHT && p->write_queued < PEER_MAX_WRITE_QUEUE) {
    /* take the first request and the ones that continue it in the same piece */
    struct peer_req first = p->inq[p->inq_head];
    uint32_t blen[SPAN_BLOCKS], len = 0;
    unsigned nb = 0;
    while (p->inq_len > 0 && nb < SPAN_BLOCKS) {
      struct peer_req rq = p->inq[p->inq_head];
      if (rq.piece != first.piece || rq.begin != first.begin + len || len + rq.length > PEER_SPAN_MAX)
        break;
      uint64_t g = limited ? ratelimit_take2(&t->rl_up, &s->rl_up, rq.length, now) : rq.length;
      if (g < rq.length) {
        refund2(&t->rl_up, &s->rl_up, g);
        t->rl_wait = true;
        session__rate_wait(s);
        break;
      }
      blen[nb++] = rq.length;
      len += rq.length;
      p->inq_head = (p->inq_head + 1) % PEER_MAX_INCOMING_REQUESTS;
      p->inq_len--;
    }
    if (nb == 0)
      return;                                  /* held back by a rate limit */
    struct span *sp = malloc(sizeof *sp + len);
    if (sp == NULL) {
      if (limited)
        refund2(&t->rl_up, &s->rl_up, len);
      return;
    }
    sp->p = p;
    sp->piece = first.piece;
    sp->begin = first.begin;
    sp->len = len;
    sp->nblocks = nb;
    memcpy(sp->blen, blen, nb * sizeof *blen);
    int r = storage_read(t->storage, first.piece, first.begin, len, sp->data, on_span_read, sp);
    if (r < 0) {
      free(sp);
      if (limited)
        refund2(&t->rl_up, &s->rl_up, len);
      return;
    }
    p->reads_in_flight++;
  }
}

static int on_request(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  if (!bitfield_get(&t->have, m->index))
    return SHOAL_EPROTO;                        /* asks for what we never announced */
  uint32_t size = manifest_piece_size(t->m, m->index);
  if (m->begin >= size || m->length > size - m->begin)
    return SHOAL_EPROTO;
  if (p->am_choking && !(p->fast && allowed_out(p, m->index))) {
    if (p->fast) {                              /* BEP 6: say no */
      uint8_t r[17];
      peer__send(p, r, ext_put_reject(r, m->index, m->begin, m->length));
    }
    return 0;                                   /* BEP 3: ignored while choked */
  }
  if (p->inq_len >= PEER_MAX_INCOMING_REQUESTS)
    return SHOAL_ETOOBIG;
  unsigned slot = (p->inq_head + p->inq_len) % PEER_MAX_INCOMING_REQUESTS;
  p->inq[slot] = (struct peer_req){ m->index, m->begin, m->length, 0 };
  p->inq_len++;
  torrent__serve(t, p);
  return 0;
}

static void on_cancel(struct peer *p, const struct wire_msg *m)
{
  for (unsigned k = 0; k < p->inq_len; k++) {
    unsigned i = (p->inq_head + k) % PEER_MAX_INCOMING_REQUESTS;
    if (p->inq[i].piece == m->index && p->inq[i].begin == m->begin && p->inq[i].length == m->length) {
      /* close the gap by shifting the later entries down one slot */
      for (unsigned j = k; j + 1 < p->inq_len; j++)
        p->inq[(p->inq_head + j) % PEER_MAX_INCOMING_REQUESTS] =
            p->inq[(p->inq_head + j + 1) % PEER_MAX_INCOMING_REQUESTS];
      p->inq_len--;
      return;
    }
  }
}

/* ---- choking ---- */

static unsigned unchoked_count(const struct torrent *t)
{
  unsigned n = 0;
  for (const struct peer *p = t->peers; p; p = p->next)
    n += p->state == PEER_ACTIVE && !p->am_choking;
  return n;
}

static void run_choker(struct torrent *t, bool rotate)
{
  struct choker_peer cp[256];
  size_t n = 0;
  for (struct peer *p = t->peers; p && n < ARRAY_SIZE(cp); p = p->next) {
    if (p->state != PEER_ACTIVE)
      continue;
    cp[n++] = (struct choker_peer){
      .ctx = p, .down_rate = p->down.per_s, .up_rate = p->up.per_s,
      .interested = p->peer_interested, .snubbed = p->snubbed,
      .unchoked = !p->am_choking, .optimistic = p->optimistic,
    };
  }
  struct choker_config cfg = { .slots = t->session->cfg.upload_slots, .seeding = t->state == TORRENT_SEEDING };
  choker_decide(cp, n, &cfg, rotate, randombytes_random());
  for (size_t i = 0; i < n; i++) {
    struct peer *p = cp[i].ctx;
    p->optimistic = cp[i].optimistic;
    set_choke(t, p, !cp[i].unchoked);
  }
}

/* ---- messages ---- */

/* Metadata phase: what a peer has is kept as raw bits until the piece
 * count is known.  Grows them to at least `need` bytes, zero-filled (the
 * buffer's max, WIRE_MAX_BITFIELD, bounds them). */
static int md_bits_grow(struct peer *p, size_t need)
{
  size_t old = p->md_bits.len;
  if (need <= old)
    return 0;
  if (buf_reserve(&p->md_bits, need - old) < 0)
    return UV_ENOMEM;
  memset(p->md_bits.p + old, 0, need - old);
  p->md_bits.len = need;
  return 0;
}

static int md_note_have(struct peer *p, uint32_t index)
{
  size_t need = (size_t)index / 8 + 1;
  if (need > WIRE_MAX_BITFIELD)
    return SHOAL_EPROTO;
  int r = md_bits_grow(p, need);
  if (r < 0)
    return r;
  p->md_bits.p[index / 8] |= (uint8_t)(0x80u >> (index % 8));
  return 0;
}

/* p->have was just filled (bitfield, have-all, metadata): count it. */
static int took_bitfield(struct torrent *t, struct peer *p)
{
  picker_add_bitfield(t->picker, &p->have);
  p->seed = bitfield_complete(&p->have);
  if (p->seed && t->state == TORRENT_SEEDING)
    return SHOAL_EEXISTS;                       /* two seeds have nothing to trade */
  p->wanted = count_wanted(t, p);
  update_interest(t, p);
  return 0;
}

/* A BITFIELD or HAVE_ALL after other messages (aria2 sends a BITFIELD in
 * place of a run of HAVEs, and HAVE_ALL when it completes): every newly set
 * bit counts as a HAVE; cleared bits change nothing (no peer loses pieces).
 * bits NULL: all pieces. */
static int took_late_bitfield(struct torrent *t, struct peer *p, const uint8_t *bits, size_t len)
{
  struct bitfield late;
  if (bitfield_init(&late, t->m->num_pieces) < 0)
    return UV_ENOMEM;
  if (bits == NULL)
    bitfield_set_all(&late);
  else if (bitfield_load(&late, bits, len) != 0) {
    bitfield_free(&late);
    return SHOAL_EPROTO;                        /* wrong size or spare bits set */
  }
  for (uint32_t i = 0; i < t->m->num_pieces; i++) {
    if (!bitfield_get(&late, i) || bitfield_get(&p->have, i))
      continue;
    bitfield_set(&p->have, i);
    picker_add_have(t->picker, i);
    if (!bitfield_get(&t->have, i))
      p->wanted++;
  }
  bitfield_free(&late);
  p->seed = bitfield_complete(&p->have);
  if (p->seed && t->state == TORRENT_SEEDING)
    return SHOAL_EEXISTS;                       /* two seeds have nothing to trade */
  update_interest(t, p);
  fill_requests(t, p);
  return 0;
}

static int on_reject(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  for (unsigned i = 0; i < p->nreqs; i++) {
    if (p->reqs[i].piece == m->index && p->reqs[i].begin == m->begin && p->reqs[i].length == m->length) {
      picker_unrequest(t->picker, m->index, m->begin, p->id);
      drop_request_at(p, i);
      fill_requests(t, p);
      return 0;
    }
  }
  if (was_cancelled(p, m))
    return 0;
  return ++p->unrequested > PEER_MAX_UNREQUESTED ? SHOAL_EPROTO : 0;   /* rejects what we never asked */
}

int torrent__on_message(struct torrent *t, struct peer *p, const struct wire_msg *m)
{
  bool first = p->got_bitfield_slot;
  if (m->id != WIRE_EXTENDED && m->id != WIRE_PORT)
    p->got_bitfield_slot = false;              /* some clients say hello before their bitfield */
  bool fast_id = m->id >= WIRE_SUGGEST && m->id <= WIRE_ALLOWED_FAST;
  if (fast_id && !p->fast)
    return SHOAL_EPROTO;                        /* BEP 6 messages without BEP 6 */
  if (!t->has_metadata) {
    switch (m->id) {
    case WIRE_HAVE:
      return md_note_have(p, m->index);
    case WIRE_BITFIELD: {
      /* first or late (then OR-ed in): checked once the piece count is known */
      int r = md_bits_grow(p, m->payload_len);
      if (r < 0)
        return r;
      for (size_t i = 0; i < m->payload_len; i++)
        p->md_bits.p[i] |= m->payload[i];
      return 0;
    }
    case WIRE_HAVE_ALL:
      p->md_have_all = true;
      return 0;
    case WIRE_HAVE_NONE:
      return first ? 0 : SHOAL_EPROTO;
    case WIRE_REQUEST:
      return SHOAL_EPROTO;                      /* we announced nothing */
    case WIRE_PIECE:
      return ++p->unrequested > PEER_MAX_UNREQUESTED ? SHOAL_EPROTO : 0;
    case WIRE_ALLOWED_FAST:
      return 0;                                 /* cannot be checked yet */
    default:
      break;                                    /* choke state, extensions: as usual */
    }
  }
  switch (m->id) {
  case WIRE_KEEPALIVE:
    return 0;
  case WIRE_CHOKE:
    p->peer_choking = true;
    if (!p->fast)
      unrequest_all(t, p);                      /* BEP 3: dropped; BEP 6 peers reject explicitly */
    return 0;
  case WIRE_UNCHOKE:
    p->peer_choking = false;
    fill_requests(t, p);
    return 0;
  case WIRE_INTERESTED:
    p->peer_interested = true;
    if (p->am_choking && unchoked_count(t) < t->session->cfg.upload_slots)
      set_choke(t, p, false);
    return 0;
  case WIRE_NOT_INTERESTED:
    p->peer_interested = false;
    if (!p->am_choking) {
      set_choke(t, p, true);
      run_choker(t, false);
    }
    return 0;
  case WIRE_HAVE:
    if (bitfield_get(&p->have, m->index))
      return 0;
    bitfield_set(&p->have, m->index);
    picker_add_have(t->picker, m->index);
    if (!bitfield_get(&t->have, m->index)) {
      p->wanted++;
      update_interest(t, p);
      fill_requests(t, p);
    }
    if (bitfield_complete(&p->have))
      p->seed = true;
    if (p->seed && t->state == TORRENT_SEEDING)
      return SHOAL_EEXISTS;                     /* two seeds have nothing to trade */
    return 0;
  case WIRE_BITFIELD:
    if (!first)
      return took_late_bitfield(t, p, m->payload, m->payload_len);
    if (bitfield_load(&p->have, m->payload, m->payload_len) != 0)
      return SHOAL_EPROTO;
    return took_bitfield(t, p);
  case WIRE_HAVE_ALL:
    if (!first)
      return took_late_bitfield(t, p, NULL, 0);
    bitfield_set_all(&p->have);
    return took_bitfield(t, p);
  case WIRE_HAVE_NONE:
    return first ? 0 : SHOAL_EPROTO;
  case WIRE_REQUEST:
    return on_request(t, p, m);
  case WIRE_PIECE:
    return on_block(t, p, m);
  case WIRE_CANCEL:
    on_cancel(p, m);
    return 0;
  case WIRE_REJECT:
    return on_reject(t, p, m);
  case WIRE_ALLOWED_FAST:
    for (unsigned i = 0; i < p->nallowed_in; i++)
      if (p->allowed_in[i] == m->index)
        return 0;
    if (p->nallowed_in < PEER_MAX_ALLOWED_FAST)
      p->allowed_in[p->nallowed_in++] = m->index;
    fill_requests(t, p);
    return 0;
  case WIRE_SUGGEST:
    return 0;                                   /* advice we do not need */
  case WIRE_EXTENDED:
    if (!p->extended)
      return 0;
    return exchange__on_extended(t, p, m);
  default:
    return 0;                                   /* PORT, unknown: ignored */
  }
}

/* ---- peer lifecycle ---- */

/* Tells a peer what we have, the way it understands best. */
static void send_have_state(struct torrent *t, struct peer *p)
{
  uint8_t m[5];
  if (p->fast && (!t->has_metadata || t->have.count == 0)) {
    peer__send(p, m, ext_put_have_none(m));
    return;
  }
  if (p->fast && bitfield_complete(&t->have)) {
    peer__send(p, m, ext_put_have_all(m));
    return;
  }
  if (!t->has_metadata || t->have.count == 0)
    return;
  struct buf b;
  buf_init(&b, bitfield_bytes(t->m->num_pieces) + 5);
  if (wire_put_bitfield(&b, &t->have) == 0)
    peer__send(p, b.p, b.len);
  buf_free(&b);
}

/* BEP 6: pieces a peer may have from us while we choke it (IPv4 peers). */
static void send_allowed_fast(struct torrent *t, struct peer *p)
{
  if (!p->fast || !t->has_metadata || t->have.count == 0)
    return;
  uint32_t set[EXT_ALLOWED_FAST_K];
  int n = ext_allowed_fast((const struct sockaddr *)&p->addr, t->m->infohash, t->m->num_pieces,
                           EXT_ALLOWED_FAST_K, set);
  p->nallowed_out = 0;
  for (int i = 0; i < n; i++) {
    if (!bitfield_get(&t->have, set[i]))
      continue;
    p->allowed_out[p->nallowed_out++] = set[i];
    uint8_t m[9];
    peer__send(p, m, ext_put_allowed_fast(m, set[i]));
  }
}

/* A HAVE for every piece we hold, in one write (a peer that had our
 * BITFIELD slot pass while the piece count was unknown). */
static void send_haves(struct torrent *t, struct peer *p)
{
  if (t->have.count == 0)
    return;
  uint8_t *d;
  void *w = peer__wreq_new((size_t)t->have.count * 9, &d);
  if (w == NULL) {
    peer__close(p, "out of memory");
    return;
  }
  for (uint32_t i = 0, n = 0; i < t->m->num_pieces && n < t->have.count; i++) {
    if (bitfield_get(&t->have, i)) {
      d += wire_put_have(d, i);
      n++;
    }
  }
  peer__wreq_send(p, w);
}

static int start_active(struct torrent *t, struct peer *p, const struct wire_handshake *h)
{
  int r = bitfield_init(&p->have, t->has_metadata ? t->m->num_pieces : 0);
  if (r < 0)
    return r;
  if ((r = alloc_peer_id(t, &p->id)) < 0)
    return r;
  p->registered = true;
  p->id_assigned = true;
  p->state = PEER_ACTIVE;
  p->got_bitfield_slot = true;
  t->fds_used = true;                          /* it may make us read or write files */
  uint8_t ours[8] = { 0 };
  ext_reserved_set(ours);
  p->fast = ext_supports_fast(h->reserved) && ext_supports_fast(ours);
  p->extended = ext_supports_extended(h->reserved) && ext_supports_extended(ours);
  size_t bf = t->has_metadata ? bitfield_bytes(t->m->num_pieces) + 5 : WIRE_MAX_BITFIELD + 5;
  p->rbuf.max = MAX(PEER_RBUF_INITIAL, MAX(bf, (size_t)WIRE_MAX_EXTENDED + 5) + 16384);
  send_have_state(t, p);                       /* BEP 6: must come first */
  if (p->extended)
    exchange__send_handshake(t, p);
  send_allowed_fast(t, p);
  return 0;
}

/* Two connections to one peer (both dialled at once): both sides keep the
 * one opened by the smaller peer id. */
static struct peer *duplicate_of(struct torrent *t, struct peer *p)
{
  for (struct peer *o = t->peers; o; o = o->next)
    if (o != p && o->state == PEER_ACTIVE && memcmp(o->peer_id, p->peer_id, 20) == 0)
      return o;
  return NULL;
}

static int resolve_duplicate(struct torrent *t, struct peer *p)
{
  struct peer *o = duplicate_of(t, p);
  if (o == NULL)
    return 0;
  const uint8_t *own = t->session->peer_id;
  const uint8_t *init_new = p->outgoing ? own : p->peer_id;
  const uint8_t *init_old = o->outgoing ? own : o->peer_id;
  if (init_new == init_old || memcmp(init_old, init_new, 20) < 0)
    return SHOAL_EEXISTS;                         /* keep the old one */
  peer__close(o, "duplicate connection");
  return 0;
}

int torrent__handshake_done(struct torrent *t, struct peer *p, const struct wire_handshake *h)
{
  if (memcmp(h->infohash, t->m->infohash, 20) != 0)
    return SHOAL_EPROTO;
  memcpy(p->peer_id, h->peer_id, 20);
  if (is_banned(t, p->peer_id))
    return SHOAL_EPROTO;
  int r = resolve_duplicate(t, p);
  if (r < 0)
    return r;
  if (p->entry)
    p->entry->fails = 0;
  t->no_fds_since = 0;
  LOG_INFO("peer %s: connected (outgoing)", p->name);
  return start_active(t, p, h);
}

int torrent__attach_incoming(struct session *s, struct peer *p, const struct wire_handshake *h)
{
  struct torrent *t;
  for (t = s->torrents; t; t = t->next)
    if (memcmp(t->m->infohash, h->infohash, 20) == 0)
      break;
  if (t == NULL)
    return SHOAL_ENOTFOUND;
  if (t->state != TORRENT_DOWNLOADING && t->state != TORRENT_SEEDING && t->state != TORRENT_METADATA)
    return SHOAL_ENOTFOUND;
  if (t->npeers >= t->max_peers)
    return UV_EMFILE;
  if (is_banned(t, h->peer_id))
    return SHOAL_EPROTO;
  session__peer_unpend(s, p);
  link_peer(t, p);
  memcpy(p->peer_id, h->peer_id, 20);
  int r = resolve_duplicate(t, p);
  if (r < 0)
    return r;
  LOG_INFO("peer %s: connected (incoming)", p->name);
  peer__send_handshake(p);
  return start_active(t, p, h);
}

void torrent__peer_gone(struct torrent *t, struct peer *p)
{
  uint64_t now = engine__now(t->session);
  bool was_unchoked = !p->am_choking;
  if (p->registered) {
    if (t->picker) {
      unrequest_all(t, p);
      if (p->have.nbits == t->m->num_pieces)
        picker_remove_bitfield(t->picker, &p->have);
    }
    /* metadata pieces it still owed us time out and are asked of others */
    t->id_used[p->id >> 3] &= (uint8_t)~(1u << (p->id & 7));
    p->registered = false;
  }
  if (p->entry) {
    struct addr_entry *e = p->entry;
    e->connected = false;
    e->seed = p->seed;
    bool worked = p->id_assigned;
    e->fails = worked ? 0 : (uint16_t)MIN(e->fails + 1, 16);
    uint64_t base = e->manual ? 1000 : 5000, cap = e->manual ? 30000 : 600000;
    uint64_t delay = worked ? 5000 : MIN(cap, base << MIN(e->fails, 10));
    e->next_try_ms = now + delay;
    p->entry = NULL;
  }
  unlink_peer(t, p);
  p->torrent = NULL;
  if (was_unchoked && t->state != TORRENT_STOPPING)
    t->rechoke = true;
  /* the last peer left: no file needs to stay open (unless no peer got far
   * enough to read or write since they were last closed: failed dials) */
  if (t->peers == NULL && t->fds_used && t->storage &&
      (t->state == TORRENT_SEEDING || t->state == TORRENT_DOWNLOADING)) {
    storage_release_fds(t->storage);
    t->fds_used = false;
  }
}

/* ---- connecting out ---- */

static void try_connect(struct torrent *t)
{
  if (t->state != TORRENT_DOWNLOADING && t->state != TORRENT_SEEDING && t->state != TORRENT_METADATA)
    return;
  uint64_t now = engine__now(t->session);
  unsigned max = t->max_peers;
  for (unsigned k = 0; k < t->book.n && t->npeers < max && t->half_open < TORRENT_MAX_HALF_OPEN &&
                       !session__full(t->session); k++) {
    unsigned i = (t->addr_cursor + k) % t->book.n;
    struct addr_entry *e = addrbook_at(&t->book, i);
    if (e->connected || e->banned || e->self || e->next_try_ms > now || (e->seed && t->state == TORRENT_SEEDING))
      continue;
    struct peer *p = peer__new(t->session, t, (struct sockaddr *)&e->addr, true);
    if (p == NULL)
      return;
    link_peer(t, p);
    p->entry = e;
    e->connected = true;
    t->half_open++;
    int r = peer__connect(p);
    if (r == UV_EMFILE || r == UV_ENFILE) {
      if (t->no_fds_since == 0) {
        LOG_WARN("%s: cannot connect to peers: %s", t->m->name, uv_strerror(r));
        t->no_fds_since = now ? now : 1;
      }
      peer__close(p, uv_strerror(r));
      break;                                   /* no point trying the others now */
    }
    if (r < 0)
      peer__close(p, uv_strerror(r));
  }
  if (t->book.n)
    t->addr_cursor = (t->addr_cursor + 1) % t->book.n;
}

/* ---- the torrent's clock ---- */

static void on_tick(uv_timer_t *h)
{
  struct torrent *t = container_of(h, struct torrent, tick);
  uint64_t now = engine__now(t->session);
  t->ticks++;
  rate_tick(&t->down, t->ticks);
  rate_tick(&t->up, t->ticks);

  struct peer *next;
  for (struct peer *p = t->peers; p; p = next) {
    next = p->next;
    peer__tick(p, now);
    if (p->state != PEER_ACTIVE || t->picker == NULL)
      continue;
    /* a peer that keeps our requests and sends nothing: ask others */
    if (p->nreqs > 0) {
      uint64_t since = MAX(p->last_block_ms, p->reqs[0].sent_ms);
      if (now - since > PEER_SNUB_MS) {
        LOG_DEBUG("peer %s: snubbed us, re-requesting its blocks elsewhere", p->name);
        p->snubbed = true;
        cancel_all(t, p);
        p->target_reqs = PEER_MIN_PIPELINE;
        for (struct peer *o = t->peers; o; o = o->next)
          if (o != p)
            fill_requests(t, o);
        continue;
      }
    }
    /* pipeline depth follows the peer's rate: about a second of data */
    uint64_t blocks = p->down.per_s / PICKER_BLOCK_SIZE;
    p->target_reqs = (unsigned)MIN((uint64_t)PEER_MAX_PIPELINE, MAX((uint64_t)PEER_MIN_PIPELINE, blocks + PEER_MIN_PIPELINE));
    fill_requests(t, p);
  }
  if (t->ticks % (CHOKER_INTERVAL_MS / TORRENT_TICK_MS) == 0) {
    unsigned round = t->ticks / (CHOKER_INTERVAL_MS / TORRENT_TICK_MS);
    run_choker(t, round % CHOKER_OPTIMISTIC_EVERY == 0);
    t->rechoke = false;
  } else if (t->rechoke) {
    run_choker(t, false);
    t->rechoke = false;
  }
  exchange__tick(t, now);
  try_connect(t);
  if (t->no_fds_since && now - t->no_fds_since > TORRENT_NO_FDS_FAIL_MS) {
    unsigned active = 0;
    for (struct peer *p = t->peers; p; p = p->next)
      active += p->state == PEER_ACTIVE;
    if (active == 0 && t->state == TORRENT_DOWNLOADING)
      fail_torrent(t, UV_EMFILE, "cannot connect to any peer");
    t->no_fds_since = 0;
  }
}

/* ---- states ---- */

static void on_finished(void *ctx, int status)
{
  struct torrent *t = ctx;
  if (t->state != TORRENT_SEEDING)
    return;
  if (status < 0) {
    fail_torrent(t, status, "cannot create empty files");
    return;
  }
  LOG_INFO("%s: complete", t->m->name);
  if (t->announce && !t->announced_complete && t->down.total > 0)
    announce_completed(t->announce);
  t->announced_complete = true;
  if (t->ev.complete)
    t->ev.complete(t, t->ev_ctx);
}

static void become_seed(struct torrent *t)
{
  t->state = TORRENT_SEEDING;
  struct peer *next;
  for (struct peer *p = t->peers; p; p = next) {
    next = p->next;
    if (p->state != PEER_ACTIVE)
      continue;
    if (p->seed) {
      peer__close(p, "both have everything");
      continue;
    }
    cancel_all(t, p);                /* endgame duplicates still out */
    update_interest(t, p);
  }
  run_choker(t, false);
  if (storage_finish(t->storage, on_finished, t) < 0)
    on_finished(t, 0);
}

static void announce_stats(void *ctx, uint64_t *up, uint64_t *down, uint64_t *left)
{
  struct torrent *t = ctx;
  *up = t->up.total;
  *down = t->down.total;
  *left = t->picker ? picker_wanted_bytes_left(t->picker) : 1;   /* unknown yet, but not a seed */
}

static void announce_peers(void *ctx, const struct sockaddr_storage *peers, size_t n)
{
  struct torrent *t = ctx;
  for (size_t i = 0; i < n; i++)
    torrent_add_peer(t, (const struct sockaddr *)&peers[i], false);
}

static void announce_status(void *ctx, const char *url, const char *message)
{
  struct torrent *t = ctx;
  LOG_INFO("tracker %s: %s", url, message);
  if (t->ev.tracker)
    t->ev.tracker(t, url, message, t->ev_ctx);
}

static void on_check_progress(void *ctx, uint32_t done)
{
  struct torrent *t = ctx;
  t->checks_done = done;
}

static void start_announcing(struct torrent *t)
{
  if (t->announce || t->m->num_tiers == 0)
    return;
  struct announce_params ap = { .port = t->session->port, .min_interval_floor_s = t->session->cfg.announce_floor_s };
  memcpy(ap.infohash, t->m->infohash, 20);
  memcpy(ap.peer_id, t->session->peer_id, 20);
  struct announce_cbs cbs = { announce_stats, announce_peers, announce_status };
  if (announce_new(t->session->loop, t->session->http, t->m->tiers, t->m->num_tiers, &ap, &cbs, t, &t->announce) == 0)
    announce_start(t->announce);
}

static void on_checked(void *ctx, int status)
{
  struct torrent *t = ctx;
  if (t->state != TORRENT_CHECKING)
    return;
  if (status < 0) {
    fail_torrent(t, status, "cannot check existing data");
    return;
  }
  t->checks_done = t->m->num_pieces;
  int blocked = storage_blocked_file(t->storage);
  if (blocked >= 0 && (t->file_prio == NULL || t->file_prio[blocked])) {
    char path[1024], msg[1200];
    if (storage_file_path(t->storage, (uint32_t)blocked, path, sizeof path) < 0)
      snprintf(path, sizeof path, "%s", t->m->files[blocked].path);
    snprintf(msg, sizeof msg, "cannot write %s: a folder, link or special file is in its place", path);
    fail_torrent_msg(t, SHOAL_EPATH, msg);
    return;
  }
  for (uint32_t i = 0; i < t->m->num_pieces; i++) {
    if (!bitfield_get(&t->have, i))
      continue;
    picker_have(t->picker, i);
    if (!whole_on_disk(t, i))
      bitfield_clear(&t->have, i);             /* held, but part of it is not kept: not announced */
  }
  count_files_missing(t);
  t->fds_used = true;                          /* the check opened every file ... */
  if (t->peers == NULL) {
    storage_release_fds(t->storage);           /* ... and nobody needs them now */
    t->fds_used = false;
  }
  LOG_INFO("%s: %u of %u pieces already here", t->m->name, t->have.count, t->m->num_pieces);
  t->state = TORRENT_DOWNLOADING;
  if (!uv_is_active((uv_handle_t *)&t->tick))
    uv_timer_start(&t->tick, on_tick, TORRENT_TICK_MS, TORRENT_TICK_MS);
  start_announcing(t);
  /* peers met while the metadata was fetched learn what we hold now */
  for (struct peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_ACTIVE)
      continue;
    send_haves(t, p);
    p->wanted = count_wanted(t, p);
  }
  if (t->ev.checked)
    t->ev.checked(t, t->ev_ctx);
  if (t->state != TORRENT_DOWNLOADING)
    return;
  if (picker_done(t->picker)) {
    t->announced_complete = true;   /* we start as a seed: no `completed` event */
    become_seed(t);
    return;
  }
  for (struct peer *p = t->peers; p; p = p->next)
    if (p->state == PEER_ACTIVE)
      update_interest(t, p);
  try_connect(t);
}

int torrent_start(struct torrent *t)
{
  if (!t->has_metadata) {
    t->state = TORRENT_METADATA;
    uv_timer_start(&t->tick, on_tick, TORRENT_TICK_MS, TORRENT_TICK_MS);
    start_announcing(t);
    try_connect(t);
    return 0;
  }
  t->state = TORRENT_CHECKING;
  if (t->skip_check) {
    bitfield_set_all(&t->have);
    on_checked(t, 0);
    return 0;
  }
  if (t->use_resume) {
    /* trusted pieces stay set; only the ones to recheck are read */
    bitfield_copy(&t->have, &t->resume_have);
    int r = storage_check_some(t->storage, &t->have, &t->recheck, on_check_progress, on_checked, t);
    /* used once: the check keeps its own copy of the mask */
    bitfield_free(&t->resume_have);
    bitfield_free(&t->recheck);
    t->use_resume = false;
    return r;
  }
  return storage_check(t->storage, &t->have, on_check_progress, on_checked, t);
}

/* ---- controls ---- */

void torrent__rate_retry(struct torrent *t)
{
  if (t->state != TORRENT_DOWNLOADING && t->state != TORRENT_SEEDING)
    return;
  for (struct peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_ACTIVE)
      continue;
    fill_requests(t, p);
    torrent__serve(t, p);
  }
}

void torrent_set_rate_limits(struct torrent *t, uint64_t down, uint64_t up)
{
  uint64_t now = engine__now(t->session);
  ratelimit_set_rate(&t->rl_down, down, 0, now);
  ratelimit_set_rate(&t->rl_up, up, 0, now);
  t->rl_wait = true;
  session__rate_wait(t->session);
}

void torrent_set_max_peers(struct torrent *t, unsigned n) { t->max_peers = n ? n : 1; }

void torrent_set_sequential(struct torrent *t, bool on)
{
  t->sequential = on;
  if (t->picker)
    picker_set_sequential(t->picker, on);
}

const char *torrent_download_dir(const struct torrent *t) { return t->dir; }
const uint8_t *torrent_file_priorities(const struct torrent *t) { return t->file_prio; }

int torrent_copy_have(const struct torrent *t, struct bitfield *out)
{
  if (!t->has_metadata || t->picker == NULL)
    return UV_EAGAIN;
  if (bitfield_init(out, t->m->num_pieces) < 0)
    return UV_ENOMEM;
  if (t->state == TORRENT_CHECKING)
    return 0;                                  /* not known yet: nothing vouched for */
  for (uint32_t i = 0; i < t->m->num_pieces; i++)
    if (picker_has(t->picker, i))
      bitfield_set(out, i);
  return 0;
}

unsigned torrent_get_peers(const struct torrent *t, struct torrent_peer_info *out, unsigned max)
{
  unsigned n = 0;
  for (const struct peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_ACTIVE)
      continue;
    if (n < max) {
      struct torrent_peer_info *o = &out[n];
      memset(o, 0, sizeof *o);
      snprintf(o->address, sizeof o->address, "%s", p->name);
      size_t k = 0;
      for (const char *c = p->ext.v; *c && k + 1 < sizeof o->client; c++)
        o->client[k++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
      o->client[k] = 0;
      o->outgoing = p->outgoing;
      o->seed = p->seed;
      o->am_choking = p->am_choking;
      o->am_interested = p->am_interested;
      o->peer_choking = p->peer_choking;
      o->peer_interested = p->peer_interested;
      o->have_pieces = p->have.bits ? p->have.count : 0;
      o->downloaded = p->down.total;
      o->uploaded = p->up.total;
      o->down_rate = p->down.per_s;
      o->up_rate = p->up.per_s;
    }
    n++;
  }
  return n;
}

void torrent_get_stats(const struct torrent *t, struct torrent_stats *st)
{
  memset(st, 0, sizeof *st);
  st->state = t->state;
  st->total_bytes = t->m->total_length;
  st->have_bytes = t->picker ? picker_have_bytes(t->picker) : 0;
  st->metadata_have = t->md.nhave;
  st->metadata_pieces = t->md.npieces;
  if (t->picker && t->have.count < t->m->num_pieces)
    st->total_bytes = st->have_bytes + picker_wanted_bytes_left(t->picker);   /* wanted files only */
  st->have_pieces = t->have.count;
  st->num_pieces = t->m->num_pieces;
  st->checked_pieces = t->checks_done;
  st->downloaded = t->down.total;
  st->uploaded = t->up.total;
  st->wasted = t->wasted;
  st->down_rate = t->down.per_s;
  st->up_rate = t->up.per_s;
  st->known_addrs = t->book.n;
  for (const struct peer *p = t->peers; p; p = p->next) {
    if (p->state != PEER_ACTIVE)
      continue;
    st->peers++;
    st->seeds += p->seed;
  }
}

/* ---- creation and teardown ---- */

/* What needs the piece count: the picker, piece buffers, our bitfield, storage. */
static int setup_pieces(struct torrent *t)
{
  struct manifest *m = t->m;
  t->pbuf = calloc(m->num_pieces, sizeof *t->pbuf);
  t->picker = picker_new(m->num_pieces, m->piece_length, m->total_length);
  bitfield_free(&t->have);
  if (t->pbuf == NULL || t->picker == NULL || bitfield_init(&t->have, m->num_pieces) < 0)
    return UV_ENOMEM;
  picker_set_max_active(t->picker, MAX(2u, TORRENT_ACTIVE_BYTES / m->piece_length));
  picker_set_sequential(t->picker, t->sequential);
  return storage_open(&t->storage, t->session->loop, m, t->dir);
}

int torrent__new(struct session *s, struct manifest *m, const struct torrent_opts *opts,
                 const struct torrent_events *ev, void *ctx, struct torrent **out)
{
  struct torrent *t = calloc(1, sizeof *t);
  if (t == NULL) {
    manifest_free(m);
    return UV_ENOMEM;
  }
  t->session = s;
  t->m = m;
  t->has_metadata = m->info != NULL;
  t->state = t->has_metadata ? TORRENT_CHECKING : TORRENT_METADATA;
  if (ev)
    t->ev = *ev;
  t->ev_ctx = ctx;
  t->skip_check = opts->skip_check;
  t->max_peers = s->cfg.max_peers;
  t->sequential = opts->sequential;
  ratelimit_init(&t->rl_down, 0, 0, uv_now(s->loop));
  ratelimit_init(&t->rl_up, 0, 0, uv_now(s->loop));
  ext_md_asm_init(&t->md, m->infohash);
  t->dir = strdup(opts->download_dir ? opts->download_dir : ".");
  int br = addrbook_init(&t->book, ADDRBOOK_MAX);
  int r = UV_ENOMEM;
  if (t->dir == NULL || br < 0)
    goto fail;
  if (t->has_metadata && (r = setup_pieces(t)) < 0)
    goto fail;
  if (t->has_metadata && opts->resume_have && !opts->skip_check) {
    r = UV_EINVAL;
    uint32_t n = m->num_pieces;
    if (opts->resume_have->nbits != n || (opts->recheck && opts->recheck->nbits != n))
      goto fail;
    r = UV_ENOMEM;
    if (bitfield_dup(&t->resume_have, opts->resume_have) < 0 ||
        (opts->recheck ? bitfield_dup(&t->recheck, opts->recheck) : bitfield_init(&t->recheck, n)) < 0)
      goto fail;
    t->use_resume = true;
  }
  uv_timer_init(s->loop, &t->tick);
  *out = t;
  return 0;
fail:
  torrent__free(t);
  return r;
}

/* A peer's bits, kept raw while the piece count was unknown, become its
 * bitfield; a bitfield that does not fit the torrent is a protocol error. */
static int adopt_md_bits(struct torrent *t, struct peer *p)
{
  uint32_t n = t->m->num_pieces;
  bitfield_free(&p->have);
  if (bitfield_init(&p->have, n) < 0)
    return UV_ENOMEM;
  if (p->md_have_all) {
    bitfield_set_all(&p->have);
  } else if (p->md_bits.len) {
    size_t need = bitfield_bytes(n);
    if (p->md_bits.len > need)
      return SHOAL_EPROTO;
    int r = md_bits_grow(p, need);
    if (r < 0)
      return r;
    if (bitfield_load(&p->have, p->md_bits.p, need) < 0)
      return SHOAL_EPROTO;
  }
  buf_free(&p->md_bits);
  picker_add_bitfield(t->picker, &p->have);
  p->seed = bitfield_complete(&p->have);
  return 0;
}

/* Checking a magnet's info dict: one SHA-1 (the parse computes the
 * infohash) on the threadpool; the assembler's buffer is borrowed until the
 * job is back (it takes no more pieces meanwhile, and the torrent is not
 * freed while jobs are in flight). */
struct md_job {
  uv_work_t req;
  struct torrent *t;
  const uint8_t *info;
  uint32_t size;
  uint8_t infohash[20];
  struct manifest *full;       /* parsed and matching */
  bool mismatch;               /* its SHA-1 is not the infohash */
  int err;
  char msg[SHOAL_ERRLEN];
};

static void md_work(uv_work_t *req)
{
  struct md_job *j = container_of(req, struct md_job, req);
  j->err = manifest_parse_info(j->info, j->size, &j->full, j->msg, sizeof j->msg);
  if (j->err == 0) {
    j->mismatch = memcmp(j->full->infohash, j->infohash, 20) != 0;
  } else {
    uint8_t h[HASH_SHA1_LEN];                  /* unparsable: garbage, or a bad dict that matches? */
    hash_sha1(j->info, j->size, h);
    j->mismatch = memcmp(h, j->infohash, 20) != 0;
    j->full = NULL;
  }
  if (j->mismatch && j->full) {
    manifest_free(j->full);
    j->full = NULL;
  }
}

static void set_metadata(struct torrent *t, struct manifest *full);

static void md_done(uv_work_t *req, int status)
{
  struct md_job *j = container_of(req, struct md_job, req);
  struct torrent *t = j->t;
  struct manifest *full = j->full;
  t->jobs_in_flight--;
  if (t->state == TORRENT_STOPPING || t->state == TORRENT_ERROR || status < 0) {
    if (full)
      manifest_free(full);
    ext_md_asm_restart(&t->md);
    if (t->state == TORRENT_STOPPING)
      maybe_stopped(t);
  } else if (j->mismatch) {
    LOG_WARN("%s: the metadata received does not match the infohash; fetching it again", t->m->name);
    ext_md_asm_restart(&t->md);               /* the tick asks peers again */
  } else if (full == NULL) {
    LOG_ERROR("%s: the torrent's metadata is invalid: %s", t->m->name, j->msg);
    fail_torrent(t, j->err, "invalid metadata");
  } else {
    set_metadata(t, full);
  }
  free(j);
}

void torrent__verify_metadata(struct torrent *t)
{
  struct md_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    ext_md_asm_restart(&t->md);
    return;
  }
  j->t = t;
  j->info = t->md.data;
  j->size = t->md.size;
  memcpy(j->infohash, t->m->infohash, 20);
  if (uv_queue_work(t->session->loop, &j->req, md_work, md_done) < 0) {
    free(j);
    ext_md_asm_restart(&t->md);
    return;
  }
  t->jobs_in_flight++;
}

static void set_metadata(struct torrent *t, struct manifest *full)
{
  int r;
  /* keep the trackers the magnet link named */
  full->tiers = t->m->tiers;
  full->num_tiers = t->m->num_tiers;
  t->m->tiers = NULL;
  t->m->num_tiers = 0;
  manifest_free(t->m);
  t->m = full;
  t->has_metadata = true;
  ext_md_asm_free(&t->md);
  LOG_INFO("%s: metadata received: %u pieces, %u files", full->name, full->num_pieces, full->num_files);
  if ((r = setup_pieces(t)) < 0) {
    fail_torrent(t, r, "cannot set up the download");
    return;
  }
  struct peer *next;
  for (struct peer *p = t->peers; p; p = next) {
    next = p->next;
    if (p->state != PEER_ACTIVE)
      continue;
    if ((r = adopt_md_bits(t, p)) < 0)
      peer__close(p, "its bitfield does not fit the torrent");
  }
  t->state = TORRENT_CHECKING;
  if (t->ev.metadata)
    t->ev.metadata(t, t->ev_ctx);
  if (t->state != TORRENT_CHECKING)
    return;                                    /* the program stopped us */
  if ((r = storage_check(t->storage, &t->have, on_check_progress, on_checked, t)) < 0)
    fail_torrent(t, r, "cannot check existing data");
}

int torrent_set_file_priorities(struct torrent *t, const uint8_t *prio, uint32_t n)
{
  if (!t->has_metadata || t->picker == NULL)
    return UV_EAGAIN;
  const struct manifest *m = t->m;
  if (n != m->num_files)
    return UV_EINVAL;
  uint8_t *copy = malloc(n ? n : 1);
  if (copy == NULL)
    return UV_ENOMEM;                          /* nothing changed */
  memcpy(copy, prio, n);
  free(t->file_prio);
  t->file_prio = copy;
  for (uint32_t piece = 0; piece < m->num_pieces; piece++) {
    uint8_t best = 0;
    uint32_t f, e;
    piece_files(m, piece, &f, &e);
    for (; f < e; f++)
      if (has_data(m, f))
        best = MAX(best, prio[f]);
    picker_set_priority(t->picker, piece, best);
  }
  for (uint32_t f = 0; f < n; f++)
    storage_set_skip(t->storage, f, prio[f] == 0);
  if (t->state != TORRENT_DOWNLOADING && t->state != TORRENT_SEEDING)
    return 0;                                  /* the check applies them when it ends */
  /* a piece held but cut short by a file that was skipped and is wanted now
   * lacks those bytes on disk: fetch it again */
  for (uint32_t piece = 0; piece < m->num_pieces; piece++)
    if (picker_has(t->picker, piece) && !bitfield_get(&t->have, piece) && whole_on_disk(t, piece))
      picker_unhave(t->picker, piece);
  count_files_missing(t);
  if (t->state == TORRENT_SEEDING && !picker_done(t->picker)) {
    LOG_INFO("%s: more files wanted: downloading again", m->name);
    t->state = TORRENT_DOWNLOADING;
    for (struct peer *p = t->peers; p; p = p->next) {
      if (p->state != PEER_ACTIVE)
        continue;
      p->wanted = count_wanted(t, p);
      update_interest(t, p);
    }
    try_connect(t);
  } else if (t->state == TORRENT_DOWNLOADING && picker_done(t->picker)) {
    become_seed(t);
  }
  return 0;
}

static void free_pbufs(struct torrent *t)
{
  if (t->pbuf)
    for (uint32_t i = 0; i < t->m->num_pieces; i++)
      free(t->pbuf[i]);
  free(t->pbuf);
  t->pbuf = NULL;
}

struct manifest *torrent__take_manifest(struct torrent *t)
{
  if (!t->has_metadata)
    return NULL;
  free_pbufs(t);                               /* the last user of the piece count */
  struct manifest *m = t->m;
  t->m = NULL;
  return m;
}

void torrent__free(struct torrent *t)
{
  free_pbufs(t);
  if (t->picker)
    picker_free(t->picker);
  bitfield_free(&t->have);
  ext_md_asm_free(&t->md);
  free(t->pex_prev);
  free(t->file_prio);
  free(t->file_missing);
  bitfield_free(&t->resume_have);
  bitfield_free(&t->recheck);
  for (unsigned k = 0; k < TORRENT_MAX_SUSPECTS; k++)
    suspect_free(&t->suspects[k]);
  free(t->banned);
  addrbook_free(&t->book);
  free(t->id_used);
  free(t->dir);
  manifest_free(t->m);
  free(t);
}

static void maybe_stopped(struct torrent *t)
{
  if (t->stop_pending > 0 || t->writes_in_flight > 0 || t->jobs_in_flight > 0)
    return;
  void (*cb)(void *) = t->stopped_cb;
  void *ctx = t->stopped_ctx;
  t->stopped_cb = NULL;
  if (cb)
    cb(ctx);
}

static void on_stop_part(struct torrent *t)
{
  t->stop_pending--;
  maybe_stopped(t);
}

static void on_announce_stopped(void *ctx)
{
  struct torrent *t = ctx;
  announce_free(t->announce);   /* before the session closes the http client */
  t->announce = NULL;
  on_stop_part(t);
}
static void on_storage_closed(void *ctx) { ((struct torrent *)ctx)->storage = NULL; on_stop_part(ctx); }
static void on_tick_closed(uv_handle_t *h) { on_stop_part(container_of(h, struct torrent, tick)); }

void torrent__stop(struct torrent *t, void (*cb)(void *ctx), void *ctx)
{
  t->state = TORRENT_STOPPING;
  t->stopped_cb = cb;
  t->stopped_ctx = ctx;
  t->stop_pending = t->storage ? 2 : 1;   /* the tick timer, the storage */
  struct peer *next;
  for (struct peer *p = t->peers; p; p = next) {
    next = p->next;
    peer__close(p, "shutting down");
  }
  uv_close((uv_handle_t *)&t->tick, on_tick_closed);
  if (t->announce) {
    t->stop_pending++;
    announce_stop(t->announce, on_announce_stopped, t);
  }
  if (t->storage)
    storage_close(t->storage, on_storage_closed, t);
}
