/* err.c -- messages for shoal's error codes. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <uv.h>

const char *shoal_strerror(int err)
{
  switch (err) {
#define SHOAL_ERR_CASE_(name, msg) case SHOAL_E##name: return msg;
    SHOAL_ERRNO_MAP(SHOAL_ERR_CASE_)
#undef SHOAL_ERR_CASE_
  case 0:
    return "success";
  default:
    if (err > SHOAL_E_BASE_ && err < 0 && err >= -4096)
      return uv_strerror(err);
    return "unknown error";
  }
}

int shoal_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}
