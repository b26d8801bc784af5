// Package delivery is Bulwark's durable asynchronous path (the role Kafka or
// RabbitMQ play elsewhere): the gateway hands it a [bulwark.Message], it is
// stored in a NATS JetStream stream on disk, and workers later send it through
// the gateway's forwarding path ([Forwarder]) until the backend answers,
// retrying with backoff and moving it to a dead-letter stream after
// [Config.MaxAttempts].
//
//	Enqueue ─► work stream (file, Limits) ─► pull consumers ─► Forwarder ─► backend
//	   │                                            │  err/5xx/408/429: NakWithDelay(backoff)
//	   └─► status KV (queued)                       │  answered: delete, Ack
//	                                                │  after MaxAttempts: dead-letter stream, delete, Term
//	                                                └► status KV (delivering / delivered / dead_lettered)
//
// # Engine
//
// By default Open embeds a nats-server with JetStream (file storage under
// [Config.DataDir]) and connects to it in process, so the whole path runs
// inside the Bulwark binary; [Config.Cluster] joins embedded servers into a
// JetStream cluster (stream Replicas 3), and [Config.URLs] points at an
// external NATS cluster instead.
//
// # Streams
//
//   - <Name>_WORK: Limits retention, no limit but MaxBacklog. A worker
//     deletes a message once it is settled (the backend answered, or it was
//     moved to the dead-letter stream), before acknowledging it, so the
//     stream holds exactly the backlog: its message count is the queue length
//     and its first message is the oldest undelivered one, both read from one
//     stream-info call, and a restart resumes from what is left. (A crash
//     between the delete and the ack leaves a pending message that is gone;
//     the server drops it when it would redeliver it; a delete the stream
//     cannot take for 30 s is not acknowledged either, so the message is
//     delivered again.) WorkQueue retention,
//     used before, lets the server delete messages on its own reading of the
//     consumers' state, and a clustered stream's leader reads its local
//     replica of each consumer: a replica that is behind after SIGKILLs
//     deleted a still-pending message cluster-wide in the 10-minute soak.
//     Here nothing but a settled delivery removes a message, and the stats
//     loop re-enqueues (with a fresh sequence) any message still stored at or
//     below its consumer's acknowledgement floor — one the consumer passed
//     over without it being settled — so a consumer whose state lost a
//     pending message costs a duplicate delivery, not the message. A work
//     stream created with WorkQueue retention by an earlier version is kept
//     (nats-server cannot change retention), with a warning. The stream's
//     Duplicates window (default 2 min) deduplicates on the Nats-Msg-Id
//     header, which Enqueue derives from the client's Idempotency-Key.
//   - <Name>_DEAD: Limits retention; dead letters with the last error and the
//     number of attempts in headers. [Service.Replay] moves them back.
//   - KV bucket <Name>_STATUS: one [bulwark.DeliveryStatus] per message id,
//     kept for [Config.StatusTTL] after its last change.
//
// A stored message is its body as the NATS payload plus one header holding
// the rest of the [bulwark.Message] as JSON (codec.go).
//
// # Ordering
//
// Messages without an OrderKey go to one subject served by one durable pull
// consumer with up to MaxAckPending deliveries outstanding, each delivery in
// its own goroutine. Messages with an OrderKey go to one of
// [Config.Partitions] subjects chosen by an FNV-1a hash of the key; each
// partition has its own durable consumer with MaxAckPending 1, so the server
// hands out the next message of a partition only after the previous one was
// acknowledged or terminated. A NakWithDelay keeps the message pending (the
// server only moves its redelivery time), so a retrying message blocks its
// partition and later messages of the same key cannot overtake it. The price
// is head-of-line blocking among the keys that share a partition. A message
// that is dead-lettered stops blocking its key; Replay re-enqueues it behind
// whatever was accepted since. Changing Partitions between runs of the same
// stream re-maps keys, so ordering holds only among messages accepted with
// the same Partitions value.
//
// # Durability
//
// Enqueue returns only after JetStream's PubAck: the message is in the
// stream's file store (and, with Replicas 3, on a quorum of servers). The
// store writes every message to the operating system at once, so a process
// crash (kill -9) loses nothing acknowledged; it fsyncs every
// [Config.SyncInterval] (nats-server's default, 2 minutes), so an OS crash or
// power loss of a single node can lose up to that interval unless
// [Config.SyncAlways] is set (fsync before every PubAck, much slower).
//
// Delivery is at least once: a crash between the backend's answer and the
// acknowledgement redelivers. Deliveries therefore always carry an
// Idempotency-Key header (the client's, or the message id) so backends can
// deduplicate.
//
// # Concurrency
//
// Enqueue, Status, Replay and Snapshot may be called from any goroutine.
// The Service owns: the embedded server's goroutines, one fetch goroutine per
// consumer (1 + Partitions; an ordered partition delivers in it, asking
// for each message with its own pull request), one goroutine per unordered
// delivery in flight (bounded by the consumer's MaxAckPending), and a stats
// goroutine (which also re-enqueues passed-over messages). Close stops fetching,
// lets deliveries in flight finish for up to [Config.DrainTimeout], then
// cancels them, and waits for every goroutine before shutting the server down.
package delivery
