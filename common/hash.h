/* hash.h -- SHA-1 and SHA-256 over OpenSSL EVP, one-shot and incremental. */
#ifndef COMMON_HASH_H_
#define COMMON_HASH_H_

#include <stddef.h>
#include <stdint.h>

#define HASH_SHA1_LEN 20
#define HASH_SHA256_LEN 32

/* Initialises libcrypto on the calling (main) thread.  Call once at start-up,
 * before any threadpool work hashes: otherwise the first hashing thread
 * loads OpenSSL's configuration and keeps per-thread state that is never
 * released.  0 or UV_EIO. */
int hash_global_init(void);

void hash_sha1(const void *p, size_t n, uint8_t out[HASH_SHA1_LEN]);
void hash_sha256(const void *p, size_t n, uint8_t out[HASH_SHA256_LEN]);

/* Incremental SHA-1.  init returns 0 or UV_ENOMEM; final releases the context. */
struct hash_sha1_ctx { void *md; };
int hash_sha1_init(struct hash_sha1_ctx *c);
void hash_sha1_update(struct hash_sha1_ctx *c, const void *p, size_t n);
void hash_sha1_final(struct hash_sha1_ctx *c, uint8_t out[HASH_SHA1_LEN]);
void hash_sha1_abort(struct hash_sha1_ctx *c);  /* release without a result */

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void hash_hex(const uint8_t *p, size_t n, char *out);
/* Parse exactly 2n hex digits; 0 or -1 (out may then be partly written). */
int hash_unhex(const char *s, size_t slen, uint8_t *out, size_t n);

#endif
