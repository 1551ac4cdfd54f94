/* resume.c -- resume records: sealed bencode encode/parse, trust checks against file stamps, atomic write and bounded read. */
#include "peer/resume.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/bencode.h"
#include "common/err.h"
#include "common/hash.h"

#define NKEYS 20   /* content keys, all required */

void resume_free(struct resume *r)
{
  free(r->name);
  free(r->download_dir);
  free(r->error);
  free(r->files);
  free(r->peers);
  bitfield_free(&r->have);
  memset(r, 0, sizeof *r);
}

/* The rules shared by encode and parse, on a filled record. */
static int check_record(const struct resume *r, int code, char *err, size_t errlen)
{
  const char *dir = r->download_dir ? r->download_dir : "";
  size_t dl = strlen(dir);
  if (dl == 0 || dir[0] != '/')
    return shoal_fail(err, errlen, code, "resume: download dir must be an absolute path");
  if (dl > RESUME_MAX_STR)
    return shoal_fail(err, errlen, code, "resume: download dir longer than %u bytes", RESUME_MAX_STR);
  if (r->name && strlen(r->name) > RESUME_MAX_STR)
    return shoal_fail(err, errlen, code, "resume: name longer than %u bytes", RESUME_MAX_STR);
  if (r->error && strlen(r->error) > RESUME_MAX_ERROR)
    return shoal_fail(err, errlen, code, "resume: error text longer than %u bytes", RESUME_MAX_ERROR);
  if (r->added < 0)
    return shoal_fail(err, errlen, code, "resume: negative added time");
  if (r->state != RESUME_PAUSED && r->state != RESUME_ACTIVE)
    return shoal_fail(err, errlen, code, "resume: unknown state %u", r->state);
  if (r->uploaded > INT64_MAX || r->downloaded > INT64_MAX)
    return shoal_fail(err, errlen, code, "resume: byte counters out of range");
  if (r->seed_ratio_milli < -1 || r->seed_idle_s < -1)
    return shoal_fail(err, errlen, code, "resume: seed limits below -1");
  if (r->rate_down > RATELIMIT_MAX)
    return shoal_fail(err, errlen, code, "resume: rate_down above %llu bytes/s", (unsigned long long)RATELIMIT_MAX);
  if (r->rate_up > RATELIMIT_MAX)
    return shoal_fail(err, errlen, code, "resume: rate_up above %llu bytes/s", (unsigned long long)RATELIMIT_MAX);
  if (r->max_peers > RESUME_MAX_PEERS)
    return shoal_fail(err, errlen, code, "resume: max_peers %u above %u", r->max_peers, RESUME_MAX_PEERS);
  if (r->have.nbits > RESUME_MAX_PIECES)
    return shoal_fail(err, errlen, code, "resume: more than %u pieces", RESUME_MAX_PIECES);
  if (r->have.nbits && r->have.bits == NULL)
    return shoal_fail(err, errlen, code, "resume: bitfield missing");
  if (r->num_files > RESUME_MAX_FILES)
    return shoal_fail(err, errlen, code, "resume: more than %u files", RESUME_MAX_FILES);
  if (r->num_files && r->files == NULL)
    return shoal_fail(err, errlen, code, "resume: file list missing");
  for (uint32_t i = 0; i < r->num_files; i++) {
    const struct resume_file *f = &r->files[i];
    if (f->size < -1 || f->mtime_ns < 0 || f->mtime_ns > 999999999 || f->priority > 2)
      return shoal_fail(err, errlen, code, "resume: file %u: bad size, mtime or priority", i);
  }
  if (r->num_peers > RESUME_MAX_PEERS_SAVED)
    return shoal_fail(err, errlen, code, "resume: \"peers\" holds %u addresses, more than %u", r->num_peers,
                      RESUME_MAX_PEERS_SAVED);
  if (r->num_peers && r->peers == NULL)
    return shoal_fail(err, errlen, code, "resume: \"peers\" list missing");
  for (uint32_t i = 0; i < r->num_peers; i++) {
    const struct resume_peer *pe = &r->peers[i];
    if (pe->family != 4 && pe->family != 6)
      return shoal_fail(err, errlen, code, "resume: \"peers\" entry %u: family %u, not 4 or 6", i, pe->family);
    if (pe->port == 0)
      return shoal_fail(err, errlen, code, "resume: \"peers\" entry %u: port 0", i);
    if (pe->family == 4)
      for (int b = 4; b < 16; b++)
        if (pe->addr[b] != 0)
          return shoal_fail(err, errlen, code, "resume: \"peers\" entry %u: IPv4 address with bytes past the 4th", i);
  }
  return 0;
}

