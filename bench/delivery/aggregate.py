#!/usr/bin/env python3
"""Medians (and min–max) per sync policy and phase over several runs'
results.json files, as a markdown table.

    bench/delivery/aggregate.py bench/delivery/results/run*/results.json
"""
import json, statistics, sys

rows = {}
for path in sys.argv[1:]:
    for r in json.load(open(path)):
        rows.setdefault((r["Policy"], r["Phase"]), []).append(r)

def ms(ns):
    return ns / 1e6

def cell(vals, fmt="{:.0f}"):
    vals = [v for v in vals]
    if not vals:
        return ""
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"

POL = {"default": "default (fsync every 2 min)", "always": "sync_always (fsync per write)"}
ORDER = ["closed", "rate", "near", "accept only", "deliver only"]
print("| sync policy | phase | runs | accepted/s | delivered/s | accept p50 ms | accept p99 ms | e2e 202→backend p50 ms | e2e 202→backend p99 ms | POST→backend p50 ms | POST→backend p99 ms | delivered before 202 | bulwark CPU µs/msg | client+backend CPU µs/msg |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for pol in ("default", "always"):
    for ph in ORDER:
        rs = rows.get((pol, ph))
        if not rs:
            continue
        acc = [r["AcceptedPerSec"] for r in rs] if ph != "deliver only" else []
        dlv = [r["DeliveredInPhasePerSec"] for r in rs] if ph != "accept only" else []
        has_acc = ph != "deliver only"
        has_e2e = ph in ("closed", "rate", "near")
        f2 = "{:.2f}"
        print("| " + " | ".join([
            POL[pol], ph, str(len(rs)),
            cell(acc) if has_acc else "–",
            cell(dlv) if dlv else "–",
            cell([ms(r["Accept"]["P50"]) for r in rs], f2) if has_acc else "–",
            cell([ms(r["Accept"]["P99"]) for r in rs], f2) if has_acc else "–",
            cell([ms(r["E2E"]["P50"]) for r in rs], f2) if has_e2e else "–",
            cell([ms(r["E2E"]["P99"]) for r in rs], f2) if has_e2e else "–",
            cell([ms(r["E2EFromSend"]["P50"]) for r in rs], f2) if has_e2e else "–",
            cell([ms(r["E2EFromSend"]["P99"]) for r in rs], f2) if has_e2e else "–",
            cell([100 * r["ArrivedBefore202"] / max(r["Accepted"], 1) for r in rs], "{:.0f}%") if has_e2e else "–",
            cell([r["GatewayCPUPerReq"] for r in rs]),
            cell([r["BenchCPUPerReq"] for r in rs]),
        ]) + " |")
