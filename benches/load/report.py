#!/usr/bin/env python3
"""Turns the raw output of benches/load/run into its markdown table.

Usage: report.py WORKDIR CLK_TCK SCENARIO...

Reads WORKDIR/wrk-<scenario>-<round>.txt (wrk --latency output) and
WORKDIR/cpu.tsv (scenario, round, CPU clock ticks of the proxy during that run).
Each figure is the median over the rounds, taken per column.
"""
import re
import statistics
import sys
from pathlib import Path

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unknown latency {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(text):
    """Requests/s, p50 and p99 (ms), total requests, seconds run, failed requests."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total, took = re.search(r"(\d+) requests in ([\d.]+\w+),", text).groups()
    seconds = to_ms(took) / 1000
    p = {q: to_ms(v) for q, v in re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M)}
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        bad += sum(int(n) for n in sock.groups())
    return rps, p["50"], p["99"], int(total), seconds, bad


def fmt_ms(ms):
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.2f} ms"


def main():
    work, clk_tck, scenarios = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    cpu = {}
    for line in (work / "cpu.tsv").read_text().split("\n"):
        if line.strip():
            name, rnd, ticks = line.split("\t")
            cpu[(name, rnd)] = int(ticks) / clk_tck

    rows, warnings = {}, []
    for name in scenarios:
        runs = []
        for f in sorted(work.glob("wrk-*.txt")):
            scenario, rnd = f.stem[len("wrk-"):].rsplit("-", 1)
            if scenario != name:
                continue
            rps, p50, p99, total, seconds, bad = parse_wrk(f.read_text())
            if bad:
                warnings.append(f"{name} round {rnd}: {bad} failed requests or socket errors")
            cpu_s = cpu[(name, rnd)]
            runs.append((rps, p50, p99, total / cpu_s, cpu_s / seconds))
        rows[name] = [statistics.median(col) for col in zip(*runs)]

    def ratios(name, base):
        """req/s and req per CPU-second of `name` relative to `base`."""
        if base not in rows:
            return ["", ""]
        return [f"{rows[name][i] / rows[base][i]:.2f}×" for i in (0, 3)]

    print("| scenario | req/s | p50 | p99 | req per CPU-second | proxy CPU "
          "| vs nginx: req/s | per CPU-s | vs bare Pingora: req/s | per CPU-s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in scenarios:
        rps, p50, p99, per_cpu, util = rows[name]
        # fingate@B is compared with bare-pingora@B, the baseline of the same build.
        bare = "bare-pingora" + name[len(name.split("@")[0]):]
        vs_bare = ratios(name, bare) if name.startswith("fingate") else ["", ""]
        print(f"| {name} | {rps:,.0f} | {fmt_ms(p50)} | {fmt_ms(p99)} | {per_cpu:,.0f} | {util:.0%} | "
              + " | ".join(ratios(name, "nginx") + vs_bare) + " |")
    for w in warnings:
        print(f"\nWARNING: {w}")


if __name__ == "__main__":
    main()
