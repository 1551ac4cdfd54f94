/* filesel.h -- file index lists such as "0,3-5": which files of a torrent a command names. */
#ifndef COMMON_FILESEL_H_
#define COMMON_FILESEL_H_

#include <stddef.h>
#include <stdint.h>

/* Parses list (comma-separated indexes and inclusive ranges "a-b", no
 * spaces, non-empty) and sets sel[i] = 1 for each listed file (other
 * entries are left as they are).  Every index must be below nfiles.
 * 0, or -1 with a one-line reason in err. */
int filesel_parse(const char *list, uint8_t *sel, uint32_t nfiles, char *err, size_t errlen);

#endif
