/* err.h -- shoal's own error codes (negative, below libuv's range) and their messages. */
#ifndef COMMON_ERR_H_
#define COMMON_ERR_H_

#include <stddef.h>

/* Functions return 0 on success or a negative code: either a libuv/errno
 * code (UV_ENOMEM, UV_EINVAL, ...) or one of these.  shoal_strerror() names
 * both kinds. */
#define SHOAL_ERRNO_MAP(X)                                              \
  X(BENCODE,   "malformed bencode")                                     \
  X(MANIFEST,  "invalid torrent file")                                  \
  X(PATH,      "unsafe file path")                                      \
  X(PROTO,     "protocol error")                                        \
  X(TOOBIG,    "input too large")                                       \
  X(HASH,      "hash mismatch")                                         \
  X(TRACKER,   "tracker error")                                         \
  X(SELF,      "connection to self")                                    \
  X(EXISTS,    "already exists")                                        \
  X(NOTFOUND,  "not found")                                             \
  X(REMOTE,    "the daemon refused the request")

enum {
  SHOAL_E_BASE_ = -6000,
#define SHOAL_ERR_ENUM_(name, msg) SHOAL_E##name,
  SHOAL_ERRNO_MAP(SHOAL_ERR_ENUM_)
#undef SHOAL_ERR_ENUM_
  SHOAL_E_LAST_
};

/* Message for a shoal code or a libuv/errno code.  Never NULL. */
const char *shoal_strerror(int err);

/* Writes a one-line message into the caller's err[errlen] (when err is not
 * NULL) and returns code: `return shoal_fail(err, errlen, SHOAL_EPROTO, ...)`. */
int shoal_fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Size of the caller-owned buffers that parsers fill with a one-line
 * explanation of what was wrong with their input. */
#define SHOAL_ERRLEN 256

#endif
