/* filesel.c -- file index lists such as "0,3-5" (--only, --skip, the daemon's `only` and priorities). */
#include "common/filesel.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int filesel_parse(const char *list, uint8_t *sel, uint32_t nfiles, char *err, size_t errlen)
{
  /* Ranges are summed in a difference array, then applied in one pass: the
   * work is the length of the list plus the number of files, however many
   * overlapping ranges a hostile list repeats. */
  int32_t *delta = calloc((size_t)nfiles + 1, sizeof *delta);
  if (delta == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  const char *p = list;
  while (*p) {
    char *end;
    errno = 0;
    unsigned long a = strtoul(p, &end, 10), b = a;
    /* A digit first: strtoul would also take spaces and a sign. */
    if (!isdigit((unsigned char)*p) || errno)
      goto bad;
    if (*end == '-') {
      const char *q = end + 1;
      b = strtoul(q, &end, 10);
      if (!isdigit((unsigned char)*q) || errno || b < a)
        goto bad;
    }
    if (b >= nfiles) {
      if (nfiles == 0)
        snprintf(err, errlen, "file index %lu is out of range (the torrent has no files)", b);
      else
        snprintf(err, errlen, "file index %lu is out of range (the torrent has %u files, 0 to %u)", b, nfiles,
                 nfiles - 1);
      free(delta);
      return -1;
    }
    if (delta[a] < INT32_MAX)  /* only "> 0" matters below: saturate */
      delta[a]++;
    if (delta[b + 1] > INT32_MIN + 1)
      delta[b + 1]--;
    if (*end == ',')
      end++;
    else if (*end != '\0')
      goto bad;
    p = end;
  }
  int64_t depth = 0;
  for (uint32_t i = 0; i < nfiles; i++) {
    depth += delta[i];
    if (depth > 0)
      sel[i] = 1;
  }
  free(delta);
  return 0;
bad:
  snprintf(err, errlen, "bad file list '%s': want indexes like 0,3-5", list);
  free(delta);
  return -1;
}
