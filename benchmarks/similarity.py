"""Similarity: hourglass's all-pairs engine against the plain formulas and peer libraries.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/similarity.py
     (--device cuda on a GPU; --peers-path DIR to add netrep's or anatome's source)

R random representations of N stimuli x P features are compared all
against all, in one process, side by side. Each row gives the seconds, the
ratio to hourglass in the same precision, the largest difference from
hourglass's float64 matrix (every method must agree), and the CPU seconds
other processes used while it ran: a row marked "contended" was measured
beside other work and is not this machine's figure. Then: the matmul peak,
linear CKA's cost over 1,000-8,000 stimuli (in each of its forms), with --contend the slowdown
beside one busy single-thread process, and with --memory the peak memory
of all-pairs RSA streamed from HDF5 under several max_memory budgets.
"""

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the workflow's stages run (hourglass.cli)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hourglass.similarity import all_pairs  # noqa: E402
from hourglass.similarity.linalg import singular_values  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import peers  # noqa: E402  (beside this script, not a package)
from timing import contended, timed  # noqa: E402

MEASURES = ("linear_cka", "linear_cka_debiased", "rsa", "procrustes", "cca", "svcca", "pwcca")


def hourglass(measure, reps, dtype, device):
    options = {"debiased": True} if measure == "linear_cka_debiased" else {}
    name = "linear_cka" if measure == "linear_cka_debiased" else measure
    return lambda: all_pairs(reps, name, dtype=dtype, device=device, **options)


def centred(reps, dtype, device):
    out = [torch.as_tensor(X, dtype=dtype, device=device) for X in reps]
    return [X - X.mean(dim=0) for X in out]


def plain_cka(reps, dtype, device):
    """Linear CKA as one stack of centred Gram matrices: the formula, no care."""
    grams = torch.stack([(X @ X.T).flatten() for X in centred(reps, dtype, device)])
    products = grams @ grams.T
    norms = products.diagonal().sqrt()
    return (products / norms[:, None] / norms[None]).double().cpu().numpy()


def plain_rsa(reps, dtype, device):
    """Pearson r between correlation-distance RDMs, as one stack."""
    n = reps[0].shape[0]
    upper = torch.ones(n, n, dtype=torch.bool, device=device).triu_(1)
    rdms = []
    for X in reps:
        X = torch.as_tensor(X, dtype=dtype, device=device)
        Z = X - X.mean(dim=1, keepdim=True)
        Z = Z / Z.norm(dim=1, keepdim=True)
        v = (1 - Z @ Z.T)[upper]
        v = v - v.mean()
        rdms.append(v / v.norm())
    stacked = torch.stack(rdms)
    return (stacked @ stacked.T).double().cpu().numpy()


def unit(reps, dtype, device):
    return [X / X.norm() for X in centred(reps, dtype, device)]


def procrustes_loop(reps, dtype, device):
    """Procrustes pair by pair, one product and one SVD each (what anatome does)."""
    Xs = unit(reps, dtype, device)
    M = np.eye(len(Xs))
    for i in range(len(Xs)):
        for j in range(i + 1, len(Xs)):
            M[i, j] = M[j, i] = float(torch.linalg.svdvals(Xs[i].T @ Xs[j]).sum())
    return M


def procrustes_bound(reps, dtype, device):
    """The arithmetic floor of Procrustes: one product of all the data side by
    side (every cross-covariance at once) and batched singular values."""
    Xs = unit(reps, dtype, device)
    widths = [X.shape[1] for X in Xs]
    if len(set(widths)) > 1:
        raise ValueError("the bound batches equal widths: give one --features")
    W = torch.cat(Xs, dim=1)
    C = (W.T @ W).reshape(len(Xs), widths[0], len(Xs), widths[0]).transpose(1, 2)
    i, j = torch.triu_indices(len(Xs), len(Xs), 1)
    M = np.eye(len(Xs))
    M[i, j] = M[j, i] = singular_values(C[i, j]).sum(dim=-1).double().cpu().numpy()
    return M