int resume_encode(const struct resume *r, struct buf *out, char *err, size_t errlen)
{
  buf_init(out, RESUME_MAX_FILE_SIZE);
  int rc = check_record(r, UV_EINVAL, err, errlen);
  if (rc)
    return rc;
  uint8_t rec[RESUME_FILE_RECORD];
  size_t off;
  if ((rc = buf_append_str(out, "d7:content")) != 0)
    goto out;
  off = out->len;
  if ((rc = bencode_put_dict(out)) || (rc = bencode_put_kv_int(out, "added", r->added)) ||
      (rc = bencode_put_kv_cstr(out, "dir", r->download_dir)) ||
      (rc = bencode_put_kv_int(out, "downloaded", (int64_t)r->downloaded)) ||
      (rc = bencode_put_kv_cstr(out, "error", r->error ? r->error : "")) ||
      (rc = bencode_put_cstr(out, "files")) ||
      (rc = buf_printf(out, "%zu:", (size_t)r->num_files * RESUME_FILE_RECORD)))
    goto out;
  for (uint32_t i = 0; i < r->num_files; i++) {
    const struct resume_file *f = &r->files[i];
    put_u64be(rec, (uint64_t)f->size);
    put_u64be(rec + 8, (uint64_t)f->mtime_s);
    put_u32be(rec + 16, (uint32_t)f->mtime_ns);
    rec[20] = f->priority;
    if ((rc = buf_append(out, rec, sizeof rec)) != 0)
      goto out;
  }
  if ((rc = bencode_put_kv_int(out, "format", RESUME_FORMAT)) ||
      (rc = bencode_put_kv_str(out, "have", r->have.bits, bitfield_bytes(r->have.nbits))) ||
      (rc = bencode_put_kv_str(out, "info_hash", r->infohash, 20)) ||
      (rc = bencode_put_kv_int(out, "max_peers", r->max_peers)) ||
      (rc = bencode_put_kv_cstr(out, "name", r->name ? r->name : "")) ||
      (rc = bencode_put_cstr(out, "peers")) ||
      (rc = buf_printf(out, "%zu:", (size_t)r->num_peers * RESUME_PEER_RECORD)))
    goto out;
  for (uint32_t i = 0; i < r->num_peers; i++) {
    uint8_t prec[RESUME_PEER_RECORD];
    prec[0] = r->peers[i].family;
    memcpy(prec + 1, r->peers[i].addr, 16);
    put_u16be(prec + 17, r->peers[i].port);
    if ((rc = buf_append(out, prec, sizeof prec)) != 0)
      goto out;
  }
  if ((rc = bencode_put_kv_int(out, "pieces", r->have.nbits)) ||
      (rc = bencode_put_kv_int(out, "position", r->position)) ||
      (rc = bencode_put_kv_int(out, "rate_down", (int64_t)r->rate_down)) ||
      (rc = bencode_put_kv_int(out, "rate_up", (int64_t)r->rate_up)) ||
      (rc = bencode_put_kv_int(out, "seed_idle_limit", r->seed_idle_s)) ||
      (rc = bencode_put_kv_int(out, "seed_ratio_limit", r->seed_ratio_milli)) ||
      (rc = bencode_put_kv_int(out, "sequential", r->sequential ? 1 : 0)) ||
      (rc = bencode_put_kv_cstr(out, "state", r->state == RESUME_ACTIVE ? "active" : "paused")) ||
      (rc = bencode_put_kv_int(out, "uploaded", (int64_t)r->uploaded)) ||
      (rc = bencode_put_end(out)))
    goto out;
  uint8_t seal[HASH_SHA1_LEN];
  hash_sha1(out->p + off, out->len - off, seal);
  if ((rc = bencode_put_kv_str(out, "sha1", seal, sizeof seal)) || (rc = bencode_put_end(out)))
    goto out;
  return 0;
out:
  buf_free(out);
  if (rc == UV_E2BIG)
    shoal_fail(err, errlen, rc, "resume: record larger than %u bytes", RESUME_MAX_FILE_SIZE);
  return rc;
}

