"""UBM EM schedules on all three corpora: UBM seconds, EM passes, EER and identification per schedule.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python scripts/ubm_schedule_experiment.py \\
        [--schedules full50 grow4 ...] [--seeds 0 1 2] [--runs fsdd:128 librispeech-mini:128 ...] \\
        [--datasets DIR] [--cache-dir DIR] [--jobs 2]

For each candidate schedule (``--list`` prints them) and each UBM seed it runs
``speaker_id.evaluation.protocols.evaluate`` (the code of ``speaker-id
evaluate``) on FSDD (128 components), librispeech-mini (128) and
arabic-speech-commands (128 and 256), corpora located as
``scripts/evaluate_corpora.py`` does. Features are extracted once per corpus
(``protocol_features``; kept in ``--cache-dir`` if given) and every schedule
reuses them, so only the UBM, enrollment and scoring run again. Raw scores
for all corpora, plus S-norm with the training cohort for the Kaldi corpora.

It prints one row per (schedule, corpus, seed) as it goes, then the mean
over seeds: UBM seconds, EM passes over all the training frames, all E-step
work in such passes (``equiv``: subsample passes count by frames x
components), raw EER, identification accuracy and S-norm EER. Times compare
only within one run (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def candidate_schedules():
    """Name -> UbmSchedule of every candidate."""
    from speaker_id.models.ubm_schedule import UbmSchedule

    return {
        "full50": UbmSchedule("full", max_iter=50),
        "full10": UbmSchedule("full", max_iter=10),
        "full20": UbmSchedule("full", max_iter=20),
        "full30": UbmSchedule("full", max_iter=30),
        "full-rel1e-4": UbmSchedule("full", max_iter=50, rel_tol=1e-4),
        "full-rel3e-4": UbmSchedule("full", max_iter=50, rel_tol=3e-4),
        # first sweep: subsample of 400 frames per component (k-means then ran on all of it)
        "grow4": UbmSchedule("grow", final_iterations=4, subsample_per_component=400),
        "grow8": UbmSchedule("grow", final_iterations=8, subsample_per_component=400),
        "grow8-sub8": UbmSchedule("grow", final_iterations=8, subsample_iterations_at_full_size=8,
                                  subsample_per_component=400),
        "grow-rel1e-4": UbmSchedule("grow", final_iterations=20, rel_tol=1e-4, subsample_per_component=400),
        # subsample of 200 frames per component, k-means on max(100 k, 20000) of them
        "g4": UbmSchedule("grow", final_iterations=4, subsample_iterations_at_full_size=0),
        "g8-s8": UbmSchedule("grow", final_iterations=8, subsample_iterations_at_full_size=8),
        "g12-s8": UbmSchedule("grow", final_iterations=12, subsample_iterations_at_full_size=8),
        "g8-s16": UbmSchedule("grow", final_iterations=8, subsample_iterations_at_full_size=16),
        "g8-s8-k16": UbmSchedule("grow", final_iterations=8, subsample_iterations_at_full_size=8, start_fraction=16),
        "g8-s8-it8": UbmSchedule("grow", final_iterations=8, subsample_iterations_at_full_size=8,
                                 iterations_per_size=8),
    }


def load_or_extract(protocol, directory, cache_dir, name):
    """``protocol_features`` of a corpus, read from / written to ``cache_dir/name.npz`` when given.

    The file keys the features by real path, so a corpus written to another
    temporary Kaldi directory (librispeech-mini) finds them again.
    """
    import os

    from speaker_id.evaluation.protocols import _protocol, protocol_features

    path = Path(cache_dir) / f"{name}.npz" if cache_dir else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as data:
            keys = json.loads(str(data["paths"]))
            ends = np.cumsum(data["lengths"])
            frames = data["frames"]
            cached = {k: frames[e - n:e] for k, n, e in zip(keys, data["lengths"], ends)}
        split = _protocol(protocol, directory)[0]
        utterances = split.train + [u for s in split.enroll.values() for u in s] + split.test
        return {u.path: cached[os.path.realpath(u.path)] for u in utterances}
    features = protocol_features(protocol, directory)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(features)
        np.savez(path, paths=np.array(json.dumps([os.path.realpath(k) for k in keys])),
                 lengths=np.array([len(features[k]) for k in keys]),
                 frames=np.concatenate([features[k] for k in keys]))
    return features


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", nargs="+", default=["full50", "grow4"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--runs", nargs="+", default=["fsdd:128", "librispeech-mini:128",
                                                      "arabic-speech-commands:128", "arabic-speech-commands:256"],
                        help="corpus:components pairs")
    parser.add_argument("--datasets", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep each corpus's features here")
    parser.add_argument("--list", action="store_true", help="print the candidate schedules and exit")
    args = parser.parse_args()

    schedules = candidate_schedules()
    if args.list:
        for name, schedule in schedules.items():
            print(f"{name:14s} {schedule}")
        return
    unknown = [s for s in args.schedules if s not in schedules]
    if unknown:
        sys.exit(f"unknown schedule {unknown[0]!r}; --list shows them")

    from evaluate_corpora import corpus_protocols

    from speaker_id.evaluation.corpora import find_dataset_root
    from speaker_id.evaluation.protocols import evaluate

    root = args.datasets or find_dataset_root()
    if root is None:
        sys.exit("no corpora: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    corpora = corpus_protocols(root)
    runs = [(r.split(":")[0], int(r.split(":")[1])) for r in args.runs]
    features = {}
    for corpus in dict.fromkeys(c for c, _ in runs):
        started = time.perf_counter()
        protocol, directory = corpora[corpus][:2]
        features[corpus] = load_or_extract(protocol, directory, args.cache_dir, corpus)
        n = sum(len(f) for f in features[corpus].values())
        print(f"# {corpus}: {len(features[corpus])} files, {n} frames, {time.perf_counter() - started:.1f}s",
              flush=True)

    header = (f"{'schedule':14s} {'corpus':26s} {'seed':>4s} {'ubm s':>7s} {'passes':>6s} {'equiv':>6s} "
              f"{'raw EER':>8s} {'ident.':>7s} {'snorm EER':>9s}")
    print(header, flush=True)
    results = {}
    for name in args.schedules:
        for corpus, k in runs:
            protocol, directory, _, _, norm = corpora[corpus]
            for seed in args.seeds:
                r = evaluate(protocol, directory, n_components=k, norm=norm, random_state=seed,
                             ubm_schedule=schedules[name], features=features[corpus])
                row = (r.seconds["ubm"], r.settings["ubm_iterations"], r.settings["ubm_equivalent_passes"],
                       r.raw_eer, r.accuracy, r.eer if norm != "none" else float("nan"))
                results.setdefault((name, f"{corpus}:{k}"), []).append(row)
                print(f"{name:14s} {corpus + ':' + str(k):26s} {seed:4d} {row[0]:7.1f} {row[1]:6d} {row[2]:6.1f} "
                      f"{100 * row[3]:7.2f}% {100 * row[4]:6.2f}% {100 * row[5]:8.2f}%", flush=True)

    print(f"\nmean over seeds {args.seeds}")
    print(header.replace(" seed", "     "))
    for (name, run), rows in results.items():
        m = np.mean(np.array(rows, dtype=float), axis=0)
        print(f"{name:14s} {run:26s} {'':4s} {m[0]:7.1f} {m[1]:6.1f} {m[2]:6.1f} {100 * m[3]:7.2f}% "
              f"{100 * m[4]:6.2f}% {100 * m[5]:8.2f}%")
    print("\nper corpus: schedule / full50 UBM time, raw EER of each seed")
    for run in dict.fromkeys(r for _, r in results):
        base = results.get(("full50", run))
        for name in args.schedules:
            rows = results[(name, run)]
            ratio = (np.mean([b[0] for b in base]) / np.mean([r[0] for r in rows])) if base else float("nan")
            eers = " ".join(f"{100 * r[3]:.2f}" for r in rows)
            print(f"{run:26s} {name:14s} speed-up {ratio:5.1f}x  raw EER % {eers}")


if __name__ == "__main__":
    main()
