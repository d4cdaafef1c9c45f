#!/usr/bin/python3
"""Compares `snow lab detect` output with R's reference rows.

usage: interop-compare-detect.py REFERENCE.csv OURS.csv [OURS.csv ...]
Alarms must be identical, upper bounds equal to REL (default 1e-9)
relative, NA exactly where R has NA. Prints a summary; exits 1 on any
difference.
"""
import csv
import sys

REL = 1e-9


def rows(path):
    with open(path) as f:
        return {(r["algorithm"], r["series"], r["t"]): r for r in csv.DictReader(f)}


ref = rows(sys.argv[1])
ours = {}
for p in sys.argv[2:]:
    ours.update(rows(p))
bad = []
worst = 0.0
for key, r in ref.items():
    o = ours.get(key)
    if o is None:
        bad.append(f"{key}: missing in ours")
        continue
    if o["alarm"] != r["alarm"]:
        bad.append(f"{key}: alarm {o['alarm']} vs R {r['alarm']}")
    if float(o["observed"]) != float(r["observed"]):
        bad.append(f"{key}: observed differs")
    if (o["upperbound"] == "NA") != (r["upperbound"] == "NA"):
        bad.append(f"{key}: upperbound {o['upperbound']} vs R {r['upperbound']}")
    elif r["upperbound"] != "NA":
        a, b = float(o["upperbound"]), float(r["upperbound"])
        rel = abs(a - b) / max(abs(b), 1e-300) if a != b else 0.0
        worst = max(worst, rel)
        if rel > REL:
            bad.append(f"{key}: upperbound {a!r} vs R {b!r} (rel {rel:.3g})")
extra = set(ours) - set(ref)
if extra:
    bad.append(f"{len(extra)} rows R does not have, e.g. {sorted(extra)[0]}")
print(f"{len(ref)} reference rows, {len(bad)} differences, worst relative upperbound error {worst:.3g}")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
