"""Speaker recognition on the real corpora: speaker_id beside a hand-built scikit-learn baseline.

    python scripts/evaluate_corpora.py [--datasets DIR] [--components K] [--skip-baseline] [--corpus NAME ...]
                                       [--backend gmm ivector] [--seeds 0 1 2]

On three corpora:

* FSDD (official split: index 0-4 test, 5-49 train the UBM and enroll; the
  training speakers are the test speakers, so there is no honest cohort and
  only raw scores are reported);
* librispeech-mini (UBM and cohort on train-clean-100, 251 speakers; each
  test-other speaker enrolls on its first 5 utterances and is tested on the
  last 5);
* arabic-speech-commands (UBM and cohort on the 18 training speakers; the 12
  test speakers enroll on rounds 01-05 and are tested with rounds 06-10),

it prints identification accuracy, EER and minDCF (p_target 0.01 and 0.001) of:

* speaker_id: ``speaker_id.evaluation.protocols.evaluate`` (the same code as
  ``speaker-id evaluate``) with each ``--backend`` (GMM-UBM by default; the
  i-vector back end with its defaults: rank 200, LDA, PLDA, VTLN
  pseudo-speakers), raw scores and S-normalised scores whose cohort
  (cohort models and Z-norm impostors) comes from the training speakers only;
* the hand-built baseline of issue 9: a GMM-UBM assembled from librosa and
  scikit-learn: ``librosa.feature.mfcc`` (20 coefficients, 25 ms / 10 ms,
  40 mel bands) with deltas and double deltas, per-utterance mean and
  variance normalisation, no VAD, a diagonal ``GaussianMixture`` UBM of the
  same number of components as ours, MAP adaptation of the means with
  relevance factor 16 computed from ``predict_proba``, and the average
  log-likelihood ratio from exact ``score_samples``; raw scores.

Each ``--seeds`` value seeds both UBMs (ours and the baseline's k-means
start); with several, every system gets a row per seed and a ``mean`` row,
so one lucky or unlucky initialisation on either side does not decide a
comparison. Our features are then extracted once for all seeds and their
time is left out of our seconds column; the baseline's still includes its
own extraction, so compare times with a single seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


P_TARGETS = (0.01, 0.001)
CORPORA = ("fsdd", "librispeech-mini", "arabic-speech-commands")


def baseline(train, enroll, test, sr, n_components, random_state=0):
    """The scikit-learn + librosa GMM-UBM (``handbuilt_baseline``). Returns (accuracy, raw EER, {p_target: minDCF}, seconds)."""
    from handbuilt_baseline import run

    from speaker_id.evaluation import metrics

    r = run(train, enroll, test, sr, n_components, random_state=random_state)
    scores, labels = r["scores"].ravel(), r["labels"].ravel()
    eer, _ = metrics.eer(scores, labels)
    dcf = {p: metrics.min_dcf(scores, labels, p_target=p)[0] for p in P_TARGETS}
    return r["accuracy"], float(eer), dcf, r["seconds"]["total"]


def corpus_protocols(root):
    """Each corpus's (protocol, directory, sample rate, split function, normalisation) under ``root``.

    librispeech-mini is written as a Kaldi directory (train: train-clean-100,
    test: test-other) into a temporary folder.
    """
    import tempfile

    from speaker_id.evaluation.corpora import load_librispeech_dir, write_kaldi_dir
    from speaker_id.evaluation.protocols import _fsdd_split, _kaldi_split

    root = Path(root)
    kaldi = Path(tempfile.mkdtemp(prefix="librispeech-mini-kaldi-"))
    write_kaldi_dir(load_librispeech_dir(root / "librispeech-mini" / "train-clean-100"), kaldi / "train", kaldi)
    write_kaldi_dir(load_librispeech_dir(root / "librispeech-mini" / "test-other"), kaldi / "test", kaldi)
    return {"fsdd": ("fsdd", root / "fsdd" / "recordings", 8000, _fsdd_split, "none"),
            "librispeech-mini": ("kaldi", kaldi, 16000, _kaldi_split, "snorm"),
            "arabic-speech-commands": ("kaldi", root / "arabic-speech-commands" / "kaldi", 16000, _kaldi_split,
                                       "snorm")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=None, help="corpora root (default: find_dataset_root())")
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--corpus", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--backend", nargs="+", choices=("gmm", "ivector"), default=["gmm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="UBM seeds, ours and the baseline's")
    args = parser.parse_args()

    from speaker_id.evaluation.corpora import find_dataset_root

    root = args.datasets or find_dataset_root()
    if root is None:
        sys.exit("no corpora: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    corpora = corpus_protocols(root)
    from speaker_id.evaluation.protocols import evaluate, protocol_features
    rows = {}  # (corpus, system) -> one (accuracy, EER, {p: minDCF}, seconds) per seed
    k = args.components
    for title in args.corpus:
        protocol, directory, sr, split_fn, norm = corpora[title]
        # extracted once for all seeds and back ends (their time is then not in the seconds column)
        features = protocol_features(protocol, directory, sr=sr) if len(args.seeds) > 1 else None
        split = None if args.skip_baseline else split_fn(directory)
        for seed in args.seeds:
            for backend in args.backend:
                result = evaluate(protocol, directory, n_components=k, sr=sr, norm=norm, p_targets=P_TARGETS,
                                  backend=backend, random_state=seed, features=features)
                system = f"speaker_id {k} diag" if backend == "gmm" else f"speaker_id {k} i-vector"
                rows.setdefault((title, f"{system}, raw"), []).append(
                    (result.accuracy, result.raw_eer, result.raw_min_dcf, result.seconds["total"]))
                if norm != "none":
                    rows.setdefault((title, f"{system}, {norm} (train cohort)"), []).append(
                        (result.norm_accuracy, result.eer, result.min_dcf, result.seconds["total"]))
            if split is not None:
                rows.setdefault((title, f"sklearn+librosa {k} diag, raw"), []).append(
                    baseline(split.train, split.enroll, split.test, sr, k, random_state=seed))
    print(f"{'corpus':23s} {'system':40s} {'seed':>4s} {'ident.':>7s} {'EER':>7s} {'DCF.01':>7s} {'DCF.001':>7s} "
          f"{'seconds':>8s}")
    for (title, system), runs in rows.items():
        labelled = list(zip([str(seed) for seed in args.seeds], runs))
        if len(runs) > 1:
            labelled.append(("mean", (np.mean([r[0] for r in runs]), np.mean([r[1] for r in runs]),
                                      {p: np.mean([r[2][p] for r in runs]) for p in P_TARGETS},
                                      np.mean([r[3] for r in runs]))))
        for seed, (acc, eer, dcf, seconds) in labelled:
            print(f"{title:23s} {system:40s} {seed:>4s} {100 * acc:6.2f}% {100 * eer:6.2f}% {dcf[0.01]:7.4f} "
                  f"{dcf[0.001]:7.4f} {seconds:8.1f}")


if __name__ == "__main__":
    main()
