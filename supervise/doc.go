// Package supervise runs long-lived goroutines as supervision trees, in
// the manner of Erlang/OTP supervisors and Akka's supervision: let a unit
// crash, restart it in a known-good state, and keep the failure from
// spreading.
//
// A [Service] is anything with Serve(ctx) error. A [Supervisor] runs an
// ordered list of children (each a [Spec]: a name, a Service, a [Restart]
// policy and a shutdown timeout) and is itself a Service, so supervisors
// nest into a tree. When a child returns or panics, the supervisor decides
// from the child's policy whether it is restarted, and from its
// [Strategy] which siblings are restarted with it:
//
//   - [OneForOne]: only the child that failed.
//   - [OneForAll]: every child (the others are stopped first, in reverse
//     start order), for children that cannot run without each other.
//   - [RestForOne]: the failed child and those started after it, for
//     chains where later children depend on earlier ones.
//
// Restarts are delayed by a per-child exponential backoff with jitter
// ([Config.Backoff], [Config.MaxBackoff], [Config.Jitter]; randomness from
// a seedable [Config.Rand]) and limited by a restart intensity: at most
// [Config.MaxRestarts] restarts in [Config.Period]. Beyond it the
// supervisor stops all its children and its Serve returns an error
// wrapping [ErrTooManyRestarts]: the failure escalates to its parent,
// which applies its own policy — exactly OTP's contract. A panic in a
// child is recovered into a [*PanicError] carrying the stack, and counts
// as a failure like any error.
//
// Shutdown (the context passed to Serve cancelled, or giving up) stops
// the children in reverse start order, each bounded by its shutdown
// timeout; a child that overstays is reported ([EventStopTimeout]) and
// abandoned, since Go cannot kill a goroutine.
//
// Every state change is an [Event] to the [Config.Observer]: started,
// failed (with the reason), restarted, exited, stopped, gave up. A nested
// supervisor without an observer of its own reports to its parent's.
// [Supervisor.Tree] is a snapshot of the whole tree for dashboards, and
// [Supervisor.StopChild] / [Supervisor.StartChild] are the operator's
// "keep it down" and "bring it back" controls. Children may be added
// while the supervisor runs ([Supervisor.Add]) and removed
// ([Supervisor.Remove]), for loops whose owner comes and goes; a service
// that wraps a supervisor ([Wrapper]) nests like the supervisor itself.
//
// # Compared with thejerf/suture and Akka
//
// suture (v4) is the Go reference and shares the Service interface, so a
// suture service runs here unchanged. The differences:
//
//   - Strategies. suture restarts only the failed service (one-for-one);
//     here one-for-all and rest-for-one are available for children that
//     share state or depend on each other in order, as in OTP.
//   - Restart policies. suture restarts whatever returns, unless it returns
//     ErrDoNotRestart. Here each child declares Permanent, Transient or
//     Temporary up front, so a one-shot task and a server sit under the
//     same supervisor without sentinel errors.
//   - Too many failures. suture keeps a decaying failure count and, past
//     its threshold, pauses the whole supervisor for FailureBackoff and
//     then carries on, forever. Here, as in OTP, the supervisor gives up
//     and escalates: a crash loop becomes visible to the parent (and the
//     dashboard) instead of being retried in the dark, and the parent's
//     policy decides whether to restart the subtree, keep it down
//     (Temporary) or fail further up.
//   - Backoff. suture has one supervisor-wide backoff after the threshold;
//     here each child waits an exponential, jittered delay before each
//     restart, so a flapping dependency is not hammered.
//   - Shutdown order. suture cancels all services at once, in no
//     particular order, under one supervisor-wide timeout; here children
//     stop in reverse start order, each with its own timeout, so a
//     component stops before the components it depends on. (A child
//     that must stop its own workers in parallel does so itself, as
//     cmd/bulwark's fleet does with its replica processes.)
//   - Panics. suture can pass them through (PassThroughPanics); here a
//     panic is always recovered, with its stack kept in the error.
//   - No package state. suture numbers supervisors from a package-level
//     counter; here nothing is global, so independent trees share a
//     process.
//   - Observability. suture's EventHook gets typed events; here events are
//     one struct with a Kind, and Tree gives the live state of every node.
//
// Akka's supervision is per actor: the parent decides on each child's
// failure (resume, restart, stop, escalate), restarts are limited by
// maxNrOfRetries within withinTimeRange, and BackoffSupervisor adds
// jittered exponential backoff. This package keeps the decision in the
// supervisor's static configuration (strategy + policy + intensity)
// rather than a per-failure decider function, because Go services report
// failures as error values that callers already branch on with
// errors.Is; a child that wants to "resume" simply handles its error
// itself and keeps serving. Akka Typed's restart discards the actor's
// state and keeps its mailbox; package [github.com/bulwark-go/bulwark/supervise/actor]
// does the same; with a Durable mailbox (package delivery's, on JetStream)
// the told messages also survive the process.
//
// # Concurrency
//
// Each Supervisor's Serve runs one goroutine that owns the children's
// state; each child runs in its own goroutine started by it. Add, Remove,
// StopChild, StartChild and Tree may be called from any goroutine — but a
// child must not StopChild or Remove itself (the supervisor would wait
// for it to return while it waits for the supervisor, until its shutdown
// timeout). The
// Observer is called from the supervisor's goroutine (of the supervisor
// that emits the event), so it must not block and must not call back into
// that supervisor's StopChild or StartChild.
package supervise
