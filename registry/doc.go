// Package registry is Bulwark's service discovery: the source of truth for
// which instances of which service exist and whether to route to them (the
// role Eureka plays for Netflix). Instances register and renew leases; the
// gateway watches services through a Client that keeps a last-known-good
// cache.
//
//	instances ─register/renew─► Node (HTTP) ─► leader ─► Raft log ─► catalog on every node
//	proxy ◄── Client.Watch (blocking queries, failover, cache) ◄── any node
//
// # Replication
//
// A Node is a member of a hashicorp/raft cluster (TCP transport, a bbolt log
// store, file snapshots). The catalog — services, their instances with
// state, lease TTL, metadata and health URL, and per-service indexes — is
// the Raft FSM. Every change is a log entry, and the catalog index of a
// service is the Raft index of its last change, so readers can block until
// it moves (GET /v1/services/{s}?index=N&wait=30s, or the SSE stream
// GET /v1/watch/{s}). Writes reaching a follower are reverse-proxied to the
// leader, whose HTTP address every node learns from the catalog. Reads are
// answered by any node from its own catalog and flagged stale
// (X-Bulwark-Stale: true, "stale": true) when the node has not heard from a
// leader within two heartbeat timeouts; a blocking query held by a node
// that turns stale answers at once so the client can move on. A read may pass ?min_index=N (the
// index of the caller's last acknowledged write; the Client does this) to
// wait briefly until the answering node has applied it: read-your-writes
// on any node.
//
// Local reads are the default because discovery wants availability; they
// are not linearizable (a follower can answer from before a write that was
// already acknowledged). GET /v1/services/{s}?consistent (and
// /v1/services?consistent) is linearizable: a follower forwards it to the
// leader, which answers only after a Raft barrier issued after the read
// arrived has committed and been applied (concurrent consistent reads
// share one barrier); without a leader that can prove its quorum the read
// fails with 503 instead of answering stale. TestLinearizableConsistentReads
// records concurrent register/deregister/consistent-read histories over
// 20 partition/stop cycles of a three-node cluster and checks them with
// porcupine; TestLinearizabilityCheckCatchesLocalReads shows the same check
// rejecting default (local) reads.
//
// A cluster starts either with one node bootstrapping (Config.Bootstrap,
// no Peers) and the others joining through it (Config.Peers, POST /v1/join,
// which the leader turns into AddVoter), or with every node bootstrapping
// the same full peer list. A restarted node rejoins from its DataDir.
//
// # Leases
//
// Renewals are not log entries: only the leader tracks deadlines, in
// memory, and commits state changes. An instance moves through:
//
//	            register                 deadline missed           SuspectTimeout more
//	(none) ───────────────► up ─────────────────────────► suspect ───────────────────► removed
//	                         ▲                              │
//	                         └────── renewal arrives ───────┘
//	deregister: any state ──► removed
//
// Suspect is not dead: a suspect instance stays registered (bulwark
// HealthSuspect, not Routable), so a consumer routes away from it at once
// but a late renewal brings it straight back without churn. A leader that
// has just been elected cannot know when instances last renewed with its
// predecessor, so it first catches up (Barrier) and then grants every lease
// a fresh grace period of one TTL before judging any.
//
// Defaults and the resulting detection time (kill -9 of an instance until it
// leaves every watching Client's routable set):
//
//	TTL 1 s, renewal every TTL/3 ≈ 333 ms (Client), lease scan every 100 ms
//	suspect   ≤ TTL + scan + commit + watch push ≈ 1.1–1.2 s (≤ 2 s required)
//	removed   ≈ suspect + SuspectTimeout (2 s) ≈ 3.1–3.2 s
//
// measured by TestLeaseExpiryDetection on loopback.
//
// # Partitions (self-preservation)
//
// Before committing any suspect or removal the leader confirms it still
// leads a quorum (raft VerifyLeader); a leader cut off in a minority steps
// down after LeaderLeaseTimeout and cannot commit anyway. A node on the
// minority side therefore expires nothing and marks its reads stale, while
// the majority elects a leader that grants fresh grace and keeps judging
// leases. This scopes Eureka's self-preservation to the partition instead of
// a global renewal-rate switch that can stay on forever.
//
// # Client
//
// Client.Register keeps a lease renewed from one goroutine (TTL/3, backoff
// with jitter on errors, re-registration after a 404) until
// Registration.Close deregisters. Client.Watch follows a service with
// blocking queries, fails over across nodes (and away from stale ones),
// and never reports an empty list because of an outage: it keeps the last
// good answer, which Client.Instances also serves when no node answers.
//
// # Concurrency
//
// Raft calls the FSM from its own goroutine; readers take the FSM's read
// lock and copy. The lease table has two locks of its own (lease.go):
// renewal handlers hold its RWMutex for reading and store atomic
// deadlines; the leader's lease loop holds the wheel mutex, and the RWMutex
// for writing only to add or drop entries (lock order: table, then wheel).
// Neither is held while calling Raft. Node goroutines: HTTP server, leadership watcher (which
// owns the lease loop for each term), membership loop; Close stops and
// waits for all of them.
package registry