/* A content string as a new C string: no NUL inside, at most max bytes. */
static int take_str(const struct bencode_doc *d, int tok, size_t max, const char *key, char **out,
                    char *err, size_t errlen)
{
  const uint8_t *p;
  size_t n;
  if (bencode_get_str(d, tok, &p, &n))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"%s\" missing or not a string", key);
  if (n > max || memchr(p, 0, n))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"%s\" longer than %zu bytes or holds a NUL", key, max);
  char *s = malloc(n + 1);
  if (s == NULL)
    return UV_ENOMEM;
  memcpy(s, p, n);
  s[n] = 0;
  *out = s;
  return 0;
}

static int take_int(const struct bencode_doc *d, int tok, int64_t lo, int64_t hi, const char *key,
                    int64_t *out, char *err, size_t errlen)
{
  int64_t v;
  if (bencode_get_int(d, tok, &v))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"%s\" missing or not an integer", key);
  if (v < lo || v > hi)
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"%s\" = %lld out of range %lld..%lld", key,
                (long long)v, (long long)lo, (long long)hi);
  *out = v;
  return 0;
}

static const char *const content_keys[NKEYS] = {
  "added", "dir", "downloaded", "error", "files", "format", "have", "info_hash", "max_peers",
  "name", "peers", "pieces", "position", "rate_down", "rate_up", "seed_idle_limit", "seed_ratio_limit",
  "sequential", "state", "uploaded",
};

