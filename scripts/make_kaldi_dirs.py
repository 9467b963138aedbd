"""Write Kaldi data directories (wav.scp, utt2spk, spk2utt) for librispeech-mini.

    python scripts/make_kaldi_dirs.py CORPUS OUT

CORPUS is the librispeech-mini folder (holding train-clean-100/ and
test-other/); OUT receives train/ (UBM training: train-clean-100) and test/
(test-other: each speaker's first half of utterances enrolls, the rest are
tests, as `speaker-id evaluate --protocol kaldi OUT` does). Paths in wav.scp
are written relative to OUT, so the directories stay valid when both are moved
together. The repository ships the result for the layout
<repo>/datasets/librispeech-mini -> <repo>/../shared/datasets/librispeech-mini.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from speaker_id.datasets import load_librispeech_dir


def write_dir(utterances, directory: Path, base: Path):
    directory.mkdir(parents=True, exist_ok=True)
    utterances = sorted(utterances, key=lambda u: u.utt_id)
    with open(directory / "wav.scp", "w", encoding="utf-8") as scp, \
            open(directory / "utt2spk", "w", encoding="utf-8") as u2s:
        for utt in utterances:
            scp.write(f"{utt.utt_id} {os.path.relpath(utt.path, base)}\n")
            u2s.write(f"{utt.utt_id} {utt.speaker}\n")
    by_speaker = {}
    for utt in utterances:
        by_speaker.setdefault(utt.speaker, []).append(utt.utt_id)
    with open(directory / "spk2utt", "w", encoding="utf-8") as s2u:
        for speaker in sorted(by_speaker):
            s2u.write(f"{speaker} {' '.join(by_speaker[speaker])}\n")
    return len(utterances), len(by_speaker)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    out = args.out.resolve()
    for part, source in (("train", "train-clean-100"), ("test", "test-other")):
        n_utts, n_spk = write_dir(load_librispeech_dir(args.corpus / source), out / part, out)
        print(f"{out / part}: {n_utts} utterances, {n_spk} speakers")


if __name__ == "__main__":
    main()
