"""i-vector extraction speed: ours vs a direct numpy implementation of the same formula.

Setting: a 256-component diagonal UBM on 60-dimensional features, rank 200,
utterances of 1 s, 3 s and 10 s at 100 frames/s. Each utterance's counts are
a multinomial draw of its frames over Dirichlet UBM weights (sparse for short
utterances, as hard-ish real posteriors are); first-order statistics are
drawn from the model. Everything runs on one core (BLAS limited to one
thread with threadpoolctl).

Columns (median time per utterance over ``--repeats`` runs after a warm-up):

* ``batch``: ``IvectorExtractor.transform`` over ``--utterances`` utterances
  (batches of 64: precomputed packed ``T_k^T T_k``, one (B, K) x (K, R(R+1)/2)
  and one (B, K*D) x (K*D, R) product per batch, a Cholesky per utterance);
* ``single``: ``IvectorExtractor.extract`` called once per utterance (the same
  algebra one utterance at a time: matrix-vector products that read all of
  the 41 MB of packed ``T_k^T T_k``, so memory bound);
* ``direct``: the textbook dense formula per utterance,
  ``w = (I + T^T N T)^{-1} T^T F`` with ``T`` the (K*D, R) supervector matrix
  and ``N`` the diagonal of counts (``T^T N T`` is a (R, K*D) x (K*D, R)
  product, about 1.2 GFLOP).

The real-time factor is seconds of audio per second of compute (target: batch
>= 500x real time per core). The script also checks that ours and the direct
formula agree.

Run:  python scripts/bench_ivector.py            (well under a minute)
      python scripts/bench_ivector.py --quick
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from speaker_id.models.ivector import EXTRACTOR_KIND, IvectorExtractor
from streamgmm import SufficientStats
from streamgmm.io import header

FRAME_RATE = 100


def make_extractor(k, d, r, rng):
    arrays = {
        **header(EXTRACTOR_KIND),
        "total_variability": rng.normal(size=(k, d, r)) * np.sqrt(0.5 / r),
        "ubm_means": rng.normal(size=(k, d)),
        "ubm_variances": rng.uniform(0.5, 2.0, size=(k, d)),
        "objective": np.zeros(0),
        "n_iter": np.array(0),
    }
    return IvectorExtractor.from_arrays(arrays, source="benchmark")


def make_utterances(extractor, weights, seconds, count, rng):
    T = np.asarray(extractor.T_)
    means, std = extractor.ubm_means_, np.sqrt(extractor.ubm_variances_)
    shift = means.mean(axis=0)
    out = []
    for _ in range(count):
        n = rng.multinomial(int(seconds * FRAME_RATE), weights).astype(float)
        w = rng.standard_normal(T.shape[2])
        f = n[:, None] * (T @ w) + np.sqrt(n)[:, None] * rng.standard_normal(T.shape[:2])
        first = std * f + n[:, None] * (means - shift)
        out.append(SufficientStats(n, first, np.zeros_like(first), shift, 0.0, n.sum()))
    return out


def direct(extractor, stats):
    """The dense supervector formula, one utterance."""
    k, d, r = extractor.T_.shape
    Tsup = np.asarray(extractor.T_).reshape(k * d, r)
    n = stats.zeroth
    f = (stats.first + n[:, None] * (stats.shift - extractor.ubm_means_)) / np.sqrt(extractor.ubm_variances_)
    precision = np.eye(r) + Tsup.T @ (np.repeat(n, d)[:, None] * Tsup)
    return np.linalg.solve(precision, Tsup.T @ f.reshape(-1))


def extract_each(extractor, utterances):
    return [extractor.extract(s) for s in utterances]


def direct_all(extractor, utterances):
    return np.array([direct(extractor, s) for s in utterances])


def per_utterance(fn, n, repeats):
    fn()  # warm-up: caches, the precomputation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / n)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--rank", type=int, default=200)
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument("--utterances", type=int, default=256, help="utterances per batch timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.utterances, args.repeats = 128, 3

    rng = np.random.default_rng(0)
    k, d, r = args.components, args.features, args.rank
    extractor = make_extractor(k, d, r, rng)
    weights = rng.dirichlet(np.full(k, 2.0))
    print(f"K={k} components, D={d} features, rank R={r}; one core (BLAS threads = 1); "
          f"{FRAME_RATE} frames/s; median time per utterance")
    header_line = (f"{'audio':>6} {'batch ms':>9} {'single ms':>10} {'direct ms':>10} {'direct/batch':>13} "
                   f"{'direct/single':>14} {'batch xRT':>10} {'single xRT':>11} {'max |diff|':>11}")
    print(header_line)
    print("-" * len(header_line))
    with threadpool_limits(limits=1):
        start = time.perf_counter()
        extractor.transform(make_utterances(extractor, weights, 1.0, 1, rng))
        prepare = time.perf_counter() - start
        for seconds in args.durations:
            utterances = make_utterances(extractor, weights, seconds, args.utterances, rng)
            few, fewer = utterances[:32], utterances[:6]
            batch = per_utterance(partial(extractor.transform, utterances), len(utterances), args.repeats)
            single = per_utterance(partial(extract_each, extractor, few), len(few), args.repeats)
            dense = per_utterance(partial(direct_all, extractor, fewer), len(fewer), max(1, args.repeats // 2))
            ours = extractor.transform(fewer)
            reference = direct_all(extractor, fewer)
            diff = np.abs(ours - reference).max()
            print(f"{seconds:>5.0f}s {batch * 1e3:>9.3f} {single * 1e3:>10.3f} {dense * 1e3:>10.2f} "
                  f"{dense / batch:>12.0f}x {dense / single:>13.1f}x {seconds / batch:>9.0f}x "
                  f"{seconds / single:>10.0f}x {diff:>11.1e}")
    print(f"(one-off precomputation of the packed T_k^T T_k at first use: {prepare * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