/* Reads the sealed content dict (token c) into r. */
static int parse_content(const struct bencode_doc *d, int c, struct resume *r, char *err, size_t errlen)
{
  int64_t v;
  int rc;
  if ((rc = take_int(d, bencode_dict_get(d, c, "format"), INT64_MIN, INT64_MAX, "format", &v, err, errlen)))
    return rc;
  if (v != RESUME_FORMAT)
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: unsupported format version %lld (this shoal reads %d)",
                (long long)v, RESUME_FORMAT);
  for (int k = bencode_first(d, c); k >= 0; k = bencode_next(d, c, k + 1)) {
    bool known = false;
    for (int i = 0; i < NKEYS && !known; i++)
      known = bencode_str_eq(d, k, content_keys[i]);
    if (!known) {
      const uint8_t *p;
      size_t n;
      bencode_get_str(d, k, &p, &n);
      char shown[40];
      size_t o = 0;
      for (size_t i = 0; i < n && o + 1 < sizeof shown; i++)
        shown[o++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
      shown[o] = 0;
      return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: unknown key \"%s\"", shown);
    }
  }
  if ((rc = take_int(d, bencode_dict_get(d, c, "added"), 0, INT64_MAX, "added", &r->added, err, errlen)) ||
      (rc = take_int(d, bencode_dict_get(d, c, "downloaded"), 0, INT64_MAX, "downloaded", &v, err, errlen)))
    return rc;
  r->downloaded = (uint64_t)v;
  if ((rc = take_int(d, bencode_dict_get(d, c, "uploaded"), 0, INT64_MAX, "uploaded", &v, err, errlen)))
    return rc;
  r->uploaded = (uint64_t)v;
  if ((rc = take_int(d, bencode_dict_get(d, c, "seed_idle_limit"), -1, INT64_MAX, "seed_idle_limit",
                     &r->seed_idle_s, err, errlen)) ||
      (rc = take_int(d, bencode_dict_get(d, c, "seed_ratio_limit"), -1, INT64_MAX, "seed_ratio_limit",
                     &r->seed_ratio_milli, err, errlen)) ||
      (rc = take_int(d, bencode_dict_get(d, c, "sequential"), 0, 1, "sequential", &v, err, errlen)))
    return rc;
  r->sequential = v == 1;
  if ((rc = take_int(d, bencode_dict_get(d, c, "position"), 0, UINT32_MAX, "position", &v, err, errlen)))
    return rc;
  r->position = (uint32_t)v;
  if ((rc = take_int(d, bencode_dict_get(d, c, "rate_down"), 0, (int64_t)RATELIMIT_MAX, "rate_down", &v, err,
                     errlen)))
    return rc;
  r->rate_down = (uint64_t)v;
  if ((rc = take_int(d, bencode_dict_get(d, c, "rate_up"), 0, (int64_t)RATELIMIT_MAX, "rate_up", &v, err, errlen)))
    return rc;
  r->rate_up = (uint64_t)v;
  if ((rc = take_int(d, bencode_dict_get(d, c, "max_peers"), 0, RESUME_MAX_PEERS, "max_peers", &v, err, errlen)))
    return rc;
  r->max_peers = (uint32_t)v;
  if ((rc = take_str(d, bencode_dict_get(d, c, "dir"), RESUME_MAX_STR, "dir", &r->download_dir, err, errlen)) ||
      (rc = take_str(d, bencode_dict_get(d, c, "name"), RESUME_MAX_STR, "name", &r->name, err, errlen)) ||
      (rc = take_str(d, bencode_dict_get(d, c, "error"), RESUME_MAX_ERROR, "error", &r->error, err, errlen)))
    return rc;
  int t = bencode_dict_get(d, c, "state");
  if (bencode_str_eq(d, t, "active"))
    r->state = RESUME_ACTIVE;
  else if (bencode_str_eq(d, t, "paused"))
    r->state = RESUME_PAUSED;
  else
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"state\" must be \"active\" or \"paused\"");
  const uint8_t *p;
  size_t n;
  if (bencode_get_str(d, bencode_dict_get(d, c, "info_hash"), &p, &n) || n != 20)
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"info_hash\" must be a 20-byte string");
  memcpy(r->infohash, p, 20);
  /* Pieces and their bitfield. */
  if ((rc = take_int(d, bencode_dict_get(d, c, "pieces"), 0, RESUME_MAX_PIECES, "pieces", &v, err, errlen)))
    return rc;
  if (bencode_get_str(d, bencode_dict_get(d, c, "have"), &p, &n))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"have\" missing or not a string");
  if ((rc = bitfield_init(&r->have, (uint32_t)v)) != 0)
    return rc;
  if (bitfield_load(&r->have, p, n))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"have\" is %zu bytes; %lld pieces need %zu, spare bits clear",
                n, (long long)v, bitfield_bytes((uint32_t)v));
  /* Files. */
  if (bencode_get_str(d, bencode_dict_get(d, c, "files"), &p, &n))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"files\" missing or not a string");
  if (n % RESUME_FILE_RECORD || n / RESUME_FILE_RECORD > RESUME_MAX_FILES)
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"files\" is %zu bytes: not whole %u-byte records "
                "or more than %u files", n, RESUME_FILE_RECORD, RESUME_MAX_FILES);
  uint32_t nf = (uint32_t)(n / RESUME_FILE_RECORD);
  if (nf) {
    r->files = calloc(nf, sizeof *r->files);
    if (r->files == NULL)
      return UV_ENOMEM;
  }
  r->num_files = nf;
  struct cur cu = cur_make(p, n);
  for (uint32_t i = 0; i < nf; i++) {
    uint64_t size, ms;
    uint32_t ns;
    uint8_t prio;
    if (cur_u64be(&cu, &size) || cur_u64be(&cu, &ms) || cur_u32be(&cu, &ns) || cur_u8(&cu, &prio))
      return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"files\" cut short");  /* unreachable: length checked */
    r->files[i].size = (int64_t)size;
    r->files[i].mtime_s = (int64_t)ms;
    r->files[i].mtime_ns = ns > INT32_MAX ? -1 : (int32_t)ns;
    r->files[i].priority = prio;
  }
  /* Peers given by hand; their values are checked by check_record. */
  if (bencode_get_str(d, bencode_dict_get(d, c, "peers"), &p, &n))
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"peers\" missing or not a string");
  if (n % RESUME_PEER_RECORD || n / RESUME_PEER_RECORD > RESUME_MAX_PEERS_SAVED)
    return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"peers\" is %zu bytes: not whole %u-byte records "
                "or more than %u peers", n, RESUME_PEER_RECORD, RESUME_MAX_PEERS_SAVED);
  uint32_t np = (uint32_t)(n / RESUME_PEER_RECORD);
  if (np) {
    r->peers = calloc(np, sizeof *r->peers);
    if (r->peers == NULL)
      return UV_ENOMEM;
  }
  r->num_peers = np;
  cu = cur_make(p, n);
  for (uint32_t i = 0; i < np; i++) {
    if (cur_u8(&cu, &r->peers[i].family) || cur_copy(&cu, r->peers[i].addr, 16) ||
        cur_u16be(&cu, &r->peers[i].port))
      return shoal_fail(err, errlen, SHOAL_EMANIFEST, "resume: \"peers\" cut short");  /* unreachable: length checked */
  }
  return check_record(r, SHOAL_EMANIFEST, err, errlen);
}

