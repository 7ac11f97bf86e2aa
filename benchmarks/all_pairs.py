"""All-pairs similarity: hourglass against a pair-by-pair loop and rsatoolbox.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/all_pairs.py

R random representations of N stimuli (widths drawn from 16..512, as in an
autoencoder's layers) are compared all against all, in one process, side by
side. Printed: seconds per method, the ratio to hourglass, and the largest
difference between the matrices (they must agree).
"""

import argparse
import time

import numpy as np

from hourglass.similarity import all_pairs, linear_cka, rsa


def timed(f):
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out


def pair_loop(reps, function):
    """What the peer libraries do: the measure called once per pair."""
    R = len(reps)
    M = np.eye(R)
    for i in range(R):
        for j in range(i + 1, R):
            M[i, j] = M[j, i] = function(reps[i], reps[j])
    return M


def rsatoolbox_rsa(reps):
    """rsatoolbox 0.3: correlation RDMs, compared by Pearson ('corr')."""
    import rsatoolbox

    rdms = rsatoolbox.rdm.concat([
        rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(X), method="correlation") for X in reps])
    return rsatoolbox.rdm.compare(rdms, rdms, method="corr")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--representations", type=int, default=40)
    parser.add_argument("--stimuli", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reps = [rng.normal(size=(args.stimuli, int(w)))
            for w in rng.integers(16, 513, size=args.representations)]
    print(f"{args.representations} representations x {args.stimuli} stimuli "
          f"({args.representations * (args.representations - 1) // 2} pairs)")
    cases = {
        "linear_cka": [("hourglass all_pairs", lambda: all_pairs(reps, "linear_cka")),
                       ("pair-by-pair loop", lambda: pair_loop(reps, linear_cka))],
        "rsa": [("hourglass all_pairs", lambda: all_pairs(reps, "rsa")),
                ("pair-by-pair loop", lambda: pair_loop(reps, rsa)),
                ("rsatoolbox 0.3", lambda: rsatoolbox_rsa(reps))],
    }
    for measure, methods in cases.items():
        base_seconds, base = timed(methods[0][1])
        for name, run in methods:
            seconds, M = (base_seconds, base) if name == methods[0][0] else timed(run)
            print(f"{measure:11s} {name:22s} {seconds:8.2f} s  x{seconds / base_seconds:6.1f}"
                  f"  max |diff| {np.abs(M - base).max():.1e}")


if __name__ == "__main__":
    main()
