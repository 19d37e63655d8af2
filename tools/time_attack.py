#!/usr/bin/env python3
"""Interleaved timing of one `ruse attack` command across ruse binaries (outside the product).

Runs the same attack REPS times per binary, alternating binaries each round so drifts in the
machine's speed hit all of them alike, and prints the min and median of the attack's own
`seconds` (attack.json). Used for the before/after numbers in README's cross-check section.

  python3 tools/time_attack.py --model M --eps 0.1 --reps 7 BIN_A BIN_B [--attack pgd --steps 100]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bins", nargs="+", help="ruse binaries to compare")
    ap.add_argument("--model", required=True)
    ap.add_argument("--eps", default="0.1")
    ap.add_argument("--attack", default="pgd")
    ap.add_argument("--steps", default="100")
    ap.add_argument("--limit", default="200")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--data", default="mnist:../shared/data/mnist")
    a = ap.parse_args()
    times = {b: [] for b in a.bins}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(a.reps):
            for b in a.bins:
                subprocess.run([b, "--threads", a.threads, "attack", "--model", a.model, "--data", a.data,
                                "--eps", a.eps, "--batch-size", "250", "--limit", a.limit, "--attack", a.attack,
                                "--steps", a.steps, "--out", out], check=True, capture_output=True)
                with open(os.path.join(out, "attack.json")) as f:
                    times[b].append(json.load(f)["seconds"])
    for b in a.bins:
        print(f"{b:32} min {min(times[b]):.3f} s  median {statistics.median(times[b]):.3f} s  ({a.reps} runs)")


if __name__ == "__main__":
    main()
