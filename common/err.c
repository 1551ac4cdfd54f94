/* err.c -- messages for shoal's error codes. */
#include "common/err.h"

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
