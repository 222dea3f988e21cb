#!/usr/bin/env python3
"""Per-request figures from callgrind dumps (used by benches/load/instructions).

Usage:
  callgrind_report.py summary NAME DUMP WRK_OUTPUT
      one markdown row: requests, total and request-path instructions per request
  callgrind_report.py diff TOP BASE_DUMP BASE_WRK DUMP WRK
      the TOP functions whose self instructions per request grew most from BASE
"""
import re
import subprocess
import sys

# The listener's per-connection task: everything a request costs on the worker.
REQUEST_PATH = "pingora_core::services::listening::Service<A>::run_endpoint::{{closure}}::{{closure}}"


def requests(wrk_path):
    with open(wrk_path) as f:
        return int(re.search(r"(\d+) requests in", f.read()).group(1))


def annotate(dump, *flags):
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", *flags, dump],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = {}
    total = None
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = count
            continue
        name = re.sub(r"\s*\[[^\]]*\]$", "", name).replace("???:", "")
        name = re.sub(r"^\S*/([^/:]+:)", r"\1", name)  # libc file paths
        rows[name] = rows.get(name, 0) + count
    return total, rows


def summary(name, dump, wrk):
    n = requests(wrk)
    total, _ = annotate(dump)
    _, inclusive = annotate(dump, "--inclusive=yes")
    path = inclusive.get(REQUEST_PATH)
    path_text = f"{path / n:,.0f}" if path else "n/a"
    print(f"| {name} | {n:,} | {total / n:,.0f} | {path_text} |")


def diff(top, base_dump, base_wrk, dump, wrk):
    nb, nf = requests(base_wrk), requests(wrk)
    _, base = annotate(base_dump)
    _, new = annotate(dump)
    per = {k: new.get(k, 0) / nf - base.get(k, 0) / nb for k in set(base) | set(new)}
    print("| change | fingate | bare | function |\n|---:|---:|---:|---|")
    for k in sorted(per, key=lambda k: -per[k])[: int(top)]:
        print(f"| {per[k]:+,.0f} | {new.get(k, 0) / nf:,.0f} | {base.get(k, 0) / nb:,.0f} | `{k[:110]}` |")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"summary": summary, "diff": diff}[cmd](*args)
