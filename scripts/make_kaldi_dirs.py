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
from pathlib import Path

from speaker_id.evaluation.corpora import load_librispeech_dir, write_kaldi_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    out = args.out.resolve()
    for part, source in (("train", "train-clean-100"), ("test", "test-other")):
        utterances = load_librispeech_dir(args.corpus / source)
        write_kaldi_dir(utterances, out / part, base_dir=out)
        print(f"{out / part}: {len(utterances)} utterances, {len({u.speaker for u in utterances})} speakers")


if __name__ == "__main__":
    main()
