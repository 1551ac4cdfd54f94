/* daemon.h -- `shoal daemon`: a long-lived node that keeps many torrents, controlled through the control API. */
#ifndef PEER_DAEMON_H_
#define PEER_DAEMON_H_

/* argv[0] is "daemon".  Runs until SIGTERM/SIGINT (then saves every
 * torrent's state and returns 0), or returns an exit status at once:
 * 1 cannot start (port taken, another daemon on the config dir, ...),
 * 2 usage or settings error.  One line on stderr says why. */
int daemon_main(int argc, char **argv);

#endif
