/* filesel.c -- file index lists such as "0,3-5" (--only, --skip, the daemon's `only` and priorities). */
#include "common/filesel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int filesel_parse(const char *list, uint8_t *sel, uint32_t nfiles, char *err, size_t errlen)
{
  const char *p = list;
  while (*p) {
    char *end;
    errno = 0;
    unsigned long a = strtoul(p, &end, 10), b = a;
    if (end == p || errno || *p == '-' || *p == '+')
      goto bad;
    if (*end == '-') {
      const char *q = end + 1;
      b = strtoul(q, &end, 10);
      if (end == q || errno || *q == '-' || *q == '+' || b < a)
        goto bad;
    }
    if (b >= nfiles) {
      snprintf(err, errlen, "file index %lu is out of range (the torrent has %u files, 0 to %u)", b, nfiles,
               nfiles - 1);
      return -1;
    }
    for (unsigned long i = a; i <= b; i++)
      sel[i] = 1;
    if (*end == ',')
      end++;
    else if (*end != '\0')
      goto bad;
    p = end;
  }
  return 0;
bad:
  snprintf(err, errlen, "bad file list '%s': want indexes like 0,3-5", list);
  return -1;
}

