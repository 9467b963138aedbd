"""Feature-extraction speed: speaker_id.frontend vs plain librosa, one core.

For each corpus (FSDD at 8 kHz, librispeech-mini at 16 kHz) the same files
are processed by

* ``ours``     : ``speaker_id.frontend.extraction.extract_file`` (decode + MFCC + deltas
                 + VAD + CMVN, the whole chain);
* ``librosa``  : ``soundfile.read`` + the same MFCCs from ``librosa.stft`` (one per
                 multitaper taper, ``scripts/librosa_mfcc.py``), ``librosa.feature.melspectrogram``
                 and ``librosa.feature.mfcc`` + two ``librosa.feature.delta``;
* ``decode``   : ``speaker_id.frontend.audio.load_audio`` alone, for reference;
* ``extract_files(1)``  : ``extract_files(paths, cfg, n_jobs=1)``, the library's many-file call, timed whole;
* ``train-ubm cache(1)``: ``speaker_id.models.ubm.FeatureCache(paths, cfg, n_jobs=1)``, the
                 feature stage of ``speaker-id train-ubm`` (extraction and the ``.npy`` shards), timed whole.

With ``--parallel`` the last two also run with ``n_jobs=2`` (a corpus of less
than 128 MiB of files starts no worker: it stays in the calling process).

Printed per method: total time (median over repeats), speed as a multiple
of real time (audio seconds / processing seconds), median time per file and
the speed ratio to librosa. BLAS/OpenMP are pinned to one thread before
NumPy is imported, so the figures are single-core.

Usage::

    python scripts/bench_features.py                 # 1000 FSDD + 100 LibriSpeech files
    python scripts/bench_features.py --all --repeats 5
    python scripts/bench_features.py --parallel      # also extract_files(n_jobs=2)
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from librosa_mfcc import librosa_mfcc  # noqa: E402

from speaker_id.evaluation.corpora import (
    find_dataset_root,
    load_fsdd,
    load_librispeech_dir,
)
from speaker_id.frontend.audio import load_audio
from speaker_id.frontend.config import FeatureConfig
from speaker_id.frontend.extraction import extract_file, extract_files
from speaker_id.models.ubm import FeatureCache


def librosa_baseline(path, cfg):
    y, sr = sf.read(path, dtype="float32")
    m = librosa_mfcc(y, cfg)
    d1 = librosa.feature.delta(m, width=cfg.delta_width, order=1)
    d2 = librosa.feature.delta(m, width=cfg.delta_width, order=2)
    return np.concatenate([m, d1, d2]).T


def time_method(fn, paths, cfg, repeats):
    fn(paths[0], cfg)  # warm-up: caches, lazy imports
    totals, per_file = [], []
    for _ in range(repeats):
        times = []
        for p in paths:
            t0 = time.perf_counter()
            fn(p, cfg)
            times.append(time.perf_counter() - t0)
        totals.append(sum(times))
        per_file.extend(times)
    return statistics.median(totals), statistics.median(per_file)


def subset(paths, n):
    if n is None or n >= len(paths):
        return list(paths)
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fsdd", type=int, default=1000, help="number of FSDD files (default 1000 of 3000)")
    ap.add_argument("--libri", type=int, default=100, help="number of librispeech-mini files (default 100 of 351)")
    ap.add_argument("--all", action="store_true", help="use every file of both corpora")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parallel", action="store_true", help="also time extract_files and FeatureCache with n_jobs=2")
    args = ap.parse_args(argv)

    root = find_dataset_root()
    if root is None:
        sys.exit("datasets not found: set SPEAKER_ID_DATASETS or place them in ../shared/datasets")
    train, test = load_fsdd(root / "fsdd" / "recordings")
    fsdd = sorted(u.path for u in train + test)
    libri = sorted(u.path for u in load_librispeech_dir(root / "librispeech-mini"))
    corpora = [
        ("FSDD 8 kHz", subset(fsdd, None if args.all else args.fsdd), FeatureConfig(sr=8000)),
        ("librispeech-mini 16 kHz", subset(libri, None if args.all else args.libri), FeatureConfig(sr=16000)),
    ]
    methods = [
        ("ours (decode+features)", extract_file),
        ("librosa mfcc+delta", librosa_baseline),
        ("decode only", lambda p, c: load_audio(p, sr=c.sr)),
    ]

    print(f"single core (OMP/BLAS threads = {os.environ['OMP_NUM_THREADS']}), median of {args.repeats} repeats; "
          f"librosa {librosa.__version__}, numpy {np.__version__}")
    header = f"{'corpus':<25} {'files':>5} {'audio s':>8}  {'method':<24} {'total s':>8} {'x real time':>11} {'ms/file':>8} {'vs librosa':>10}"
    print(header)
    print("-" * len(header))
    for name, paths, cfg in corpora:
        audio_s = sum(sf.info(p).duration for p in paths)
        results = {label: time_method(fn, paths, cfg, args.repeats) for label, fn in methods}
        base_total = results["librosa mfcc+delta"][0]
        for label, (total, med) in results.items():
            print(f"{name:<25} {len(paths):>5} {audio_s:>8.1f}  {label:<24} {total:>8.3f} {audio_s / total:>11.0f} "
                  f"{med * 1e3:>8.3f} {base_total / total:>9.2f}x")
        runs = [("extract_files(1)", lambda: extract_files(paths, cfg, n_jobs=1)),
                ("train-ubm cache(1)", lambda: FeatureCache(paths, cfg, n_jobs=1).close())]
        if args.parallel:
            runs += [("extract_files(2)", lambda: extract_files(paths, cfg, n_jobs=2)),
                     ("train-ubm cache(2)", lambda: FeatureCache(paths, cfg, n_jobs=2).close())]
        for label, run in runs:  # whole calls: per-call overheads (pool, shards) included
            totals = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run()
                totals.append(time.perf_counter() - t0)
            total = statistics.median(totals)
            print(f"{name:<25} {len(paths):>5} {audio_s:>8.1f}  {label:<24} {total:>8.3f} {audio_s / total:>11.0f} "
                  f"{total / len(paths) * 1e3:>8.3f} {base_total / total:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
