#!/usr/bin/env python3
"""Fits the code library's confidence model (crates/codesearch/src/lib.rs,
`confidence`): a logistic regression of "the best match is a right answer"
on its similarity, term coverage, first-in-both-lists flag and margin.

    WEFT_EMBEDDINGS_DIR=... WEFT_EVAL_DUMP=/tmp/evidence.jsonl \
        cargo test -p weft-codesearch --test eval -- --nocapture
    python3 scripts/fit-confidence.py /tmp/evidence.jsonl

Prints the weights fitted on everything (what lib.rs holds) and, for an
honest figure, each half fitted on its own and tested on the other half:
the held-out queries' two files, with the unanswerable requests split in
two alongside them. Standard library only.
"""
import json
import math
import sys

THRESHOLDS = (0.5, 0.6, 0.7)


def features(row):
    return [
        row["similarity"] or 0.0,
        row["coverage"] or 0.0,
        1.0 if row["first_in_both"] else 0.0,
        row["margin"] or 0.0,
    ]


def fit(rows, l2=0.001, iterations=30000, rate=1.0):
    xs = [features(r) for r in rows]
    ys = [1.0 if r["relevant"] else 0.0 for r in rows]
    w, b, n = [0.0] * len(xs[0]), 0.0, len(rows)
    for _ in range(iterations):
        gw, gb = [0.0] * len(w), 0.0
        for x, y in zip(xs, ys):
            p = 1.0 / (1.0 + math.exp(-(b + sum(wi * xi for wi, xi in zip(w, x)))))
            for i, xi in enumerate(x):
                gw[i] += (p - y) * xi
            gb += p - y
        w = [wi - rate * (g / n + l2 * wi) for wi, g in zip(w, gw)]
        b -= rate * gb / n
    return w, b


def confidence(w, b, row):
    return 1.0 / (1.0 + math.exp(-(b + sum(wi * xi for wi, xi in zip(w, features(row))))))


def report(label, w, b, rows):
    answerable = [r for r in rows if not r["set"].startswith("miss")]
    misses = [r for r in rows if r["set"].startswith("miss")]
    for t in THRESHOLDS:
        served = [r for r in answerable if confidence(w, b, r) >= t]
        right = sum(1 for r in served if r["relevant"])
        wrong = sum(1 for r in misses if confidence(w, b, r) >= t)
        print(
            f"  {label} at {t}: hit rate {len(served) / len(answerable):.3f}, "
            f"relevant {right / max(1, len(served)):.3f} of those, "
            f"{wrong}/{len(misses)} unanswerable served"
        )


def main():
    rows = [json.loads(line) for line in open(sys.argv[1])]
    halves = [("rust-wit-sql", "miss-a"), ("web", "miss-b")]
    for half in halves:
        w, b = fit([r for r in rows if r["set"] in half])
        print(f"fitted on {half}: weights {[round(x, 2) for x in w]}, bias {b:.2f}")
        report("tested on the other half", w, b, [r for r in rows if r["set"] not in half])
    w, b = fit(rows)
    print(
        "fitted on all: similarity {:.2f}, coverage {:.2f}, first_in_both {:.2f}, margin {:.2f}, bias {:.2f}".format(
            *w, b
        )
    )
    report("in sample", w, b, rows)


if __name__ == "__main__":
    main()
