"""Seconds per EM iteration: streamgmm vs scikit-learn vs the BLAS floor; memory of chunked fit vs N.

Every column runs on the same data and the same initial parameters in this
one process; each number is the median of ``--repeats`` timed iterations
after one untimed warm-up (Numba compilation, BLAS thread start).

* streamgmm: one E-step over the data (``accumulate``) plus one M-step.
* scikit-learn: one ``_e_step`` plus one ``_m_step`` of ``GaussianMixture``
  (exactly the body of its EM loop).
* BLAS floor (diag only): the three float64 matrix products any diagonal EM
  iteration needs on these shapes: (N x 2D)(2D x K), R^T X and R^T X^2.

A second table runs the same on float32 frames: streamgmm with
``estep_dtype="float32"`` (float32 products for the log-densities and
responsibilities, float64 statistics), scikit-learn on float32 input (which
it keeps in float32), and the float32 BLAS floor.

Run:  python scripts/bench_em.py            (full table, a few minutes)
      python scripts/bench_em.py --quick    (smaller shapes, seconds)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    labels = rng.integers(0, k, n)
    X = centres[labels] + rng.normal(0, 1, (n, d))
    return X, centres


def initial_parameters(X, k, covariance_type, seed=0):
    """Means from data rows, unit-ish covariances: a state in the middle of EM."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), k, replace=False)]
    weights = np.full(k, 1.0 / k)
    var = X.var(axis=0)
    if covariance_type == "diag":
        precisions = np.tile(1.0 / var, (k, 1))
    else:
        precisions = np.tile(np.diag(1.0 / var), (k, 1, 1))
    return weights, means, precisions


