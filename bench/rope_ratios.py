#!/usr/bin/env python3
"""Ratios of rotary_bench rows to their limit rows, from one run's JSON output.

    rotary_bench --benchmark_format=json --benchmark_out=run.json ...
    bench/rope_ratios.py run.json

For each shape (type, head_dim, tokens) it prints every kernel row's bytes/s and its ratio to the
memcpy and scale_in_place rows of the same shape in the same run.
"""
import json
import re
import sys
from collections import defaultdict


def main(path):
    with open(path) as f:
        run = json.load(f)
    rows = defaultdict(dict)  # (type, head_dim, tokens) -> {row: bytes/s}
    for b in run["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        m = re.match(r"((?:fp|bf)\d+)/(.+)/head_dim:(\d+)/tokens:(\d+)", b["name"])
        if not m or "bytes_per_second" not in b:
            continue
        kind, row, d, n = m.groups()
        rows[(kind, int(d), int(n))][row] = b["bytes_per_second"]
    for (kind, d, n), r in sorted(rows.items(), key=lambda kv: (kv[0][0], -kv[0][1], -kv[0][2])):
        memcpy, scale = r.get("limit/memcpy"), r.get("limit/scale_in_place")
        copy = r.get("limit/scale_out_of_place", 0)
        print(f"{kind} head_dim {d} tokens {n}: memcpy {memcpy / 1e9:.1f} GB/s, scale_in_place {scale / 1e9:.1f} GB/s,"
              f" scale_out_of_place {copy / 1e9:.1f} GB/s")
        for name, v in r.items():
            if name.startswith("limit/"):
                continue
            print(f"  {name:42s} {v / 1e9:7.1f} GB/s  x{v / memcpy:.2f} memcpy  x{v / scale:.2f} scale_in_place")


if __name__ == "__main__":
    main(sys.argv[1])
