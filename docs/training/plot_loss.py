#!/usr/bin/env python3
"""Draws the loss curve of a `hearth train --log FILE` run as an SVG: the
training loss of every step (line) and the validation losses (dots).

usage: plot_loss.py LOG TITLE > loss.svg
"""
import math
import sys

steps, losses, vals = [], [], []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "# val":
        vals.append((int(f[1]), float(f[2])))
    elif not f[0].startswith("#"):
        steps.append(int(f[0]))
        losses.append(float(f[2]))
title = sys.argv[2] if len(sys.argv) > 2 else "training loss"

W, H, L, R, T, B = 640, 360, 60, 20, 40, 50
x_max = max(steps + [v[0] for v in vals])
y_max = max(losses + [v[1] for v in vals])
y_top = math.ceil(y_max * 2) / 2


def X(s):
    return L + (W - L - R) * s / x_max


def Y(v):
    return T + (H - T - B) * (1 - v / y_top)


out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
       f'font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
for i in range(int(y_top * 2) + 1):  # y grid every 0.5
    v = i / 2
    out.append(f'<line x1="{L}" y1="{Y(v):.1f}" x2="{W - R}" y2="{Y(v):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
tick = max(1, round(x_max / 8 / 10) * 10)
for s in range(0, x_max + 1, tick):
    out.append(f'<line x1="{X(s):.1f}" y1="{H - B}" x2="{X(s):.1f}" y2="{H - B + 4}" '
               f'stroke="black"/>')
    out.append(f'<text x="{X(s):.1f}" y="{H - B + 18}" text-anchor="middle">{s}</text>')
out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">step</text>')
out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" '
           f'transform="rotate(-90 16 {(T + H - B) / 2})">cross-entropy (nats/token)</text>')
pts = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v in zip(steps, losses))
out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
for s, v in vals:
    out.append(f'<circle cx="{X(s):.1f}" cy="{Y(v):.1f}" r="4" fill="#d62728"/>')
lx = W - R - 170
out.append(f'<line x1="{lx}" y1="{T + 10}" x2="{lx + 20}" y2="{T + 10}" stroke="#1f77b4" '
           f'stroke-width="1.5"/><text x="{lx + 26}" y="{T + 14}">training (per step)</text>')
out.append(f'<circle cx="{lx + 10}" cy="{T + 28}" r="4" fill="#d62728"/>'
           f'<text x="{lx + 26}" y="{T + 32}">validation</text>')
out.append("</svg>")
print("\n".join(out))