def bench_shape(n, d, k, covariance_type, repeats):
    import warnings

    from sklearn.mixture import GaussianMixture

    from streamgmm import OnlineGMM

    X, _ = make_data(n, d, k)
    weights, means, precisions = initial_parameters(X, k, covariance_type)
    common = dict(covariance_type=covariance_type, weights_init=weights, means_init=means,
                  precisions_init=precisions, max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = OnlineGMM(k, covariance_floor=0.0, min_weight=0.0, **common).fit(X)
        theirs = GaussianMixture(k, **common).fit(X)
    source = lambda: (X,)  # noqa: E731

    def ours_iteration():
        ours._m_step(ours._accumulate_source(source))

    def sklearn_iteration():
        _, log_resp = theirs._e_step(X)
        theirs._m_step(X, log_resp)

    X32 = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours32 = OnlineGMM(k, covariance_floor=0.0, min_weight=0.0, estep_dtype="float32", **common).fit(X32)
        theirs32 = GaussianMixture(k, **common).fit(X32)
    source32 = lambda: (X32,)  # noqa: E731

    def ours32_iteration():
        ours32._m_step(ours32._accumulate_source(source32))

    start32 = {name: getattr(theirs32, name).copy() for name in ("weights_", "means_", "covariances_",
                                                                 "precisions_cholesky_", "precisions_")}

    def sklearn32_iteration():
        # from the same state each time: in float32 its EM collapses a component within a few iterations here
        for name, value in start32.items():
            setattr(theirs32, name, value.copy())
        _, log_resp = theirs32._e_step(X32)
        theirs32._m_step(X32, log_resp)

    row = {"shape": f"N={n} D={d} K={k} {covariance_type}",
           "streamgmm": median_time(ours_iteration, repeats),
           "sklearn": median_time(sklearn_iteration, repeats),
           "streamgmm32": median_time(ours32_iteration, repeats),
           "sklearn32": median_time(sklearn32_iteration, repeats)}
    if covariance_type == "diag":
        for dtype, key in ((np.float64, "blas_floor"), (np.float32, "blas_floor32")):
            Xd = X.astype(dtype)
            design = np.ascontiguousarray(np.hstack([Xd**2, Xd]))
            W = np.random.default_rng(1).normal(size=(2 * d, k)).astype(dtype)
            R = np.random.default_rng(2).random((n, k)).astype(dtype)
            X2 = Xd**2
            out_ll = np.empty((n, k), dtype=dtype)
            out_s = np.empty((k, d), dtype=dtype)

            def floor():
                np.dot(design, W, out=out_ll)
                np.dot(R.T, Xd, out=out_s)
                np.dot(R.T, X2, out=out_s)

            row[key] = median_time(floor, repeats)
    return row


MEMORY_CHILD = r"""
import resource, sys, warnings
import numpy as np
from streamgmm import OnlineGMM
n, chunk = int(sys.argv[1]), 50_000
d, k = 39, 64
def chunks():
    for i, start in enumerate(range(0, n, chunk)):
        rng = np.random.default_rng(i)
        m = min(chunk, n - start)
        yield rng.normal(0, 1, (m, d)) + rng.integers(0, 4, (m, 1)) * 3.0
def max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    # compile and load everything outside the measurement
    OnlineGMM(k, covariance_type="diag", max_iter=1, random_state=0).fit(next(chunks()))
    before = max_rss()
    OnlineGMM(k, covariance_type="diag", max_iter=3, tol=0, random_state=0).fit(chunks)
print(before, max_rss())
"""


def memory_row(n):
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(n)], capture_output=True, text=True, check=True)
    before, after = (int(v) for v in out.stdout.split())
    return before, after


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    if args.quick:
        shapes = [(20_000, 39, 64, "diag"), (10_000, 39, 16, "full")]
        sizes = [200_000, 400_000]
    else:
        shapes = [(200_000, 39, 256, "diag"), (100_000, 39, 64, "full")]
        sizes = [1_000_000, 4_000_000]
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}" for i in threadpool_info())
    except ImportError:
        blas = "unknown"
    print(f"BLAS: {blas}; median of {args.repeats} iterations after a warm-up\n")
    # Memory first: a child process inherits its parent's peak RSS on Linux, so
    # it is measured before this process grows with the timing data.
    memory = [(n, *memory_row(n)) for n in sizes]
    rows = [bench_shape(*shape, args.repeats) for shape in shapes]
    print(f"{'shape':32s} {'streamgmm s/it':>15s} {'sklearn s/it':>13s} {'BLAS floor':>11s} {'sklearn/ours':>13s} {'ours/floor':>11s}")
    for row in rows:
        floor = row.get("blas_floor")
        print(f"{row['shape']:32s} {row['streamgmm']:15.4f} {row['sklearn']:13.4f} "
              f"{floor if floor else float('nan'):11.4f} {row['sklearn'] / row['streamgmm']:12.1f}x "
              f"{(row['streamgmm'] / floor) if floor else float('nan'):10.2f}x")
    print("\nfloat32 frames: streamgmm estep_dtype='float32' (float64 statistics), scikit-learn float32 input")
    print(f"{'shape':32s} {'ours f32 s/it':>14s} {'ours f64/f32':>13s} {'sklearn f32':>12s} {'sklearn f32/ours':>17s} "
          f"{'BLAS f32':>9s} {'ours/floor':>11s}")
    for row in rows:
        floor = row.get("blas_floor32")
        print(f"{row['shape']:32s} {row['streamgmm32']:14.4f} {row['streamgmm'] / row['streamgmm32']:12.2f}x "
              f"{row['sklearn32']:12.4f} {row['sklearn32'] / row['streamgmm32']:16.1f}x "
              f"{floor if floor else float('nan'):9.4f} {(row['streamgmm32'] / floor) if floor else float('nan'):10.2f}x")
    print("\nPeak memory of chunked fit (diag, D=39, K=64, 50,000-frame chunks generated on the fly, 3 passes):")
    print(f"{'frames':>10s} {'data size':>10s} {'max RSS before fit':>19s} {'max RSS after fit':>18s} {'growth':>9s}")
    for n, before, after in memory:
        rows.append({"frames": n, "max_rss_before": before, "max_rss_after": after})
        print(f"{n:>10d} {n * 39 * 8 / 2**20:6.0f} MiB {before / 2**20:15.1f} MiB {after / 2**20:14.1f} MiB "
              f"{(after - before) / 2**20:5.1f} MiB")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