def bases(reps, dtype, device):
    """Orthonormal bases of the centred column spaces (full rank: random data)."""
    return [torch.linalg.svd(X, full_matrices=False)[0] for X in centred(reps, dtype, device)]


def cca_loop(reps, dtype, device):
    """Mean squared canonical correlation pair by pair, bases made per pair (what repsim and anatome do)."""
    Xs = centred(reps, dtype, device)
    M = np.eye(len(Xs))
    for i in range(len(Xs)):
        for j in range(i + 1, len(Xs)):
            Q_x, Q_y = (torch.linalg.svd(X, full_matrices=False)[0] for X in (Xs[i], Xs[j]))
            M[i, j] = M[j, i] = float((Q_x.T @ Q_y).square().sum()) / min(Q_x.shape[1], Q_y.shape[1])
    return M


def cca_bound(reps, dtype, device):
    """The arithmetic floor of CCA: a basis each, then one product of them all side by side."""
    Qs = bases(reps, dtype, device)
    W = torch.cat(Qs, dim=1)
    widths = [Q.shape[1] for Q in Qs]
    blocks = (W.T @ W).square().split(widths, dim=0)
    sums = torch.stack([torch.stack([b.sum() for b in block.split(widths, dim=1)]) for block in blocks])
    return (sums / torch.minimum(torch.tensor(widths)[:, None], torch.tensor(widths)[None])).double().cpu().numpy()


PLAIN = {
    "linear_cka": [("plain formula", plain_cka)],
    "rsa": [("plain formula", plain_rsa)],
    "procrustes": [("pair loop", procrustes_loop), ("arithmetic bound", procrustes_bound)],
    "cca": [("pair loop", cca_loop), ("arithmetic bound", cca_bound)],
}


def matmul_peak(dtype, device, n=2048, repeats=5):
    A = torch.randn(n, n, dtype=dtype, device=device)
    seconds, _, _ = timed(lambda: [A @ A for _ in range(repeats)], device)
    return 2 * n**3 * repeats / seconds / 1e9


def row(label, seconds, base, other, diff):
    print(f"  {label:34s} {seconds:8.2f} s  x{seconds / base:5.2f}  |diff| {diff:.1e}  others {other:5.2f} s"
          f"{contended(seconds, other)}", flush=True)


def compare(measure, reps, device, peer_methods, skip):
    print(measure, flush=True)
    seconds64, other, reference = timed(hourglass(measure, reps, torch.float64, device), device)
    row("hourglass float64", seconds64, seconds64, other, 0.0)
    seconds32, other, M = timed(hourglass(measure, reps, torch.float32, device), device)
    row("hourglass float32", seconds32, seconds32, other, np.abs(M - reference).max())
    for label, method in PLAIN.get(measure, []):
        for dtype, base in ((torch.float64, seconds64), (torch.float32, seconds32)):
            seconds, other, M = timed(lambda: method(reps, dtype, device), device)
            row(f"{label} {str(dtype)[6:]}", seconds, base, other, np.abs(M - reference).max())
    for label, method in peer_methods.get(measure, []):
        if label.split()[0] in skip:
            continue
        seconds, other, M = timed(lambda: method(reps))
        row(label, seconds, seconds64, other, np.abs(M - reference).max())


def scaling(device, rng, widths, representations=40):
    for features in widths:
        print(f"linear CKA, {representations} x {features} features, float32: cost over stimuli", flush=True)
        previous = None
        for stimuli in (1000, 2000, 4000, 8000):
            reps = [rng.normal(size=(stimuli, features)).astype(np.float32) for _ in range(representations)]
            lines = []
            seconds, other, _ = timed(lambda: all_pairs(reps, "linear_cka", dtype=torch.float32, device=device,
                                                        progress=lines.append), device)
            form = lines[-1].split("(")[1].split(")")[0]
            growth = "" if previous is None else f"  x{seconds / previous:.1f} for 2x stimuli"
            print(f"  {stimuli:5d} stimuli {seconds:7.2f} s{growth}  ({form})  others {other:5.2f} s"
                  f"{contended(seconds, other)}", flush=True)
            previous = seconds


