#!/usr/bin/python3
"""Compares `snow lab detect` output with R's reference rows.

usage: interop-compare-detect.py REFERENCE.csv OURS.csv [OURS.csv ...]
Alarms must be identical, upper bounds equal to 1e-9 relative for EARS
and 1e-7 for Farrington (docs/detection-algorithms.md §3), Farrington's expected
values too, NA exactly where R has NA. Prints a summary; exits 1 on any
difference.
"""
import csv
import sys

REL = {"EARS": 1e-9, "FF": 1e-7}


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
    tol = REL[key[0].split("_")[0]]
    for col in ("upperbound", "expected"):
        if col not in r:
            continue
        if (o[col] == "NA") != (r[col] == "NA"):
            bad.append(f"{key}: {col} {o[col]} vs R {r[col]}")
        elif r[col] != "NA":
            a, b = float(o[col]), float(r[col])
            rel = abs(a - b) / max(abs(b), 1e-300) if a != b else 0.0
            worst = max(worst, rel)
            if rel > tol:
                bad.append(f"{key}: {col} {a!r} vs R {b!r} (rel {rel:.3g})")
extra = set(ours) - set(ref)
if extra:
    bad.append(f"{len(extra)} rows R does not have, e.g. {sorted(extra)[0]}")
print(f"{len(ref)} reference rows, {len(bad)} differences, worst relative error {worst:.3g}")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
