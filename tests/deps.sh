#!/bin/sh
# deps.sh -- installs the Debian packages shoal needs to build and test it
# (apt-get; through sudo when not root).  Only missing packages are installed.
#   tests/deps.sh            build + test packages
#   tests/deps.sh bench      also what `make bench` compares against
set -e
PKGS="build-essential pkg-config libuv1-dev libssl-dev libsodium-dev libcurl4-openssl-dev
      libjansson-dev libhttp-parser-dev check libsubunit-dev python3 curl mktorrent valgrind
      iproute2 procps nftables clang libclang-rt-14-dev aria2 transmission-cli python3-libtorrent"
[ "${1:-}" = bench ] && PKGS="$PKGS hyperfine time"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
