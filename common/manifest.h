/* manifest.h -- BitTorrent v1 metainfo (BEP 3): parse and validate, build and encode, infohash. */
#ifndef COMMON_MANIFEST_H_
#define COMMON_MANIFEST_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define MANIFEST_MAX_FILE_SIZE (64u << 20)     /* a .torrent larger than this is refused */
#define MANIFEST_MIN_PIECE_LEN (16u << 10)     /* what `create` chooses between ... */
#define MANIFEST_MAX_PIECE_LEN (16u << 20)     /* ... and what parse accepts at most */
#define MANIFEST_MAX_FILES 100000u
#define MANIFEST_MAX_PATH_DEPTH 64u            /* path components per file */
#define MANIFEST_MAX_PATH_LEN 4096u            /* bytes of a joined relative path */
#define MANIFEST_MAX_TOTAL (1ull << 50)        /* 1 PiB */

struct manifest_file {
  char *path;            /* relative path inside the torrent's folder, '/'-joined;
                            for a single-file torrent it is the name */
  uint64_t length;
  uint64_t offset;       /* byte offset of the file in the torrent's data */
  uint32_t attr;         /* MANIFEST_ATTR_* (BEP 47) */
};
#define MANIFEST_ATTR_PAD 1u
#define MANIFEST_ATTR_EXEC 2u
#define MANIFEST_ATTR_HIDDEN 4u

struct manifest_tier {
  char **urls;
  uint32_t count;
};

struct manifest {
  char *name;                 /* validated: one safe path component */
  bool multi_file;            /* "files" list (data lives under folder <name>) */
  uint64_t total_length;
  uint32_t piece_length;
  uint32_t num_pieces;
  uint8_t *piece_hashes;      /* 20 * num_pieces */
  struct manifest_file *files;
  uint32_t num_files;
  uint8_t infohash[20];       /* SHA-1 of the bencoded info dict exactly as in the input */
  uint8_t *info;              /* that info dict, owned (for BEP 9 metadata) */
  size_t info_len;
  struct manifest_tier *tiers;   /* announce-list (BEP 12), or the single announce */
  uint32_t num_tiers;
  bool private_;              /* info.private == 1 */
  char *comment;              /* NULL when absent */
  char *created_by;
  int64_t creation_date;      /* 0 when absent */
};

/* Parses a whole .torrent.  Every structural rule is checked: bencode,
 * types, required keys, sizes (non-negative, bounded), piece length (power
 * of two not required, > 0, <= MANIFEST_MAX_PIECE_LEN), pieces length == 20 *
 * ceil(total/piece_length), file paths (no empty, ".", ".." components, no
 * '/', '\\' or NUL inside a component, not absolute, no duplicate, no file
 * that is a folder of another), names valid UTF-8.  On error returns
 * SHOAL_EMANIFEST / SHOAL_EPATH / SHOAL_EBENCODE / SHOAL_ETOOBIG / UV_ENOMEM,
 * writes one line naming the fault into err, and *out is untouched. */
int manifest_parse(const uint8_t *buf, size_t len, struct manifest **out, char *err, size_t errlen);

/* The same for a bare info dict (as fetched by BEP 9); no trackers. */
int manifest_parse_info(const uint8_t *info, size_t len, struct manifest **out, char *err, size_t errlen);

/* Reads a .torrent file (at most MANIFEST_MAX_FILE_SIZE) and parses it.
 * Blocking: use before the loop runs, or from the threadpool. */
int manifest_load(const char *path, struct manifest **out, char *err, size_t errlen);

void manifest_free(struct manifest *m);

/* Byte size of piece i (the last one may be shorter). */
uint32_t manifest_piece_size(const struct manifest *m, uint32_t piece);

/* Piece length `create` uses when none is given: a power of two between
 * MANIFEST_MIN_PIECE_LEN and MANIFEST_MAX_PIECE_LEN aiming at 1000-2000 pieces. */
uint32_t manifest_choose_piece_length(uint64_t total_length);

/* Encodes m as a complete .torrent (announce, announce-list, comment,
 * created by, creation date, info) into out.  The info dict is m->info when
 * set (so the infohash is preserved), else it is built from the fields and
 * m->info / m->infohash are filled in. */
int manifest_encode(struct manifest *m, struct buf *out);

/* Files are located in the torrent's data by offset: index of the file that
 * holds byte `offset` (the first non-empty one), or -1 when out of range. */
int manifest_file_at(const struct manifest *m, uint64_t offset);

#endif
