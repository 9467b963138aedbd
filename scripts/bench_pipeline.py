"""The whole GMM-UBM pipeline, ours beside the hand-built scikit-learn + librosa one, per stage.

    python scripts/bench_pipeline.py [--corpus arabic-speech-commands librispeech-mini] [--components 256]
                                     [--jobs 1] [--datasets DIR]

On each Kaldi corpus (UBM on ``train``; every ``test`` speaker enrolls on the
first half of its utterances and the rest are tested against every enrolled
speaker), both sides run in a fresh process, one after the other, on the
same files with the same number of diagonal components:

* ours: ``speaker_id.evaluation.protocols.evaluate`` (the code of
  ``speaker-id evaluate``) with raw scores (``norm="none"``), features with
  ``--jobs`` processes;
* the peer: ``scripts/handbuilt_baseline.py`` (librosa features,
  ``GaussianMixture`` UBM, MAP of the means from ``predict_proba``, exact
  ``GaussianMixture.score`` per model), one process.

It prints seconds per stage (features, UBM, enrollment, scoring of every trial, all), the ratio
peer / ours, EM iterations, the raw EER and identification accuracy each side
reaches, and each side's peak resident memory (its main process; ours' feature
workers are not counted). BLAS threads are left at their default for both.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import resource
import sys
from pathlib import Path

CORPORA = ("arabic-speech-commands", "librispeech-mini")


def _ours(directory, n_components, jobs):
    from speaker_id.evaluation.protocols import evaluate

    r = evaluate("kaldi", directory, n_components=n_components, norm="none", n_jobs=jobs)
    s = r.seconds
    stages = {"features": s["features"], "ubm": s["ubm"], "enroll": s["backend"] + s["enroll"],
              "score": s["score"], "total": s["total"]}
    return {"seconds": stages, "eer": r.raw_eer, "accuracy": r.accuracy, "iterations": r.settings["ubm_iterations"],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _peer(directory, n_components):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from handbuilt_baseline import run

    from speaker_id.evaluation import metrics
    from speaker_id.evaluation.protocols import _kaldi_split

    split = _kaldi_split(directory)
    r = run(split.train, split.enroll, split.test, 16000, n_components)
    s = r["seconds"]
    eer, _ = metrics.eer(r["scores"].ravel(), r["labels"].ravel())
    stages = {"features": s["features"], "ubm": s["ubm"], "enroll": s["enroll"], "score": s["scoring"],
              "total": s["total"]}
    return {"seconds": stages, "eer": float(eer), "accuracy": r["accuracy"], "iterations": r["ubm_iterations"],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _in_fresh_process(fn, *args):
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=1, help="our feature processes (default 1)")
    parser.add_argument("--datasets", type=Path, default=None)
    args = parser.parse_args()

    from corpus_protocols import corpus_protocols

    directories = {name: directory for name, (_, directory, _) in corpus_protocols(args.datasets).items()}
    stages = ("features", "ubm", "enroll", "score", "total")
    print(f"{args.components} diagonal components, raw scores; ours with {args.jobs} feature process(es)")
    print(f"{'corpus':23s} {'side':6s} " + " ".join(f"{s:>13s}" for s in stages)
          + f" {'EM iter':>7s} {'EER':>7s} {'ident.':>7s} {'peak MB':>8s}")
    for corpus in args.corpus:
        directory = directories[corpus]
        ours = _in_fresh_process(_ours, directory, args.components, args.jobs)
        peer = _in_fresh_process(_peer, directory, args.components)
        for side, r in (("ours", ours), ("peer", peer)):
            print(f"{corpus:23s} {side:6s} " + " ".join(f"{r['seconds'][s]:12.2f}s" for s in stages)
                  + f" {r['iterations']:7d} {100 * r['eer']:6.2f}% {100 * r['accuracy']:6.2f}% {r['peak_mb']:8.0f}",
                  flush=True)
        print(f"{corpus:23s} {'ratio':6s} " + " ".join(f"{peer['seconds'][s] / ours['seconds'][s]:12.1f}x"
                                                      for s in stages), flush=True)


if __name__ == "__main__":
    main()
