"""Per-utterance feature normalisation: mean and variance (the default), mean only, or none.

    python scripts/normalisation_experiment.py [--corpus fsdd librispeech-mini arabic-speech-commands]
                                               [--seeds 0 1 2] [--components 128] [--channel]

For each corpus the features are extracted once without normalisation
(``FeatureConfig(cmvn=False)``: MFCCs, deltas, VAD), then each variant is
applied per utterance (:func:`speaker_id.frontend.normalization.cmvn` with and without
the variance, or nothing) and ``evaluate`` runs once per UBM seed. It prints
the mean raw EER and identification accuracy over the seeds (and the
per-seed EERs).

``--channel`` adds a second condition in which every *test* utterance (not
the training or enrollment ones) passes through its own random channel
before the front end: a first-order tilt filter ``1 - a z^-1`` with ``a``
uniform in [-0.6, 0.6] and a gain uniform in +-9 dB (fixed seed), what a
different microphone or level does to the same voice.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from corpus_protocols import CORPORA

VARIANTS = ("cmvn", "cmn", "none", "prior")


def normalise(features, variant, prior_mean=None, prior_frames=200):
    from speaker_id.frontend.normalization import cmvn

    if variant == "none":
        return features
    if variant == "prior":  # the utterance's mean shrunk towards the training mean, as with prior_frames more frames
        return {path: (X - len(X) / (len(X) + prior_frames) * (X.mean(axis=0) - prior_mean)).astype(np.float32)
                for path, X in features.items()}
    return {path: cmvn(X, variance=variant == "cmvn").astype(np.float32) for path, X in features.items()}


def channel_features(test_paths, config, seed=7):
    """Features (not normalised) of each test file after its own random tilt filter and gain."""
    import soundfile as sf
    from scipy.signal import lfilter

    from speaker_id.frontend import extract

    rng = np.random.default_rng(seed)
    out = {}
    for path in test_paths:
        y, sr = sf.read(path, dtype="float32", always_2d=False)
        if sr != config.sr:
            raise SystemExit(f"{path}: {sr} Hz, the protocol reads {config.sr} Hz")
        a, gain_db = rng.uniform(-0.6, 0.6), rng.uniform(-9, 9)
        y = 10 ** (gain_db / 20) * lfilter([1.0, -a], [1.0], y) / (1 + abs(a))
        out[path] = extract(np.clip(y, -1, 1).astype(np.float32), config)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=list(CORPORA), choices=CORPORA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--prior-frames", type=int, default=200,
                        help="'prior': weight of the training mean, in frames (default 200)")
    parser.add_argument("--channel", action="store_true", help="also test through a random channel per test file")
    parser.add_argument("--datasets", type=Path, default=None)
    args = parser.parse_args()

    from corpus_protocols import corpus_protocols

    from speaker_id.evaluation.protocols import _fsdd_split, _kaldi_split, evaluate
    from speaker_id.frontend import FeatureConfig, extract_files

    corpora = corpus_protocols(args.datasets)
    print(f"{args.components} diagonal components, raw scores, means over UBM seeds {args.seeds}")
    for corpus in args.corpus:
        protocol, directory, sr = corpora[corpus]
        split = _fsdd_split(directory) if protocol == "fsdd" else _kaldi_split(directory)
        config = FeatureConfig(sr=sr, cmvn=False, prior_frames=None)
        paths = list({u.path: None for u in split.train + [u for s in sorted(split.enroll) for u in split.enroll[s]]
                      + split.test})
        plain = dict(zip(paths, extract_files(paths, config, n_jobs=1)))
        conditions = [("matched", plain)]
        if args.channel:
            conditions.append(("test channel", {**plain, **channel_features([u.path for u in split.test], config)}))
        prior_mean = np.concatenate([plain[u.path] for u in split.train]).astype(np.float64).mean(axis=0)
        for variant in args.variants:
            for condition, features in conditions:
                rows = []
                for seed in args.seeds:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = evaluate(protocol, directory, n_components=args.components, norm="none", n_jobs=1,
                                     feature_config=config,
                                     features=normalise(features, variant, prior_mean, args.prior_frames),
                                     random_state=seed)
                    rows.append((r.raw_eer, r.accuracy))
                eers, accuracies = 100 * np.array(rows).T
                print(f"{corpus:23s} {variant:5s} {condition:13s} raw EER {eers.mean():5.2f} % "
                      f"ident. {accuracies.mean():6.2f} %   per seed " + " ".join(f"{e:.2f}" for e in eers),
                      flush=True)


if __name__ == "__main__":
    main()
