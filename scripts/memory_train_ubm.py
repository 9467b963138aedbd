"""Peak memory of `speaker-id train-ubm` as the corpus grows: it must not grow with it.

    python scripts/memory_train_ubm.py [--hours 1 10] [--components 64] [--max-iter 3]

For each size, a corpus of one-minute 8 kHz WAV files of synthetic voices
(:mod:`speaker_id.demo.synth`; 20 distinct recordings, linked as many times
as the size needs, so generating it takes seconds) is trained on by the
command line, ``speaker-id train-ubm --sr 8000 --jobs 1``, in a child
process whose peak resident memory (``ru_maxrss``) and wall time are printed.
Features go to on-disk shards and EM reads them back pass by pass, so the
peak should stay flat while the audio grows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SR = 8000
DISTINCT = 20


def make_corpus(directory: Path, hours: float) -> int:
    """Write ``hours`` of one-minute files into ``directory``; returns the number of files."""
    import soundfile as sf

    from speaker_id.demo.synth import make_speakers, synthesize

    voices = list(make_speakers(DISTINCT, seed=0).values())
    originals = []
    for i, voice in enumerate(voices):
        path = directory / f"orig{i:02d}.wav"
        sf.write(path, synthesize(voice, 60.0, sr=SR, seed=i), SR)
        originals.append(path)
    n_files = int(round(hours * 60))
    for i in range(DISTINCT, n_files):
        os.link(originals[i % DISTINCT], directory / f"copy{i:05d}.wav")
    return max(n_files, DISTINCT)


def peak_of_child(argv) -> tuple:
    """(peak RSS in MiB, seconds) of one child process running ``argv``."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {status}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--max-iter", type=int, default=3)
    args = parser.parse_args()
    print(f"speaker-id train-ubm --sr 8000 --jobs 1 --components {args.components} --max-iter {args.max_iter}")
    print(f"{'hours':>6s} {'files':>6s} {'frames before VAD':>17s} {'peak RSS':>10s} {'seconds':>8s}")
    for hours in args.hours:
        with tempfile.TemporaryDirectory(prefix="speaker-id-memory-") as tmp:
            corpus = Path(tmp) / "audio"
            corpus.mkdir()
            n_files = make_corpus(corpus, hours)
            argv = [sys.executable, "-m", "speaker_id", "train-ubm", "--store", str(Path(tmp) / "store"),
                    "--sr", str(SR), "--jobs", "1", "--quiet", "--components", str(args.components),
                    "--max-iter", str(args.max_iter), str(corpus)]
            peak, seconds = peak_of_child(argv)
            print(f"{hours:6.1f} {n_files:6d} {int(hours * 3600 * 100):17,d} {peak:8.0f} MiB {seconds:8.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
