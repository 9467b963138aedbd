"""One front-end setting against another on FSDD, over several UBM seeds.

    python scripts/compare_front_end.py [--seeds 0 1 2 3 4] [--setting center=False] [--datasets DIR]

Runs FSDD's protocol (``speaker_id.evaluation.protocols.evaluate``, the code of
``speaker-id evaluate``: 128 diagonal components, top-5 scoring) once per
seed with the default ``FeatureConfig(sr=8000)`` and once with the
``--setting`` changed (``name=value``, any ``FeatureConfig`` field), and prints
identification accuracy, T-normalised (the other enrolled speakers as the cohort: optimistic,
but the same for every front end) and raw EER per seed and their means.
FSDD's EERs come in steps of one trial (0.33 % of the 300 target trials), so
read the means beside the spread over seeds.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from pathlib import Path

import numpy as np


def parse_setting(text):
    name, _, value = text.partition("=")
    from speaker_id.frontend.config import FeatureConfig

    if name not in {f.name for f in dataclasses.fields(FeatureConfig)}:
        raise SystemExit(f"unknown FeatureConfig field {name!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--setting", default="center=False", help="the changed field, name=value (default center=False)")
    parser.add_argument("--datasets", type=Path, default=None)
    args = parser.parse_args()

    from speaker_id.evaluation.corpora import find_dataset_root
    from speaker_id.evaluation.protocols import evaluate
    from speaker_id.frontend.config import FeatureConfig

    root = args.datasets or find_dataset_root()
    if root is None:
        sys.exit("speech corpora not found: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    name, value = parse_setting(args.setting)
    configs = {"default": FeatureConfig(sr=8000), args.setting: FeatureConfig(sr=8000, **{name: value})}
    results = {label: [] for label in configs}
    print(f"{'front end':22s} {'seed':>5s} {'ident. acc':>11s} {'EER T-norm':>11s} {'EER raw':>8s}")
    for seed in args.seeds:
        for label, config in configs.items():
            r = evaluate("fsdd", Path(root) / "fsdd" / "recordings", feature_config=config, random_state=seed,
                         norm="tnorm", cohort="enrolled")
            results[label].append((r.accuracy, r.eer, r.raw_eer))
            print(f"{label:22s} {seed:5d} {100 * r.accuracy:10.2f}% {100 * r.eer:10.2f}% {100 * r.raw_eer:7.2f}%",
                  flush=True)
    for label, rows in results.items():
        acc, eer, raw = np.mean(rows, axis=0)
        print(f"{label:22s} {'mean':>5s} {100 * acc:10.2f}% {100 * eer:10.2f}% {100 * raw:7.2f}%")


if __name__ == "__main__":
    main()
