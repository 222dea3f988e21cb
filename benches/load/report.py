#!/usr/bin/env python3
"""Turns the raw output of benches/load/run into its markdown table.

Usage: report.py WORKDIR CLK_TCK SCENARIO...
       report.py --one FILE SCENARIO TICKS CLK_TCK [OPENED]   (one run's line, while running)

Reads WORKDIR/wrk-<scenario>-<round>.txt (wrk --latency output) or
WORKDIR/h2load-<scenario>-<round>.txt (h2load -D output), and WORKDIR/cpu.tsv
(scenario, round, CPU clock ticks of the proxy during that run, and optionally the
connections the origin accepted during it: the upstream connections opened, and
the ticks of those spent in the kernel).
Each figure is the median over the rounds, taken per column. A TLS scenario
(`fingate-https`, ...) is compared with the nginx scenario of the same suffix.
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


def parse_h2load(text, path="h2load output"):
    """The same figures from h2load -D output; no percentiles (h2load prints
    min/max/mean/sd only), so p50 and p99 are None. Refuses output that is not a
    finished HTTP/2 run, rather than reporting a wrong figure."""

    def need(pattern, what):
        m = re.search(pattern, text, re.M)
        if not m:
            raise ValueError(f"{path}: no {what} in h2load's output")
        return m

    proto = need(r"^Application protocol:\s*(\S+)", "application protocol").group(1)
    if proto != "h2":
        raise ValueError(f"{path}: h2load negotiated {proto!r}, not h2")
    took = need(r"^finished in ([\d.]+(?:us|ms|s|m)),", "'finished in' line").group(1)
    counts = need(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout", "'requests:' line")
    _, _, _, succeeded, failed, _, _ = (int(n) for n in counts.groups())
    codes = need(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx",
                 "'status codes:' line")
    ok = int(codes.group(1))
    seconds = to_ms(took) / 1000
    # Counted: requests answered 2xx during the run. h2load's "failed" already
    # includes "errored" and "timeout"; a non-2xx answer "succeeded" for h2load.
    bad = failed + (succeeded - ok)
    return ok / seconds, None, None, ok, seconds, bad


def parse(path):
    text = Path(path).read_text()
    if Path(path).name.startswith("h2load-"):
        return parse_h2load(text, path)
    return parse_wrk(text)


def nginx_of(name):
    """The nginx scenario a scenario is compared with: the one of its TLS suffix."""
    base = name.split("@")[0]
    for suffix in ("-https", "-h2", "-handshake", "-resume"):
        if base.endswith(suffix):
            return "nginx" + suffix
    return "nginx"


def fmt_ms(ms):
    if ms is None:
        return "–"
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.2f} ms"


def median(values):
    """Median of the values present (h2load runs have no percentiles)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def one(path, name, ticks, clk_tck, opened=None):
    """One run's line, printed while the rounds go on."""
    rps, _, _, total, _, bad = parse(path)
    cpu_s = int(ticks) / int(clk_tck)
    per_cpu = total / cpu_s if cpu_s else float("nan")
    failed = f"  ({bad} failed)" if bad else ""
    conns = f" {int(opened) * 1000 / total:6.1f} upstream connects per 1k" if opened and total else ""
    print(f"    {name:<18} {rps:8.0f} req/s {per_cpu:8.0f} req per CPU-second "
          f"{1e6 / per_cpu:6.1f} µs CPU per request{conns}{failed}")


def main():
    if sys.argv[1] == "--one":
        one(*sys.argv[2:7])
        return
    work, clk_tck, scenarios = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    cpu, opened, kernel = {}, {}, {}
    for line in (work / "cpu.tsv").read_text().split("\n"):
        if line.strip():
            name, rnd, ticks, *rest = line.split("\t")
            cpu[(name, rnd)] = int(ticks) / clk_tck
            opened[(name, rnd)] = int(rest[0]) if rest else None
            kernel[(name, rnd)] = int(rest[1]) / clk_tck if len(rest) > 1 else None

    rows, warnings = {}, []
    for name in scenarios:
        runs = []
        for f in sorted([*work.glob("wrk-*.txt"), *work.glob("h2load-*.txt")]):
            scenario, rnd = f.stem.split("-", 1)[1].rsplit("-", 1)
            if scenario != name:
                continue
            rps, p50, p99, total, seconds, bad = parse(f)
            if bad:
                warnings.append(f"{name} round {rnd}: {bad} failed requests or socket errors")
            cpu_s = cpu[(name, rnd)]
            conns = opened[(name, rnd)]
            in_kernel = kernel[(name, rnd)]
            runs.append((rps, p50, p99, total / cpu_s, cpu_s / seconds,
                         None if conns is None else conns * 1000 / total,
                         None if in_kernel is None else in_kernel * 1e6 / total))
        if not runs:
            raise SystemExit(f"no load output for {name} in {work}")
        rows[name] = [median(col) for col in zip(*runs)]

    def ratios(name, base):
        """req/s and req per CPU-second of `name` relative to `base`."""
        if base not in rows:
            return ["", ""]
        return [f"{rows[name][i] / rows[base][i]:.2f}×" for i in (0, 3)]

    print("| scenario | req/s | p50 | p99 | req per CPU-second | CPU µs per request "
          "| of which in the kernel | proxy CPU | upstream connects per 1k req "
          "| vs nginx: req/s | per CPU-s | vs bare Pingora: req/s | per CPU-s "
          "| vs its plain self: per CPU-s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in scenarios:
        rps, p50, p99, per_cpu, util, conns, in_kernel = rows[name]
        conns = "–" if conns is None else f"{conns:.1f}"
        in_kernel = "–" if in_kernel is None else f"{in_kernel:.1f}"
        # fingate@B is compared with bare-pingora@B, the baseline of the same build.
        bare = "bare-pingora" + name[len(name.split("@")[0]):]
        # bare Pingora has no TLS: only plain fingate rows are compared with it.
        plain = nginx_of(name) == "nginx"
        vs_bare = ratios(name, bare) if name.startswith("fingate") and plain else ["", ""]
        # `fingate+chain-redis` against `fingate`, `haproxy+chain` against `haproxy`.
        itself = name.split("+")[0] + name[len(name.split("@")[0]):] if "+" in name else None
        vs_plain = ratios(name, itself)[1:] if itself else [""]
        print(f"| {name} | {rps:,.0f} | {fmt_ms(p50)} | {fmt_ms(p99)} | {per_cpu:,.0f} | "
              f"{1e6 / per_cpu:.1f} | {in_kernel} | {util:.0%} | {conns} | "
              + " | ".join(ratios(name, nginx_of(name)) + vs_bare + vs_plain) + " |")
    for w in warnings:
        print(f"\nWARNING: {w}")


if __name__ == "__main__":
    main()
