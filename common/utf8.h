/* utf8.h -- strict UTF-8 checks for names, paths and client strings from the network. */
#ifndef COMMON_UTF8_H_
#define COMMON_UTF8_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed UTF-8 sequence at p[0..n) with its code
 * point in *cp, or 0 when the bytes there are not one: overlong forms,
 * surrogates, values above U+10FFFF and truncated sequences are refused. */
size_t utf8_seq(const uint8_t *p, size_t n, uint32_t *cp);

/* Whether p[0..n) is entirely well-formed UTF-8 (as utf8_seq defines it). */
bool utf8_valid(const uint8_t *p, size_t n);

#endif
