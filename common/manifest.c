/* manifest.c -- BitTorrent v1 metainfo: strict parsing and validation, encoding, infohash. */
#include "common/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "common/utf8.h"

#define MANIFEST_MAX_TIERS 32u          /* announce-list tiers kept */
#define MANIFEST_MAX_TIER_URLS 32u      /* URLs kept per tier */
#define MANIFEST_MAX_URL_LEN 1024u
#define MANIFEST_MAX_TEXT_LEN (64u << 10)  /* comment, created by */
#define MANIFEST_MAX_COMPONENT_LEN 255u    /* bytes of one path component (NAME_MAX) */
#define QUOTE_MAX 48u                      /* bytes of hostile text shown in a message */

/* ---- error messages ---- */

struct pctx {
  char *err;
  size_t errlen;
};

static int failf(struct pctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(struct pctx *c, int code, const char *fmt, ...)
{
  if (c->err && c->errlen) {
    int n = snprintf(c->err, c->errlen, "invalid torrent file: ");
    if (n >= 0 && (size_t)n < c->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return code;
}

/* Hostile bytes shown in a one-line message: printable ASCII as is, the
 * rest as \xNN, at most QUOTE_MAX input bytes (then "..."). */
static const char *quote(const uint8_t *p, size_t n, char *out, size_t outlen)
{
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  size_t shown = n < QUOTE_MAX ? n : QUOTE_MAX;
  for (size_t i = 0; i < shown && o + 5 < outlen; i++) {
    uint8_t ch = p[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
      out[o++] = (char)ch;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  if (shown < n && o + 4 < outlen) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return out;
}

#define QUOTE_BUFLEN (QUOTE_MAX * 4 + 8)

/* ---- validation helpers ---- */

/* One path component (or the torrent's name).  Returns 0 or SHOAL_EPATH with
 * the message "<where><what> '<component>' <fault>". */
static int check_component(struct pctx *c, const char *where, const char *what,
                           const uint8_t *p, size_t n)
{
  char q[QUOTE_BUFLEN];
  if (n == 0)
    return failf(c, SHOAL_EPATH, "%s%s is empty", where, what);
  if (n > MANIFEST_MAX_COMPONENT_LEN)
    return failf(c, SHOAL_EPATH, "%s%s '%s' is longer than %u bytes", where, what,
                 quote(p, n, q, sizeof q), MANIFEST_MAX_COMPONENT_LEN);
  if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
    return failf(c, SHOAL_EPATH, "%s%s '%.*s' is not allowed", where, what, (int)n, (const char *)p);
  size_t dots = 0;
  while (dots < n && p[dots] == '.')
    dots++;
  if (dots == n)
    return failf(c, SHOAL_EPATH, "%s%s '%s' made only of dots is not allowed", where, what,
                 quote(p, n, q, sizeof q));
  if (memchr(p, '/', n))
    return failf(c, SHOAL_EPATH, "%s%s '%s' contains '/'", where, what, quote(p, n, q, sizeof q));
  if (memchr(p, '\\', n))
    return failf(c, SHOAL_EPATH, "%s%s '%s' contains '\\'", where, what, quote(p, n, q, sizeof q));
  if (memchr(p, '\0', n))
    return failf(c, SHOAL_EPATH, "%s%s '%s' contains a NUL byte", where, what, quote(p, n, q, sizeof q));
  if (!utf8_valid(p, n))
    return failf(c, SHOAL_EPATH, "%s%s '%s' is not valid UTF-8", where, what, quote(p, n, q, sizeof q));
  return 0;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

/* BEP 47 attributes; 'l' (symlink) is refused, unknown letters ignored. */
static int parse_attr(struct pctx *c, const struct bencode_doc *d, int dict, const char *where,
                      uint32_t *attr)
{
  const uint8_t *p;
  size_t n;
  *attr = 0;
  if (bencode_get_str(d, bencode_dict_get(d, dict, "attr"), &p, &n) != 0)
    return 0;                          /* absent or of another type: no attributes */
  for (size_t i = 0; i < n; i++) {
    switch (p[i]) {
    case 'p': *attr |= MANIFEST_ATTR_PAD; break;
    case 'x': *attr |= MANIFEST_ATTR_EXEC; break;
    case 'h': *attr |= MANIFEST_ATTR_HIDDEN; break;
    case 'l': return failf(c, SHOAL_EMANIFEST, "%ssymlinks are not supported (attr 'l')", where);
    default: break;
    }
  }
  return 0;
}

/* The length of a file (or of a single-file torrent). */
static int parse_length(struct pctx *c, const struct bencode_doc *d, int dict, const char *where,
                        uint64_t *out)
{
  int v = bencode_dict_get(d, dict, "length");
  int64_t len;
  if (v < 0)
    return failf(c, SHOAL_EMANIFEST, "%smissing 'length'", where);
  if (bencode_get_int(d, v, &len) != 0)
    return failf(c, SHOAL_EMANIFEST, "%s'length' is not an integer", where);
  if (len < 0)
    return failf(c, SHOAL_EMANIFEST, "%snegative length %" PRId64, where, len);
  if ((uint64_t)len > MANIFEST_MAX_TOTAL)
    return failf(c, SHOAL_ETOOBIG, "%slength %" PRId64 " exceeds the limit of 1 PiB", where, len);
  *out = (uint64_t)len;
  return 0;
}

/* A file's "path" list: validated components, '/'-joined into *out. */
static int parse_path(struct pctx *c, const struct bencode_doc *d, int dict, const char *where,
                      char **out)
{
  int lst = bencode_dict_get(d, dict, "path");
  if (lst < 0)
    return failf(c, SHOAL_EMANIFEST, "%smissing 'path'", where);
  if (d->tok[lst].type != BENCODE_LIST)
    return failf(c, SHOAL_EMANIFEST, "%s'path' is not a list", where);
  uint32_t depth = d->tok[lst].count;
  if (depth == 0)
    return failf(c, SHOAL_EPATH, "%sempty path", where);
  if (depth > MANIFEST_MAX_PATH_DEPTH)
    return failf(c, SHOAL_EPATH, "%spath deeper than %u components", where, MANIFEST_MAX_PATH_DEPTH);
  size_t total = 0;
  uint32_t i = 0;
  for (int e = bencode_first(d, lst); e >= 0; e = bencode_next(d, lst, e), i++) {
    const uint8_t *p;
    size_t n;
    if (bencode_get_str(d, e, &p, &n) != 0)
      return failf(c, SHOAL_EMANIFEST, "%spath element %" PRIu32 " is not a string", where, i);
    int r = check_component(c, where, "path component", p, n);
    if (r)
      return r;
    total += n + (i ? 1 : 0);
    if (total > MANIFEST_MAX_PATH_LEN)
      return failf(c, SHOAL_EPATH, "%spath longer than %u bytes", where, MANIFEST_MAX_PATH_LEN);
  }
  char *s = malloc(total + 1);
  if (s == NULL)
    return UV_ENOMEM;
  size_t o = 0;
  for (int e = bencode_first(d, lst); e >= 0; e = bencode_next(d, lst, e)) {
    const uint8_t *p;
    size_t n;
    bencode_get_str(d, e, &p, &n);
    if (o)
      s[o++] = '/';
    memcpy(s + o, p, n);
    o += n;
  }
  s[o] = '\0';
  *out = s;
  return 0;
}

/* Component-wise order of '/'-joined paths: '/' sorts below every byte, so
 * a path comes right before the paths inside it. */
static int path_cmp(const void *a, const void *b)
{
  const unsigned char *x = *(const unsigned char *const *)a, *y = *(const unsigned char *const *)b;
  for (;; x++, y++) {
    unsigned cx = *x == '/' ? 1u : *x ? (unsigned)*x + 1 : 0u;
    unsigned cy = *y == '/' ? 1u : *y ? (unsigned)*y + 1 : 0u;
    if (cx != cy)
      return cx < cy ? -1 : 1;
    if (cx == 0)
      return 0;
  }
}

/* No two files with the same path, and no file that is a folder of another.
 * Pad files (BEP 47) are synthetic and may repeat; they take no part. */
static int check_unique(struct pctx *c, const struct manifest *m)
{
  const char **v = malloc((size_t)m->num_files * sizeof *v);
  if (v == NULL)
    return UV_ENOMEM;
  uint32_t n = 0;
  for (uint32_t i = 0; i < m->num_files; i++)
    if (!(m->files[i].attr & MANIFEST_ATTR_PAD))
      v[n++] = m->files[i].path;
  qsort(v, n, sizeof *v, path_cmp);
  int r = 0;
  char q1[QUOTE_BUFLEN], q2[QUOTE_BUFLEN];
  for (uint32_t i = 1; i < n && r == 0; i++) {
    size_t la = strlen(v[i - 1]);
    if (strcmp(v[i - 1], v[i]) == 0)
      r = failf(c, SHOAL_EPATH, "duplicate file path '%s'",
                quote((const uint8_t *)v[i], la, q1, sizeof q1));
    else if (strncmp(v[i - 1], v[i], la) == 0 && v[i][la] == '/')
      r = failf(c, SHOAL_EPATH, "file '%s' is also a folder of file '%s'",
                quote((const uint8_t *)v[i - 1], la, q1, sizeof q1),
                quote((const uint8_t *)v[i], strlen(v[i]), q2, sizeof q2));
  }
  free(v);
  return r;
}

/* ---- info dict ---- */

static int parse_info(struct pctx *c, const struct bencode_doc *d, int info, struct manifest *m)
{
  const uint8_t *p;
  size_t n;
  int64_t iv;
  int r;

  /* name */
  int v = bencode_dict_get(d, info, "name");
  if (v < 0)
    return failf(c, SHOAL_EMANIFEST, "missing 'name'");
  if (bencode_get_str(d, v, &p, &n) != 0)
    return failf(c, SHOAL_EMANIFEST, "'name' is not a string");
  if ((r = check_component(c, "", "name", p, n)) != 0)
    return r;
  if ((m->name = dup_bytes(p, n)) == NULL)
    return UV_ENOMEM;

  /* piece length */
  v = bencode_dict_get(d, info, "piece length");
  if (v < 0)
    return failf(c, SHOAL_EMANIFEST, "missing 'piece length'");
  if (bencode_get_int(d, v, &iv) != 0)
    return failf(c, SHOAL_EMANIFEST, "'piece length' is not an integer");
  if (iv <= 0)
    return failf(c, SHOAL_EMANIFEST, "piece length %" PRId64 " is not positive", iv);
  if (iv > (int64_t)MANIFEST_MAX_PIECE_LEN)
    return failf(c, SHOAL_ETOOBIG, "piece length %" PRId64 " exceeds the limit of %u MiB", iv,
                 MANIFEST_MAX_PIECE_LEN >> 20);
  m->piece_length = (uint32_t)iv;

  /* pieces (count checked once the total is known) */
  v = bencode_dict_get(d, info, "pieces");
  const uint8_t *pieces;
  size_t pieces_len;
  if (v < 0)
    return failf(c, SHOAL_EMANIFEST, "missing 'pieces'");
  if (bencode_get_str(d, v, &pieces, &pieces_len) != 0)
    return failf(c, SHOAL_EMANIFEST, "'pieces' is not a string");
  if (pieces_len % HASH_SHA1_LEN != 0)
    return failf(c, SHOAL_EMANIFEST, "'pieces' length %zu is not a multiple of 20", pieces_len);

  /* length xor files */
  int vlen = bencode_dict_get(d, info, "length");
  int vfiles = bencode_dict_get(d, info, "files");
  if (vlen >= 0 && vfiles >= 0)
    return failf(c, SHOAL_EMANIFEST, "both 'length' and 'files' present");
  if (vlen < 0 && vfiles < 0)
    return failf(c, SHOAL_EMANIFEST, "missing 'length' or 'files'");

  if (vlen >= 0) {
    m->multi_file = false;
    m->files = calloc(1, sizeof *m->files);
    if (m->files == NULL)
      return UV_ENOMEM;
    m->num_files = 1;
    if ((r = parse_length(c, d, info, "", &m->files[0].length)) != 0)
      return r;
    if ((r = parse_attr(c, d, info, "", &m->files[0].attr)) != 0)
      return r;
    if ((m->files[0].path = strdup(m->name)) == NULL)
      return UV_ENOMEM;
    m->total_length = m->files[0].length;
  } else {
    m->multi_file = true;
    if (d->tok[vfiles].type != BENCODE_LIST)
      return failf(c, SHOAL_EMANIFEST, "'files' is not a list");
    uint32_t nf = d->tok[vfiles].count;
    if (nf == 0)
      return failf(c, SHOAL_EMANIFEST, "'files' list is empty");
    if (nf > MANIFEST_MAX_FILES)
      return failf(c, SHOAL_ETOOBIG, "too many files (%" PRIu32 ", limit %u)", nf, MANIFEST_MAX_FILES);
    m->files = calloc(nf, sizeof *m->files);
    if (m->files == NULL)
      return UV_ENOMEM;
    uint64_t total = 0;
    uint32_t i = 0;
    for (int f = bencode_first(d, vfiles); f >= 0; f = bencode_next(d, vfiles, f), i++) {
      char where[32];
      snprintf(where, sizeof where, "file %" PRIu32 ": ", i);
      struct manifest_file *mf = &m->files[i];
      m->num_files = i + 1;            /* so manifest_free sees what was filled */
      if (d->tok[f].type != BENCODE_DICT)
        return failf(c, SHOAL_EMANIFEST, "%snot a dictionary", where);
      if ((r = parse_length(c, d, f, where, &mf->length)) != 0)
        return r;
      if ((r = parse_attr(c, d, f, where, &mf->attr)) != 0)
        return r;
      if ((r = parse_path(c, d, f, where, &mf->path)) != 0)
        return r;
      mf->offset = total;
      total += mf->length;             /* both <= 2^50: no overflow */
      if (total > MANIFEST_MAX_TOTAL)
        return failf(c, SHOAL_ETOOBIG, "total length exceeds the limit of 1 PiB");
    }
    m->total_length = total;
    if ((r = check_unique(c, m)) != 0)
      return r;
  }

  if (m->total_length == 0)
    return failf(c, SHOAL_EMANIFEST, "total length is 0 (nothing to share)");
  uint64_t need = (m->total_length + m->piece_length - 1) / m->piece_length;
  if (need != pieces_len / HASH_SHA1_LEN)
    return failf(c, SHOAL_EMANIFEST,
                 "'pieces' holds %zu hashes but %" PRIu64 " are needed (total length %" PRIu64
                 ", piece length %" PRIu32 ")",
                 pieces_len / HASH_SHA1_LEN, need, m->total_length, m->piece_length);
  m->num_pieces = (uint32_t)need;      /* <= MANIFEST_MAX_FILE_SIZE / 20 */
  m->piece_hashes = malloc(pieces_len);
  if (m->piece_hashes == NULL)
    return UV_ENOMEM;
  memcpy(m->piece_hashes, pieces, pieces_len);

  m->private_ = bencode_get_int(d, bencode_dict_get(d, info, "private"), &iv) == 0 && iv == 1;

  /* the info dict exactly as in the input */
  const struct bencode_tok *t = &d->tok[info];
  m->info = malloc(t->raw_len);
  if (m->info == NULL)
    return UV_ENOMEM;
  memcpy(m->info, d->in + t->raw_off, t->raw_len);
  m->info_len = t->raw_len;
  hash_sha1(m->info, m->info_len, m->infohash);
  return 0;
}

/* ---- outside the info dict: trackers and descriptive fields ---- */

static bool url_ok(const uint8_t *p, size_t n)
{
  if (n == 0 || n > MANIFEST_MAX_URL_LEN)
    return false;
  for (size_t i = 0; i < n; i++)
    if (p[i] <= 0x20 || p[i] >= 0x7f)
      return false;
  return true;
}

static int tier_add(struct manifest_tier *t, const uint8_t *p, size_t n)
{
  if (t->urls == NULL) {
    t->urls = calloc(MANIFEST_MAX_TIER_URLS, sizeof *t->urls);
    if (t->urls == NULL)
      return UV_ENOMEM;
  }
  if ((t->urls[t->count] = dup_bytes(p, n)) == NULL)
    return UV_ENOMEM;
  t->count++;
  return 0;
}

/* announce-list (BEP 12) when it yields a URL, else announce; entries that
 * are not strings or not plausible URLs are skipped, counts are capped. */
static int parse_trackers(const struct bencode_doc *d, struct manifest *m)
{
  const uint8_t *p;
  size_t n;
  m->tiers = calloc(MANIFEST_MAX_TIERS, sizeof *m->tiers);
  if (m->tiers == NULL)
    return UV_ENOMEM;
  int al = bencode_dict_get_type(d, 0, "announce-list", BENCODE_LIST);
  for (int t = bencode_first(d, al); t >= 0 && m->num_tiers < MANIFEST_MAX_TIERS;
       t = bencode_next(d, al, t)) {
    if (d->tok[t].type != BENCODE_LIST)
      continue;
    struct manifest_tier *tier = &m->tiers[m->num_tiers];
    for (int u = bencode_first(d, t); u >= 0 && tier->count < MANIFEST_MAX_TIER_URLS;
         u = bencode_next(d, t, u)) {
      if (bencode_get_str(d, u, &p, &n) == 0 && url_ok(p, n) && tier_add(tier, p, n) != 0) {
        m->num_tiers++;                /* so that manifest_free releases it */
        return UV_ENOMEM;
      }
    }
    if (tier->count)
      m->num_tiers++;
  }
  if (m->num_tiers == 0 &&
      bencode_get_str(d, bencode_dict_get(d, 0, "announce"), &p, &n) == 0 && url_ok(p, n)) {
    m->num_tiers = 1;
    return tier_add(&m->tiers[0], p, n);
  }
  return 0;
}

/* An optional text field: kept only when it is a valid UTF-8 string without
 * NUL bytes and of reasonable size; anything else is ignored. */
static int parse_text(const struct bencode_doc *d, const char *key, char **out)
{
  const uint8_t *p;
  size_t n;
  if (bencode_get_str(d, bencode_dict_get(d, 0, key), &p, &n) != 0 || n > MANIFEST_MAX_TEXT_LEN ||
      memchr(p, '\0', n) || !utf8_valid(p, n))
    return 0;
  return (*out = dup_bytes(p, n)) ? 0 : UV_ENOMEM;
}

static int decode_root(struct pctx *c, struct bencode_doc *doc, const uint8_t *buf, size_t len)
{
  char derr[SHOAL_ERRLEN];
  if (len > MANIFEST_MAX_FILE_SIZE)
    return failf(c, SHOAL_ETOOBIG, "size %zu bytes exceeds the limit of %u MiB", len,
                 MANIFEST_MAX_FILE_SIZE >> 20);
  derr[0] = '\0';
  int r = bencode_decode(doc, buf, len, NULL, derr, sizeof derr);
  if (r == UV_ENOMEM)
    return failf(c, r, "out of memory");
  if (r)
    return failf(c, r, "%s: %s", shoal_strerror(r), derr);
  if (doc->tok[0].type != BENCODE_DICT) {
    bencode_free(doc);
    return failf(c, SHOAL_EMANIFEST, "top level is not a dictionary");
  }
  return 0;
}

static int finish(struct pctx *c, int r, struct manifest *m, struct manifest **out)
{
  if (r) {
    if (r == UV_ENOMEM)
      failf(c, r, "out of memory");
    manifest_free(m);
    return r;
  }
  *out = m;
  return 0;
}

int manifest_parse(const uint8_t *buf, size_t len, struct manifest **out, char *err, size_t errlen)
{
  struct pctx c = { err, errlen };
  struct bencode_doc doc;
  int r = decode_root(&c, &doc, buf, len);
  if (r)
    return r;
  struct manifest *m = calloc(1, sizeof *m);
  if (m == NULL) {
    r = UV_ENOMEM;
    goto out;
  }
  int info = bencode_dict_get(&doc, 0, "info");
  if (info < 0)
    r = failf(&c, SHOAL_EMANIFEST, "missing 'info' dictionary");
  else if (doc.tok[info].type != BENCODE_DICT)
    r = failf(&c, SHOAL_EMANIFEST, "'info' is not a dictionary");
  else if ((r = parse_info(&c, &doc, info, m)) == 0 && (r = parse_trackers(&doc, m)) == 0 &&
           (r = parse_text(&doc, "comment", &m->comment)) == 0)
    r = parse_text(&doc, "created by", &m->created_by);
  if (r == 0) {
    int64_t date;
    if (bencode_get_int(&doc, bencode_dict_get(&doc, 0, "creation date"), &date) == 0)
      m->creation_date = date;
  }
out:
  bencode_free(&doc);
  return finish(&c, r, m, out);
}

int manifest_parse_info(const uint8_t *info, size_t len, struct manifest **out, char *err, size_t errlen)
{
  struct pctx c = { err, errlen };
  struct bencode_doc doc;
  int r = decode_root(&c, &doc, info, len);
  if (r)
    return r;
  struct manifest *m = calloc(1, sizeof *m);
  r = m ? parse_info(&c, &doc, 0, m) : UV_ENOMEM;
  bencode_free(&doc);
  return finish(&c, r, m, out);
}

int manifest_load(const char *path, struct manifest **out, char *err, size_t errlen)
{
  char perr[SHOAL_ERRLEN];
  struct stat st;
  int r;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    r = -errno;
    if (err && errlen)
      snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
    return r;
  }
  if (fstat(fd, &st) != 0) {
    r = -errno;
    if (err && errlen)
      snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
    close(fd);
    return r;
  }
  if (!S_ISREG(st.st_mode)) {
    if (err && errlen)
      snprintf(err, errlen, "cannot read %s: not a regular file", path);
    close(fd);
    return UV_EINVAL;
  }
  if ((uint64_t)st.st_size > MANIFEST_MAX_FILE_SIZE) {
    if (err && errlen)
      snprintf(err, errlen, "cannot read %s: file too large (%jd bytes, limit %u MiB)", path,
               (intmax_t)st.st_size, MANIFEST_MAX_FILE_SIZE >> 20);
    close(fd);
    return SHOAL_ETOOBIG;
  }
  size_t size = (size_t)st.st_size, got = 0;
  uint8_t *data = malloc(size ? size : 1);
  if (data == NULL) {
    close(fd);
    if (err && errlen)
      snprintf(err, errlen, "cannot read %s: out of memory", path);
    return UV_ENOMEM;
  }
  while (got < size) {                 /* a file that shrank is parsed as it is */
    ssize_t k = read(fd, data + got, size - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      r = -errno;
      if (err && errlen)
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
      free(data);
      close(fd);
      return r;
    }
    if (k == 0)
      break;
    got += (size_t)k;
  }
  close(fd);
  perr[0] = '\0';
  r = manifest_parse(data, got, out, perr, sizeof perr);
  free(data);
  if (r && err && errlen)
    snprintf(err, errlen, "%s: %s", path, perr);
  return r;
}

void manifest_free(struct manifest *m)
{
  if (m == NULL)
    return;
  free(m->name);
  for (uint32_t i = 0; m->files && i < m->num_files; i++)
    free(m->files[i].path);
  free(m->files);
  free(m->piece_hashes);
  free(m->info);
  for (uint32_t t = 0; m->tiers && t < m->num_tiers; t++) {
    for (uint32_t u = 0; u < m->tiers[t].count; u++)
      free(m->tiers[t].urls[u]);
    free(m->tiers[t].urls);
  }
  free(m->tiers);
  free(m->comment);
  free(m->created_by);
  free(m);
}

uint32_t manifest_piece_size(const struct manifest *m, uint32_t piece)
{
  if (piece >= m->num_pieces)
    return 0;
  if (piece + 1 < m->num_pieces)
    return m->piece_length;
  return (uint32_t)(m->total_length - (uint64_t)piece * m->piece_length);
}

uint32_t manifest_choose_piece_length(uint64_t total_length)
{
  uint32_t p = MANIFEST_MIN_PIECE_LEN;
  /* smallest power of two giving at most 2000 pieces: then p/2 gives more
   * than 2000, so p gives more than 1000 (unless clamped at either end) */
  while (p < MANIFEST_MAX_PIECE_LEN && total_length / p + (total_length % p != 0) > 2000)
    p <<= 1;
  return p;
}

int manifest_file_at(const struct manifest *m, uint64_t offset)
{
  if (offset >= m->total_length || m->num_files == 0)
    return -1;
  /* the last file starting at or before offset: it is non-empty and holds it */
  uint32_t lo = 0, hi = m->num_files;   /* answer in [lo, hi) */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (m->files[mid].offset <= offset)
      lo = mid;
    else
      hi = mid;
  }
  return (int)lo;
}

/* ---- encoding ---- */

static int put_attr(struct buf *b, uint32_t attr)
{
  char s[4];
  size_t n = 0;
  if (attr & MANIFEST_ATTR_PAD) s[n++] = 'p';
  if (attr & MANIFEST_ATTR_HIDDEN) s[n++] = 'h';
  if (attr & MANIFEST_ATTR_EXEC) s[n++] = 'x';
  return n ? bencode_put_kv_str(b, "attr", s, n) : 0;
}

/* Builds the info dict from the fields (keys in ascending order). */
static int build_info(const struct manifest *m, struct buf *b)
{
  int r;
  if (m->name == NULL || m->num_files == 0 || m->files == NULL || m->piece_length == 0 ||
      (m->num_pieces && m->piece_hashes == NULL) || (!m->multi_file && m->num_files != 1))
    return UV_EINVAL;
#define TRY(x) do { if ((r = (x)) != 0) return r; } while (0)
  TRY(bencode_put_dict(b));
  if (!m->multi_file)
    TRY(put_attr(b, m->files[0].attr));
  if (m->multi_file) {
    TRY(bencode_put_cstr(b, "files"));
    TRY(bencode_put_list(b));
    for (uint32_t i = 0; i < m->num_files; i++) {
      const struct manifest_file *f = &m->files[i];
      TRY(bencode_put_dict(b));
      TRY(put_attr(b, f->attr));
      TRY(bencode_put_kv_int(b, "length", (int64_t)f->length));
      TRY(bencode_put_cstr(b, "path"));
      TRY(bencode_put_list(b));
      for (const char *s = f->path;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        TRY(bencode_put_str(b, s, n));
        if (e == NULL)
          break;
        s = e + 1;
      }
      TRY(bencode_put_end(b));
      TRY(bencode_put_end(b));
    }
    TRY(bencode_put_end(b));
  } else {
    TRY(bencode_put_kv_int(b, "length", (int64_t)m->files[0].length));
  }
  TRY(bencode_put_kv_cstr(b, "name", m->name));
  TRY(bencode_put_kv_int(b, "piece length", m->piece_length));
  TRY(bencode_put_kv_str(b, "pieces", m->piece_hashes, (size_t)m->num_pieces * HASH_SHA1_LEN));
  if (m->private_)
    TRY(bencode_put_kv_int(b, "private", 1));
  TRY(bencode_put_end(b));
  return 0;
}

static int encode_outer(const struct manifest *m, struct buf *out)
{
  int r;
  const char *announce = NULL;
  uint32_t urls = 0, tiers = 0;
  for (uint32_t t = 0; t < m->num_tiers; t++) {
    if (m->tiers[t].count == 0)
      continue;
    if (announce == NULL)
      announce = m->tiers[t].urls[0];
    urls += m->tiers[t].count;
    tiers++;
  }
  TRY(bencode_put_dict(out));
  if (announce)
    TRY(bencode_put_kv_cstr(out, "announce", announce));
  if (urls > 1) {
    TRY(bencode_put_cstr(out, "announce-list"));
    TRY(bencode_put_list(out));
    for (uint32_t t = 0; t < m->num_tiers; t++) {
      if (m->tiers[t].count == 0)
        continue;
      TRY(bencode_put_list(out));
      for (uint32_t u = 0; u < m->tiers[t].count; u++)
        TRY(bencode_put_cstr(out, m->tiers[t].urls[u]));
      TRY(bencode_put_end(out));
    }
    TRY(bencode_put_end(out));
  }
  if (m->comment)
    TRY(bencode_put_kv_cstr(out, "comment", m->comment));
  if (m->created_by)
    TRY(bencode_put_kv_cstr(out, "created by", m->created_by));
  if (m->creation_date)
    TRY(bencode_put_kv_int(out, "creation date", m->creation_date));
  TRY(bencode_put_cstr(out, "info"));
  TRY(buf_append(out, m->info, m->info_len));
  TRY(bencode_put_end(out));
#undef TRY
  return 0;
}

int manifest_encode(struct manifest *m, struct buf *out)
{
  int r;
  size_t start = out->len;
  if (m->info == NULL) {
    struct buf ib;
    buf_init(&ib, MANIFEST_MAX_FILE_SIZE);
    if ((r = build_info(m, &ib)) != 0) {
      buf_free(&ib);
      return r;
    }
    size_t n;
    uint8_t *p = (uint8_t *)buf_steal_cstr(&ib, &n);
    buf_free(&ib);
    if (p == NULL)
      return UV_ENOMEM;
    m->info = p;
    m->info_len = n;
    hash_sha1(m->info, m->info_len, m->infohash);
  }
  if ((r = encode_outer(m, out)) != 0)
    out->len = start;
  return r;
}