int resume_parse(const uint8_t *p, size_t len, struct resume *out, char *err, size_t errlen)
{
  memset(out, 0, sizeof *out);
  if (len > RESUME_MAX_FILE_SIZE)
    return shoal_fail(err, errlen, SHOAL_ETOOBIG, "resume: file of %zu bytes, more than %u", len, RESUME_MAX_FILE_SIZE);
  static const struct bencode_limits lim = {
    .max_tokens = 128, .max_depth = 3, .allow_trailing = false, .require_sorted = true,
  };
  struct bencode_doc d;
  char berr[SHOAL_ERRLEN];
  int rc = bencode_decode(&d, p, len, &lim, berr, sizeof berr);
  if (rc == UV_ENOMEM)
    return rc;
  if (rc)
    return shoal_fail(err, errlen, SHOAL_EBENCODE, "resume: torn or not a resume file (%s)", berr);
  int c = bencode_dict_get_type(&d, 0, "content", BENCODE_DICT);
  int s = bencode_dict_get(&d, 0, "sha1");
  const uint8_t *seal;
  size_t seal_len;
  if (d.tok[0].type != BENCODE_DICT || d.tok[0].count != 2 || c < 0 ||
      bencode_get_str(&d, s, &seal, &seal_len) || seal_len != HASH_SHA1_LEN) {
    bencode_free(&d);
    return shoal_fail(err, errlen, SHOAL_EBENCODE, "resume: not a resume file (want a dict of \"content\" and \"sha1\")");
  }
  uint8_t h[HASH_SHA1_LEN];
  hash_sha1(p + d.tok[c].raw_off, d.tok[c].raw_len, h);
  if (memcmp(h, seal, sizeof h) != 0) {
    bencode_free(&d);
    return shoal_fail(err, errlen, SHOAL_EHASH, "resume: content does not match its SHA-1 (corrupt file)");
  }
  rc = parse_content(&d, c, out, err, errlen);
  bencode_free(&d);
  if (rc)
    resume_free(out);
  return rc;
}

int resume_peer_from_sockaddr(const struct sockaddr *sa, struct resume_peer *out)
{
  struct resume_peer pe;
  memset(&pe, 0, sizeof pe);
  if (sa == NULL)
    return UV_EINVAL;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    pe.family = 4;
    memcpy(pe.addr, &s4->sin_addr, 4);
    pe.port = ntohs(s4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    pe.family = 6;
    memcpy(pe.addr, &s6->sin6_addr, 16);
    pe.port = ntohs(s6->sin6_port);
  } else {
    return UV_EINVAL;
  }
  if (pe.port == 0)
    return UV_EINVAL;
  *out = pe;
  return 0;
}

void resume_peer_to_sockaddr(const struct resume_peer *p, struct sockaddr_storage *out)
{
  memset(out, 0, sizeof *out);
  if (p->family == 4) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, p->addr, 4);
    s4->sin_port = htons(p->port);
  } else if (p->family == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, p->addr, 16);
    s6->sin6_port = htons(p->port);
  }
}

char *resume_path(const char *dir, const uint8_t infohash[20])
{
  char hex[41];
  hash_hex(infohash, 20, hex);
  size_t n = strlen(dir) + 1 + 40 + sizeof ".resume";
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s.resume", dir, hex);
  return p;
}

