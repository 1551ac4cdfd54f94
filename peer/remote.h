/* remote.h -- `shoal remote`: the command-line client of the daemon's control API. */
#ifndef PEER_REMOTE_H_
#define PEER_REMOTE_H_

#include <stdint.h>
#include <stddef.h>

/* argv[0] is "remote".  Returns the process exit status: 0 done, 1 the
 * daemon refused or cannot be reached (one line on stderr), 2 usage. */
int remote_main(int argc, char **argv);

/* "500000", "500k", "1.5M", "2g" (k/m/g = 1024-based, case-insensitive,
 * optional trailing "B", "/s", "iB/s"), "0" = unlimited -> bytes/s.
 * 0 or UV_EINVAL (also above 2^40). */
int remote_parse_rate(const char *s, uint64_t *out);
/* Human size "0 B", "1023 B", "1.5 KiB", "12.0 MiB", ... into out. */
void remote_format_size(uint64_t bytes, char *out, size_t len);

#endif
