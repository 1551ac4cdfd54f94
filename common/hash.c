/* hash.c -- SHA-1 and SHA-256 over OpenSSL EVP (SHA-NI where the CPU has it). */
#include "common/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uv.h>

int hash_global_init(void)
{
  return OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) == 1 ? 0 : UV_EIO;
}

void hash_sha1(const void *p, size_t n, uint8_t out[HASH_SHA1_LEN])
{
  EVP_Digest(p, n, out, NULL, EVP_sha1(), NULL);
}

void hash_sha256(const void *p, size_t n, uint8_t out[HASH_SHA256_LEN])
{
  EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL);
}

int hash_sha1_init(struct hash_sha1_ctx *c)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md == NULL)
    return UV_ENOMEM;
  if (EVP_DigestInit_ex(md, EVP_sha1(), NULL) != 1) {
    EVP_MD_CTX_free(md);
    return UV_ENOMEM;
  }
  c->md = md;
  return 0;
}

void hash_sha1_update(struct hash_sha1_ctx *c, const void *p, size_t n)
{
  EVP_DigestUpdate(c->md, p, n);
}

void hash_sha1_final(struct hash_sha1_ctx *c, uint8_t out[HASH_SHA1_LEN])
{
  unsigned int len = HASH_SHA1_LEN;
  EVP_DigestFinal_ex(c->md, out, &len);
  EVP_MD_CTX_free(c->md);
  c->md = NULL;
}

void hash_sha1_abort(struct hash_sha1_ctx *c)
{
  EVP_MD_CTX_free(c->md);
  c->md = NULL;
}

void hash_hex(const uint8_t *p, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int hash_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
  if (slen != 2 * n)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}