bool resume_file_unchanged(const struct resume_file *saved, const struct resume_file *now)
{
  return saved->size == now->size && saved->mtime_s == now->mtime_s && saved->mtime_ns == now->mtime_ns;
}

/* Clears pieces touching torrent bytes [from, to); returns how many were set. */
static uint32_t clear_span(struct bitfield *bf, uint64_t from, uint64_t to, uint32_t plen)
{
  if (from >= to)
    return 0;
  uint64_t first = from / plen, last = (to - 1) / plen;
  uint32_t n = 0;
  for (uint64_t i = first; i <= last && i < bf->nbits; i++)
    if (bitfield_get(bf, (uint32_t)i)) {
      bitfield_clear(bf, (uint32_t)i);
      n++;
    }
  return n;
}

int resume_trust(struct resume *r, const struct manifest *m, const struct resume_file *now,
                 uint32_t *cleared)
{
  if (r->have.nbits != m->num_pieces || r->num_files != m->num_files || m->piece_length == 0)
    return SHOAL_EMANIFEST;
  uint32_t n = 0;
  for (uint32_t i = 0; i < m->num_files; i++) {
    const struct manifest_file *f = &m->files[i];
    if ((f->attr & MANIFEST_ATTR_PAD) || f->length == 0)
      continue;
    uint64_t end = f->offset + f->length;
    if (!resume_file_unchanged(&r->files[i], &now[i])) {
      n += clear_span(&r->have, f->offset, end, m->piece_length);
      continue;
    }
    uint64_t have_bytes = now[i].size > 0 ? (uint64_t)now[i].size : 0;
    if (have_bytes < f->length)
      n += clear_span(&r->have, f->offset + have_bytes, end, m->piece_length);
  }
  if (cleared)
    *cleared = n;
  return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int resume_write_atomic(const char *path, const void *data, size_t len)
{
  size_t pl = strlen(path);
  if (pl == 0)
    return UV_EINVAL;
  char *tmp = malloc(pl + 32);
  char *dir = malloc(pl + 2);
  if (tmp == NULL || dir == NULL) {
    free(tmp);
    free(dir);
    return UV_ENOMEM;
  }
  snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
  int rc = 0;
  /* A leftover from a crashed run with the same pid is removed; O_EXCL then
   * refuses to follow anything planted at the name meanwhile. */
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    rc = -errno;
    goto done;
  }
  rc = write_all(fd, data, len);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc) {
    unlink(tmp);
    goto done;
  }
  /* The rename is durable once the folder is. */
  const char *slash = strrchr(path, '/');
  size_t dlen = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
  if (dlen == 0)
    dir[dlen++] = '.';
  else
    memcpy(dir, path, dlen);
  dir[dlen] = 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    rc = -errno;
    goto done;
  }
  if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)
    rc = -errno;
  close(dfd);
done:
  free(tmp);
  free(dir);
  return rc;
}

int resume_read_file(const char *path, size_t max, struct buf *out)
{
  buf_init(out, max);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = UV_EINVAL;
    goto done;
  }
  if (st.st_size < 0 || (uint64_t)st.st_size > max) {
    rc = SHOAL_ETOOBIG;
    goto done;
  }
  if ((rc = buf_reserve(out, (size_t)st.st_size + (st.st_size < (off_t)max ? 1 : 0))) != 0)
    goto done;
  /* Read until EOF, in case the file changed size since fstat; never past max. */
  for (;;) {
    if (out->len == out->cap) {
      if (out->len >= max) {
        uint8_t probe;
        ssize_t n = read(fd, &probe, 1);
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0)
          rc = -errno;
        else if (n > 0)
          rc = SHOAL_ETOOBIG;
        break;
      }
      size_t more = max - out->len < 65536 ? max - out->len : 65536;
      if ((rc = buf_reserve(out, more)) != 0)
        break;
    }
    ssize_t n = read(fd, out->p + out->len, out->cap - out->len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      rc = -errno;
      break;
    }
    if (n == 0)
      break;
    out->len += (size_t)n;
  }
done:
  close(fd);
  if (rc)
    buf_free(out);
  return rc;
}