def contention(reps, device):
    """Each measure alone and beside one busy single-thread process."""
    print(f"shared cores: hourglass float64 with {torch.get_num_threads()} threads, alone and beside one busy process",
          flush=True)
    for measure in ("linear_cka", "rsa", "procrustes"):
        alone, _, _ = timed(hourglass(measure, reps, torch.float64, device), device)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            shared, other, _ = timed(hourglass(measure, reps, torch.float64, device), device)
        finally:
            busy.kill()
        print(f"  {measure:12s} alone {alone:6.2f} s  shared {shared:6.2f} s  x{shared / alone:.2f}"
              f"  (the busy process used {other:.1f} s)", flush=True)


# Run in a fresh process per budget, so each peak is its own: the peak
# resident memory above the resident memory after imports and a warm-up.
PEAK_CHILD = """
import sys, h5py, numpy as np, torch
from hourglass.similarity import all_pairs
torch.set_num_threads(int(sys.argv[4]))
path, measure, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None
def resident(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))
data = h5py.File(path, "r")
all_pairs([np.random.default_rng(0).normal(size=(50, 5)) for _ in range(3)], measure)
open("/proc/self/clear_refs", "w").write("5")  # resets the peak to now
before = resident("VmRSS")
all_pairs([lambda k=k: data[k][()] for k in sorted(data)], measure, max_memory=limit)
print(resident("VmHWM") - before)
"""


def memory(reps, threads):
    """Peak memory of all-pairs RSA streamed from HDF5, per budget."""
    import tempfile

    import h5py

    summaries = len(reps) * reps[0].shape[0] * (reps[0].shape[0] - 1) // 2 * 8
    print(f"memory: RSA streamed from HDF5, {summaries / 2**20:.0f} MiB of summaries in all", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "representations.h5")
        with h5py.File(path, "w") as f:
            for k, X in enumerate(reps):
                f[f"{k:04d}"] = X
        for budget in (512, 1024, 2048, 0):
            start = time.perf_counter()
            peak = subprocess.run([sys.executable, "-c", PEAK_CHILD, path, "rsa", str(budget * 2**20), str(threads)],
                                  capture_output=True, text=True, check=True).stdout
            label = f"max_memory {budget} MiB" if budget else "no limit"
            print(f"  {label:20s} peak above resident {int(peak) / 2**20:6.0f} MiB"
                  f"  ({time.perf_counter() - start:.1f} s)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--representations", type=int, default=40)
    parser.add_argument("--stimuli", type=int, default=2000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--measures", default=",".join(MEASURES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers-path", action="append", default=[], help="a peer's source directory")
    parser.add_argument("--skip", default="", help="peers to leave out, comma-separated (e.g. a slow ckatorch)")
    parser.add_argument("--scaling", default="128,512", help="feature counts for the cost over stimuli ('' for none)")
    parser.add_argument("--contend", action="store_true")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peers.add_source_paths(args.peers_path)
    peer_methods = peers.build_peers()
    rng = np.random.default_rng(0)
    reps = [rng.normal(size=(args.stimuli, args.features)) for _ in range(args.representations)]
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} threads"
    print(f"{args.representations} representations of {args.stimuli} x {args.features}, float64 data; {name}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"matmul peak: {matmul_peak(torch.float32, args.device):.0f} GFLOP/s float32, "
          f"{matmul_peak(torch.float64, args.device):.0f} float64")
    for label, reason in peers.MISSING.items():
        print(f"peer left out: {label}: {reason}")
    for measure in filter(None, args.measures.split(",")):
        compare(measure, reps, args.device, peer_methods, args.skip.split(","))
    if args.scaling:
        scaling(args.device, rng, [int(w) for w in args.scaling.split(",")])
    if args.contend:
        contention(reps, args.device)
    if args.memory:
        memory(reps, args.threads)


if __name__ == "__main__":
    main()
