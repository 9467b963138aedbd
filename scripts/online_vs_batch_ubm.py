"""The value of online EM for the UBM: one partial_fit pass against batch EM, on FSDD.

    python scripts/online_vs_batch_ubm.py [--seeds 0 1 2] [--batch-size 8000] [--components 128]
                                          [--datasets DIR] [--sweep]

For each seed, FSDD's official protocol (``speaker_id.evaluation.protocols.evaluate``,
the code of ``speaker-id evaluate``: index 5-49 train the UBM and enroll,
0-4 test, 300 tests x 6 speakers) runs twice on the same features, with the
same seed, differing only in how the 128-component UBM learns:

* batch: EM to convergence (at most 50 iterations, each a pass over the
  94,000 training frames, after one pass drawing the initialisation sample);
* online: ONE pass of ``OnlineGMM.partial_fit`` over the training utterances
  in a seeded random order, ``--batch-size`` frames per update
  (``speaker_id.models.ubm.fit_ubm(learning_method="online")``).

It prints identification accuracy, EER (T-normalised with the other enrolled speakers as the
cohort, optimistic but the same for both UBMs, and raw), minDCF, UBM
training time, passes over the training frames and the UBM's log-likelihood
per frame of the test utterances, per seed and averaged, and the relative
EER difference (online - batch) / batch beside the issue's 10 % target.

FSDD's EERs are a fraction of a percent and come in steps of trials (one of
the 300 target trials is 0.33 % of misses, one of the 1,500 non-target
trials 0.07 % of false alarms), so a 10 % relative difference of a 0.6 %
EER is less than one trial: read the relative figures beside the spread
over seeds, and the held-out likelihood as the smooth measure of the UBM.

``--sweep`` adds the measurements behind the online defaults (several
minutes): held-out log-likelihood after one pass for batch sizes,
initialisation sizes and step exponents, and without shuffling, beside batch
EM stopped after a few iterations; then the protocol's accuracy and EERs
after one pass for batch sizes from 1,000 to 12,000 frames.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np

METHODS = ("batch", "online")
TARGET = 0.10


def warm_up():
    """Load the compiled E-step kernels once, so that no timed fit pays for it."""
    from streamgmm import OnlineGMM

    X = np.random.default_rng(0).normal(size=(4000, 60))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        OnlineGMM(4, covariance_type="diag", max_iter=2, random_state=0).fit(X)
        online = OnlineGMM(4, covariance_type="diag", random_state=0)
        for chunk in np.array_split(X, 4):
            online.partial_fit(chunk)


def compare(directory, seeds, n_components, batch_size, test_frames, n_jobs):
    """Run the protocol per seed and method. Returns a list of row dicts."""
    from speaker_id.evaluation.protocols import evaluate

    rows = []
    for seed in seeds:
        for method in METHODS:
            result = evaluate("fsdd", directory, n_components=n_components, random_state=seed,
                              learning_method=method, batch_size=batch_size, n_jobs=n_jobs,
                              norm="tnorm", cohort="enrolled")
            rows.append(dict(
                method=method, seed=seed, accuracy=result.accuracy, eer=result.eer,
                raw_eer=result.raw_eer, min_dcf=result.min_dcf[0.01], seconds=result.seconds["ubm"],
                passes=result.settings["ubm_passes"], updates=result.settings["ubm_iterations"],
                log_likelihood=result.ubm.score(test_frames), n_trials=len(result.trials),
                n_targets=int(sum(t[3] for t in result.trials)),
            ))
            print(f"  seed {seed} {method}: done ({result.seconds['total']:.1f} s)", file=sys.stderr, flush=True)
    return rows


def relative(online, batch):
    return (online - batch) / batch if batch > 0 else float("nan")


def print_table(rows, batch_size):
    """Per-seed rows, then the mean and range over seeds of each method. Returns the means."""
    label = {"batch": "batch EM", "online": f"online, 1 pass, {batch_size}"}
    columns = ("accuracy", "eer", "raw_eer")
    print(f"{'UBM learning':22s} {'seed':>5s} {'ident. acc':>13s} {'EER T-norm':>11s} {'EER raw':>11s} "
          f"{'minDCF':>7s} {'UBM s':>6s} {'passes':>6s} {'test LL/frame':>13s}")

    def line(name, seed, cells, min_dcf="", seconds="", passes="", ll=""):
        print(f"{name:22s} {seed:>5s} {cells[0]:>13s} {cells[1]:>11s} {cells[2]:>11s} "
              f"{min_dcf:>7s} {seconds:>6s} {passes:>6s} {ll:>13s}")

    seeds = sorted({r["seed"] for r in rows})
    for seed in seeds:
        for r in (r for r in rows if r["seed"] == seed):
            line(label[r["method"]], str(seed), [f"{100 * r[k]:.2f}%" for k in columns], f"{r['min_dcf']:.4f}",
                 f"{r['seconds']:.2f}", str(r["passes"]), f"{r['log_likelihood']:.3f}")
    means = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        means[method] = {k: float(np.mean([r[k] for r in mine]))
                         for k in columns + ("min_dcf", "seconds", "passes", "log_likelihood")}
        if len(seeds) > 1:
            m = means[method]
            line(label[method], "mean", [f"{100 * m[k]:.2f}%" for k in columns], f"{m['min_dcf']:.4f}",
                 f"{m['seconds']:.2f}", f"{m['passes']:.0f}", f"{m['log_likelihood']:.3f}")
            line("", "range", [f"{100 * min(r[k] for r in mine):.2f}-{100 * max(r[k] for r in mine):.2f}"
                               for k in columns])
    return means


def print_verdict(rows, means):
    n_trials, n_targets = rows[0]["n_trials"], rows[0]["n_targets"]
    print()
    print(f"trials per run: {n_targets} target, {n_trials - n_targets} non-target; one target trial = "
          f"{100 / n_targets:.2f} % miss rate, one non-target trial = {100 / (n_trials - n_targets):.2f} % false alarms")
    b, o = means["batch"], means["online"]
    for key, name in (("eer", "T-norm EER"), ("raw_eer", "raw EER")):
        rel = relative(o[key], b[key])
        per_seed = []
        for seed in sorted({r["seed"] for r in rows}):
            pair = {r["method"]: r[key] for r in rows if r["seed"] == seed}
            per_seed.append(relative(pair["online"], pair["batch"]))
        verdict = "within" if rel <= TARGET else "OUTSIDE"
        seeds_text = " ".join("n/a" if np.isnan(x) else f"{100 * x:+.0f}%" for x in per_seed)
        print(f"{name:10s}: online {100 * o[key]:.3f} % vs batch {100 * b[key]:.3f} % (means over seeds): "
              f"relative {100 * rel:+.1f} % -> {verdict} the {100 * TARGET:.0f} % target; per seed: {seeds_text}")
        if len(per_seed) > 1:
            diffs = 100 * np.array([[r[key] for r in rows if r["seed"] == seed and r["method"] == "online"][0]
                                    - [r[key] for r in rows if r["seed"] == seed and r["method"] == "batch"][0]
                                    for seed in sorted({r["seed"] for r in rows})])
            se = diffs.std(ddof=1) / np.sqrt(len(diffs))
            print(f"{'':10s}  paired difference online - batch: {diffs.mean():+.3f} +- {se:.3f} points "
                  f"(mean +- standard error over {len(diffs)} seeds; online higher on {int((diffs > 0).sum())}, "
                  f"lower on {int((diffs < 0).sum())})")
    print(f"held-out log-likelihood per frame: online {o['log_likelihood']:.3f}, batch {b['log_likelihood']:.3f} "
          f"({100 * (o['log_likelihood'] - b['log_likelihood']) / abs(b['log_likelihood']):+.2f} %)")
    print(f"UBM training: online {o['seconds']:.2f} s in 1 pass, batch {b['seconds']:.2f} s in "
          f"{b['passes']:.0f} passes ({b['seconds'] / o['seconds']:.0f}x)")


def sweep(directory, train, test_frames, seeds, n_components, n_jobs):
    """The measurements behind the online defaults.

    1. Held-out log-likelihood per frame of batch EM stopped after a few
       iterations, and of one online pass for initialisation sizes, batch
       sizes and step exponents, and without shuffling.
    2. The whole protocol (accuracy, EERs) after one online pass for batch
       sizes: the likelihood alone does not pick the batch size.
    """
    from speaker_id.evaluation.protocols import evaluate
    from speaker_id.models.ubm import shuffled_batches
    from streamgmm import OnlineGMM

    def online(seed, batch_size, init_size, exponent, shuffle=True):
        gmm = OnlineGMM(n_components, covariance_type="diag", init_params="kmeans", random_state=seed,
                        init_size=init_size, step_exponent=exponent)
        if shuffle:
            batches = shuffled_batches(train, batch_size, seed)
        else:  # corpus order (sorted names: digit, then speaker)
            frames = np.concatenate(train)
            batches = np.array_split(frames, max(1, round(len(frames) / batch_size)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for batch in batches:
                gmm.partial_fit(batch)
        return gmm.score(test_frames)

    def batch(seed, max_iter):
        gmm = OnlineGMM(n_components, covariance_type="diag", init_params="kmeans", random_state=seed,
                        init_size=max(100 * n_components, 20_000), max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gmm.fit(train).score(test_frames)

    library_init = max(20 * n_components, 200)  # OnlineGMM's own default for partial_fit
    ubm_init = max(100 * n_components, 20_000)  # fit_ubm's, as batch EM's sample
    print()
    print(f"1. held-out log-likelihood per frame, mean over seeds {list(seeds)} (higher is better)")
    print(f"{'UBM learning':58s} {'test LL/frame':>13s} {'range':>7s}")

    def show(label, values):
        print(f"{label:58s} {np.mean(values):13.3f} {np.ptp(values):7.3f}", flush=True)

    for max_iter in (1, 2, 3, 5, 10, 50):
        show(f"batch EM, {max_iter} iteration(s)", [batch(s, max_iter) for s in seeds])
    for init_size, batch_size, exponent in itertools.product(
            (library_init, ubm_init), (500, 1000, 2000, 4000, 8000), (0.6, 0.8)):
        show(f"online, init {init_size}, batch {batch_size}, exponent {exponent}",
             [online(s, batch_size, init_size, exponent) for s in seeds])
    show(f"online, init {ubm_init}, batch 8000, exponent 0.6, NOT shuffled",
         [online(s, 8000, ubm_init, 0.6, shuffle=False) for s in seeds])

    print()
    print(f"2. protocol after one online pass (fit_ubm's settings), mean over seeds {list(seeds)}")
    print(f"{'online batch size':>17s} {'ident. acc':>10s} {'EER T-norm':>10s} {'EER raw':>8s} {'updates':>7s}")
    for batch_size in (1000, 2000, 4000, 6000, 8000, 12000):
        results = [evaluate("fsdd", directory, n_components=n_components, random_state=s,
                            learning_method="online", batch_size=batch_size, n_jobs=n_jobs,
                            norm="tnorm", cohort="enrolled") for s in seeds]
        mean = lambda key: 100 * np.mean([getattr(r, key) for r in results])  # noqa: E731
        print(f"{batch_size:17d} {mean('accuracy'):9.2f}% {mean('eer'):9.3f}% {mean('raw_eer'):7.3f}% "
              f"{results[0].settings['ubm_iterations']:7d}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=None, help="corpora root (default: find_dataset_root())")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="UBM seeds (default: 0)")
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="frames per online update (default: speaker_id.models.ubm.DEFAULT_BATCH_SIZE)")
    parser.add_argument("--jobs", type=int, default=2, help="feature extraction processes (default 2)")
    parser.add_argument("--sweep", action="store_true", help="also the held-out likelihood under other settings")
    args = parser.parse_args()

    from speaker_id.evaluation.corpora import find_dataset_root
    from speaker_id.evaluation.protocols import _fsdd_split
    from speaker_id.frontend.config import FeatureConfig
    from speaker_id.frontend.extraction import extract_files
    from speaker_id.frontend.normalization import apply_prior, fit_prior
    from speaker_id.models.ubm import DEFAULT_BATCH_SIZE

    root = args.datasets or find_dataset_root()
    if root is None:
        sys.exit("no corpora: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    directory = root / "fsdd" / "recordings"
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    split = _fsdd_split(directory)
    config = FeatureConfig(sr=8000)  # evaluate's default for fsdd
    train = extract_files([u.path for u in split.train], config, n_jobs=args.jobs)
    config = fit_prior(config, train)  # as evaluate: means shrunk towards the training mean
    train = [apply_prior(X, config) for X in train]
    test_frames = np.concatenate(extract_files([u.path for u in split.test], config, n_jobs=args.jobs))
    warm_up()

    rows = compare(directory, args.seeds, args.components, batch_size, test_frames, args.jobs)
    means = print_table(rows, batch_size)
    print_verdict(rows, means)
    if args.sweep:
        sweep(directory, train, test_frames, args.seeds, args.components, args.jobs)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
