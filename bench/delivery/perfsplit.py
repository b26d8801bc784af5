#!/usr/bin/env python3
"""Splits a `perf record -g` profile of bulwark into the costs of the async
path: each sample goes to the outermost matching root (goroutine kind), and
a few costs are also counted inclusively wherever they occur.

    perf script -i perf-default.data | bench/delivery/perfsplit.py
"""
import sys

ROOTS = [  # (label, substring of a frame), matched from the outermost frame inward
    ("HTTP accept path (net/http server conn: read request, acceptCode, 202)", "net/http.(*conn).serve"),
    ("HTTP accept path (net/http server conn: read request, acceptCode, 202)", "net/http.(*connReader).backgroundRead"),
    ("delivery workers (fetch, decode, Forward, status Puts, ack)", "delivery.(*Service).fetchLoop"),
    ("delivery heartbeat goroutine per message", "delivery.(*Service).heartbeat"),
    ("outgoing HTTP transport to backend (persistConn loops)", "net/http.(*persistConn)"),
    ("JetStream stream ingest (internalLoop: store to file)", "server.(*stream).internalLoop"),
    ("JetStream consumers (acks, pull requests)", "server.(*consumer)"),
    ("NATS in-process connections (server + client read/flush loops)", "server.(*client)"),
    ("NATS client dispatch (PubAck futures, pulled messages, subscriptions)", "nats%2ego.(*Conn).waitForMsgs"),
    ("NATS in-process connections (server + client read/flush loops)", "nats%2ego.(*Conn)"),
    ("NATS in-process connections (server + client read/flush loops)", "nats-io/nats.go.(*Conn)"),
    ("GC background mark workers + sweeper", "runtime.gcBgMarkWorker"),
    ("GC background mark workers + sweeper", "runtime.bgsweep"),
    ("Go scheduler (idle/park, stack growth)", "runtime.schedule"),
    ("Go scheduler (idle/park, stack growth)", "runtime.mstart"),
    ("Go scheduler (idle/park, stack growth)", "runtime.morestack"),
]
INCL = [
    ("GC assists (inside any goroutine)", "runtime.gcAssistAlloc"),
    ("all GC (bg workers, sweeper, assists)", ("runtime.gcAssistAlloc", "runtime.gcBgMarkWorker", "runtime.bgsweep")),
    ("malloc (mallocgc, incl. assists)", "runtime.mallocgc"),
    ("Enqueue (client side of both publishes)", "delivery.(*Service).Enqueue"),
    ("status KV Put by workers (client side)", "delivery.(*Service).putStatus"),
    ("Forward through the gateway to backend", "proxy.(*Gateway).Forward"),
    ("file store writes (storeRawMsg)", "server.(*fileStore).storeRawMsg"),
    ("fsync", "syscall.Fsync"),
    ("encoding/json", "encoding/json."),
    ("syscalls", "entry_SYSCALL_64"),
]

def flush(stack, roots, incl):
    if not stack:
        return 0
    label = "other (runtime scheduler, timers, kernel, ...)"
    for fr in reversed(stack):  # outermost first
        hit = next((l for l, pat in ROOTS if pat in fr), None)
        if hit:
            label = hit
            break
    roots[label] = roots.get(label, 0) + 1
    for l, pat in INCL:
        pats = pat if isinstance(pat, tuple) else (pat,)
        if any(p in fr for fr in stack for p in pats):
            incl[l] = incl.get(l, 0) + 1
    return 1

roots, incl, n, stack = {}, {}, 0, []
for line in sys.stdin:
    if not line.strip():
        n += flush(stack, roots, incl)
        stack = []
    elif line[0] in " \t":
        parts = line.split(None, 1)
        if len(parts) == 2:
            stack.append(parts[1].strip())
n += flush(stack, roots, incl)
print(f"samples: {n}\n\nby goroutine kind (exclusive, sums to 100%):")
for l, c in sorted(roots.items(), key=lambda x: -x[1]):
    print(f"  {100*c/n:5.1f}%  {l}")
print("\ninclusive (overlapping):")
for l, _ in INCL:
    print(f"  {100*incl.get(l,0)/n:5.1f}%  {l}")
