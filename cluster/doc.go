// Package cluster removes the gateway as a single point of failure: a small
// Raft group of gateways (3 or 5, hashicorp/raft) decides which one owns a
// virtual IP, the role keepalived plays with VRRP, but by quorum, so a
// partition can never leave two owners.
//
// Ownership is a lease committed through the Raft log. Only the Raft leader
// proposes lease entries (acquire, renew, release), so at most one node can
// get a lease entry committed at a time. The holder counts its lease from
// the instant it proposed the entry and gives the address up at
// Lease - Removal - Drift after that instant; every other node counts from
// the later instant it applied the entry and, once leader, proposes a new
// acquisition only after Lease has passed since then. A holder that cannot
// renew (partition, lost quorum, lost leadership) has therefore removed the
// address before anyone else may add it. See docs/ha.md for the arithmetic.
//
// The owner puts the address on a private, non-persistent TUN device (the
// kernel answers ARP for it on the LAN interface, Linux's weak host model)
// and announces it with gratuitous ARP. Because the device lives only as
// long as the process's file descriptor, a kill -9 takes the address with
// it: a crashed owner cannot keep answering for the VIP.
//
// Graceful stop (Leave) drains first: the node's listening sockets drop new
// SYNs silently (a BPF socket filter, so clients retransmit instead of
// seeing a reset), in-flight requests finish, the address is removed, the
// lease is released through the log and leadership moves to a peer, which
// takes the address at once.
//
// The package knows nothing of the gateway: cmd/bulwark wires a Node beside
// it, passing ListenControl to the gateway's listeners and the gateway's
// Shutdown as Leave's drain.
package cluster
