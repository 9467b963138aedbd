"""Where the benchmark and experiment scripts find the development corpora, and how each is evaluated.

Imported by the scripts beside it (Python puts a script's own directory on
``sys.path``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The development corpora, in the order every script reports them.
CORPORA = ("fsdd", "librispeech-mini", "arabic-speech-commands")


def corpus_protocols(datasets=None) -> dict:
    """``{name: (protocol, directory, sample rate)}`` of FSDD, librispeech-mini and arabic-speech-commands.

    ``datasets`` is the corpora's root (``--datasets``); by default the one
    :func:`speaker_id.evaluation.corpora.find_dataset_root` finds. Exits with
    a message naming the fix when there is none. librispeech-mini's Kaldi
    directories ship in this repository's ``datasets/``.
    """
    from speaker_id.evaluation.corpora import find_dataset_root

    root = datasets or find_dataset_root()
    if root is None:
        sys.exit("speech corpora not found: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    return {"fsdd": ("fsdd", Path(root) / "fsdd" / "recordings", 8000),
            "librispeech-mini": ("kaldi", REPO / "datasets" / "librispeech-mini", 16000),
            "arabic-speech-commands": ("kaldi", Path(root) / "arabic-speech-commands" / "kaldi", 16000)}
