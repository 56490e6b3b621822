#!/usr/bin/env python3
"""Draws the rate–distortion plot of a scripts/rd-sweep.sh CSV.

    python3 scripts/rd-plot.py out/rd/rd.csv -o out/rd/rd     (writes rd.png and rd.svg)

Two panels, perplexity against bits per weight: the experts alone, and the
whole file (every tensor, container overhead included). Points are grouped
by the CSV's `group` column. Anchors from issue 16, marked apart:
  - QMoE's ternary GPTQ on the same model: ppl 116.88 at 0.99 bits (trit
    entropy) and 1.50 bits (its dictionary code): experts panel;
  - llama.cpp IQ1_S (2.07 bits/weight, +2.8%) and IQ1_M (2.22, +2.4%) files of
    the same model: whole-file panel. llama.cpp scores the second half of
    each window (another protocol), so only its relative increase is
    comparable: it is drawn at that increase over this sweep's bf16 perplexity.
The targets (experts ≤ 0.80 bits at ≤ 116.88; file ≤ 1.60 bits at ≤ +2.8%)
are drawn as shaded corners. Needs Debian's python3-matplotlib.
"""
import argparse
import csv
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("rd-plot: matplotlib missing: apt install python3-matplotlib (and run Debian's /usr/bin/python3)")

MARKERS = {"packed": "s", "packed+q8": "s", "packed+q4": "s", "sub1": "o", "sub1-rate": "^",
           "sub1-target": "v", "sub1-fit": "D", "sub1+q8": "o", "sub1+q4": "o", "sub1+q3": "o", "sub1+q2": "o", "sub1+mixed": "P", "sub1-rate+q8": "^",
           "sub1-rate+q4": "^", "baseline": "*"}


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"rd-plot: {path}: no points")
    for r in rows:
        for k in ("expert_bits", "file_bits", "ppl", "ppl_increase_pct"):
            try:
                r[k] = float(r[k])
            except (KeyError, ValueError):
                sys.exit(f"rd-plot: {path}: row '{r.get('name')}' has no number in column '{k}'")
    return rows


def panel(ax, rows, x_key, title, xmax):
    groups = {}
    for r in rows:
        if r["group"] != "baseline" and r[x_key] <= xmax:
            groups.setdefault(r["group"], []).append(r)
    for g, rs in sorted(groups.items()):
        rs.sort(key=lambda r: r[x_key])
        ax.plot([r[x_key] for r in rs], [r["ppl"] for r in rs], marker=MARKERS.get(g, "x"),
                linestyle="-" if g.startswith("sub1-rate") or g.startswith("sub1-target") else "none",
                label=g, markersize=5)
    base = next((r["ppl"] for r in rows if r["group"] == "baseline"), None)
    if base is not None:
        ax.axhline(base, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(f"bf16 {base:.2f}", (xmax, base), ha="right", va="bottom", fontsize=7, color="grey")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("bits per weight")
    ax.set_ylabel("perplexity (Brown test, ctx 256)")
    ax.grid(True, linewidth=0.3)
    return base


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("csv")
    p.add_argument("-o", "--output", default="rd", help="output path without extension (.png and .svg)")
    a = p.parse_args()
    rows = read(a.csv)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    base = panel(left, rows, "expert_bits", "experts only", 4.5)
    left.scatter([0.99, 1.50], [116.88, 116.88], marker="P", color="black", zorder=5,
                 label="QMoE ternary GPTQ (entropy / dictionary)")
    left.add_patch(plt.Rectangle((0, 0), 0.80, 116.88, color="green", alpha=0.08, label="target ≤ 0.80 bits, ≤ 116.88"))
    right_base = panel(right, rows, "file_bits", "whole file", 6.5)
    if right_base is not None:
        right.scatter([2.07, 2.22], [right_base * 1.028, right_base * 1.024], marker="P", color="black", zorder=5,
                      label="llama.cpp IQ1_S / IQ1_M (relative increase; other protocol)")
        right.add_patch(plt.Rectangle((0, 0), 1.60, right_base * 1.028, color="green", alpha=0.08,
                                      label="target ≤ 1.60 bits, ≤ +2.8%"))
    ppls = [r["ppl"] for r in rows]
    for ax in (left, right):
        lo = min(ppls + [base or min(ppls)])
        ax.set_ylim(lo * 0.99, min(max(ppls), lo * 1.25))
        ax.set_xlim(0.5, ax.get_xlim()[1])
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("moec rate–distortion, shipped tiny Mixtral (points above the y range are off-scale)", fontsize=11)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{a.output}.{ext}", dpi=130)
    print(f"rd-plot: {a.output}.png, {a.output}.svg ({len(rows)} points)")


if __name__ == "__main__":
    main()
