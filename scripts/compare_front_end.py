"""Settings of the front end or the GMM back end against the defaults, on all three corpora, over UBM seeds.

    python scripts/compare_front_end.py [--corpus fsdd librispeech-mini arabic-speech-commands]
        [--seeds 0 1 2] [--components 128] [--setting NAME=VALUE [NAME=VALUE ...]] ... [--datasets DIR]

Each ``--setting`` is one variant: one or more ``name=value`` pairs, each a
``FeatureConfig`` field (``n_mels=64``, ``delta_width=5``) or a keyword of
:func:`speaker_id.evaluation.protocols.evaluate` (``relevance_factor=8``,
``adapt=('weights','means')``, ``n_components=256``). For each corpus the
features of each front end are extracted once; then ``evaluate`` (the code
of ``speaker-id evaluate``: top-5 scoring, raw scores) runs once per UBM seed
and variant. It prints raw EER and identification accuracy per seed and
their means, the default first. A change counts only if it helps the
corpora together: FSDD's EERs come in steps of 0.33 % (one of 300 target
trials) and librispeech-mini's in steps of 2 % (one of 50), so read the
means beside the spread over seeds.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import warnings
from pathlib import Path

import numpy as np
from corpus_protocols import CORPORA


def parse_variant(pairs):
    """``["n_mels=64", "relevance_factor=8"]`` -> (front-end fields, evaluate keywords)."""
    from speaker_id.evaluation.protocols import evaluate
    from speaker_id.frontend.config import FeatureConfig

    fields = {f.name for f in dataclasses.fields(FeatureConfig)} - {"sr"}
    keywords = set(inspect.signature(evaluate).parameters) - {"protocol", "directory", "features", "feature_config",
                                                               "random_state", "sr", "client"}
    front, back = {}, {}
    for text in pairs:
        name, _, value = text.partition("=")
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        if name in fields:
            front[name] = value
        elif name in keywords:
            back[name] = value
        else:
            raise SystemExit(f"{name!r} is neither a FeatureConfig field nor an evaluate() keyword")
    return front, back


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=CORPORA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--setting", nargs="+", action="append", default=[], metavar="NAME=VALUE",
                        help="one variant (repeat the option for more); default center=False")
    parser.add_argument("--datasets", type=Path, default=None)
    args = parser.parse_args()

    from corpus_protocols import corpus_protocols

    from speaker_id.evaluation.protocols import evaluate, protocol_features
    from speaker_id.frontend.config import FeatureConfig

    variants = {"default": ({}, {})}
    for pairs in args.setting or [["center=False"]]:
        variants[" ".join(pairs)] = parse_variant(pairs)
    corpora = corpus_protocols(args.datasets)
    width = max(len(label) for label in variants)
    print(f"{args.components} diagonal components unless a variant says otherwise; raw scores; "
          f"UBM seeds {args.seeds}")
    print(f"{'corpus':23s} {'variant':{width}s} {'raw EER':>8s} {'ident.':>8s}   per-seed raw EER")
    for corpus in args.corpus:
        protocol, directory, sr = corpora[corpus]
        cache = {}
        for label, (front, back) in variants.items():
            config = FeatureConfig(sr=sr, **front)
            if config not in cache:
                cache[config] = protocol_features(protocol, directory, feature_config=config, n_jobs=1)
            rows = []
            for seed in args.seeds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = evaluate(protocol, directory, **{"n_components": args.components, "norm": "none",
                                                         "n_jobs": 1, **back},
                                 feature_config=config, features=cache[config], random_state=seed)
                rows.append((r.raw_eer, r.accuracy))
            eers, accuracies = 100 * np.array(rows).T
            print(f"{corpus:23s} {label:{width}s} {eers.mean():7.2f}% {accuracies.mean():7.2f}%   "
                  + " ".join(f"{e:.2f}" for e in eers), flush=True)


if __name__ == "__main__":
    main()
