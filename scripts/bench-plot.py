#!/usr/bin/env python3
"""Draws docs/bench.svg from `jet bench --json [--transfer]` output.

    jet bench --transfer --json > /tmp/bench.json
    scripts/bench-plot.py /tmp/bench.json docs/bench.svg

A horizontal bar per result row (GB/s), no dependencies beyond Python 3.
"""
import json
import sys
from html import escape


def main(src, dst):
    rows = json.load(open(src))["results"]
    label = lambda r: f"{r['suite']} · {r['backend']} · {r['direction']}"
    top = max(r["gbps"] for r in rows) or 1.0
    bar_h, gap, left, width = 18, 6, 470, 360
    height = 40 + len(rows) * (bar_h + gap) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">'
        f"jet bench: throughput, GB/s (64 KiB buffers)</text>",
    ]
    for i, r in enumerate(rows):
        y = 40 + i * (bar_h + gap)
        w = max(1, int(width * r["gbps"] / top))
        colour = {
            "encrypt": "#4878a8",
            "decrypt": "#68a868",
            "transfer": "#c87838",
        }.get(r["direction"], "#888")
        if r["backend"].startswith("openssl speed"):  # the reference, not jet
            colour = "#a0a0a0"
        out.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(label(r))}</text>'
        )
        out.append(
            f'<rect x="{left}" y="{y}" width="{w}" height="{bar_h}" fill="{colour}"/>'
        )
        out.append(f'<text x="{left + w + 4}" y="{y + 13}">{r["gbps"]:.2f}</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
