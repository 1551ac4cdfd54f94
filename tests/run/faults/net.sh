# net.sh -- network namespaces for the fault-injection tests (source it after lib.sh):
# a "switch" namespace holding a Linux bridge, one namespace per node joined to it
# by a veth pair (eth0 in the node, pN in the switch), addresses 10.231.1.N/24 that
# exist only inside these namespaces (nothing is routed anywhere else), and the
# faults themselves: packet loss and one-shot resets with nftables, rate limits
# with tc tbf.  Every namespace created is remembered by its exact name and
# deleted by net_cleanup.
NET_PREFIX="shoal-f-$$"
NET_SWITCH="$NET_PREFIX-sw"
NET_NAMES=()          # every namespace this script created, by exact name
NET_NODES=()          # node names (without the prefix)

# Creates the switch namespace and its bridge; fails (returns 1) when network
# namespaces cannot be made here.
net_init() {
  ip netns add "$NET_SWITCH" 2>/dev/null || return 1
  NET_NAMES+=("$NET_SWITCH")
  ip -n "$NET_SWITCH" link set lo up &&
    ip -n "$NET_SWITCH" link add br0 type bridge &&
    ip -n "$NET_SWITCH" link set br0 up
}

# The namespace of a node.
ns() { echo "$NET_PREFIX-$1"; }

# A node: its own namespace, a veth pair to the switch, address 10.231.1.N/24.
# Sets IP_<name>.
net_node() {  # name, N
  local name=$1 n=$2 nsn
  nsn=$(ns "$name")
  ip netns add "$nsn" || return 1
  NET_NAMES+=("$nsn")
  NET_NODES+=("$name")
  ip -n "$NET_SWITCH" link add "p$n" type veth peer name eth0 netns "$nsn" &&
    ip -n "$NET_SWITCH" link set "p$n" master br0 &&
    ip -n "$NET_SWITCH" link set "p$n" up &&
    ip -n "$nsn" link set lo up &&
    ip -n "$nsn" addr add "10.231.1.$n/24" dev eth0 &&
    ip -n "$nsn" link set eth0 up || return 1
  eval "IP_$name=10.231.1.$n; PORT_$name=p$n"
}

# Runs a command inside a node's namespace.
in_ns() {  # name, command...
  local nsn; nsn=$(ns "$1"); shift
  ip netns exec "$nsn" "$@"
}

# Starts a command in a node's namespace in the background (lib.sh's start:
# output in $TMP/NAME.out/.err, PID -- the command's own, ip netns exec execs
# it -- in LAST_PID and PID_<name>, killed at exit).
ns_start() {  # name, node, command...
  local name=$1 node=$2; shift 2
  start "$name" ip netns exec "$(ns "$node")" "$@"
}
ns_start_shoal() {  # name, node, shoal args...
  local name=$1 node=$2; shift 2
  ns_start "$name" "$node" $SHOAL_WRAP "$SHOAL_BIN" "$@"
}

# True when something accepts TCP connections on ADDR:PORT, seen from a node.
ns_port_open() {  # node, addr, port
  in_ns "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}

# ---- faults ----

# Drops PCT % of the packets a node sends on its link (every packet between two
# nodes is sent by exactly one of them, so every path loses PCT %).
fault_loss() {  # node, pct
  in_ns "$1" nft -f - <<NFT
table inet shoal_loss {
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "eth0" numgen random mod 100 < $2 counter drop
  }
}
NFT
}

# Resets, once, the first TCP connection of a node's listening PORT that has
# carried BYTES bytes (both ways): the packet that crosses the mark is rejected
# with a TCP reset, which ends the node's socket; the other end learns it from
# the reset the node's kernel answers its next segment with.  Later connections
# are left alone (the set "done" remembers that the reset happened).
fault_reset_once() {  # node, port, bytes
  in_ns "$1" sysctl -qw net.netfilter.nf_conntrack_acct=1 2>/dev/null
  in_ns "$1" nft -f - <<NFT
table inet shoal_reset {
  set done { type inet_proto; }
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "eth0" tcp sport $2 ct bytes >= $3 meta l4proto != @done add @done { meta l4proto } counter reject with tcp reset
  }
}
NFT
}
# How many resets fault_reset_once sent.
resets_sent() {  # node
  in_ns "$1" nft list table inet shoal_reset 2>/dev/null | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -n 1
}

# Limits what a node sends on its link to RATE (tc syntax, e.g. 8mbit).
fault_rate() {  # node, rate
  in_ns "$1" tc qdisc replace dev eth0 root tbf rate "$2" burst 32kb latency 100ms
}

# Limits what a node receives on its link to RATE (a tbf on the switch's port
# towards it).
fault_rate_in() {  # node, rate
  local port; eval "port=\$PORT_$1"
  ip netns exec "$NET_SWITCH" tc qdisc replace dev "$port" root tbf rate "$2" burst 32kb latency 100ms
}

# Removes every fault from a node.
fault_clear() {  # node
  local port; eval "port=\$PORT_$1"
  in_ns "$1" nft delete table inet shoal_loss 2>/dev/null
  in_ns "$1" nft delete table inet shoal_reset 2>/dev/null
  in_ns "$1" tc qdisc del dev eth0 root 2>/dev/null
  ip netns exec "$NET_SWITCH" tc qdisc del dev "$port" root 2>/dev/null
  return 0
}
fault_clear_all() {
  local n
  for n in "${NET_NODES[@]}"; do fault_clear "$n"; done
}

# Deletes every namespace this script created (by exact name).
net_cleanup() {
  local n
  for n in "${NET_NAMES[@]}"; do
    ip netns del "$n" 2>/dev/null
  done
  NET_NAMES=()
}
