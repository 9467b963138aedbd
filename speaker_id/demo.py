"""``speaker-id demo``: the whole pipeline end to end on an embedded default.

Without a corpus, speakers are synthesised in-process with a source-filter
voice model (:mod:`speaker_id.synth`) and written as WAV files to a
temporary directory; then exactly the steps a user runs happen on them:
train a UBM on background speakers, create a store, enroll the target
speakers, verify and identify held-out recordings, and report accuracy and
EER. With FSDD's recordings it runs the FSDD protocol instead.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from . import metrics
from .features import FeatureConfig
from .pipeline import enroll_files, evaluate, identify_file
from .store import SpeakerStore
from .synth import make_corpus
from .ubm import train_ubm

SR = 16000


def _write(directory: Path, corpus):
    paths = {}
    for utt in corpus:
        path = directory / f"{utt.utt_id}.wav"
        sf.write(path, utt.audio, SR, subtype="PCM_16")
        paths.setdefault(utt.speaker_id, []).append(path)
    return paths


def run_demo(n_speakers=8, seed=0, n_background=16, log=print):
    """Synthesise, train, enroll, identify; return a report dict (with a ``summary`` text)."""
    say = log or (lambda *a, **k: None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="speaker-id-demo-") as tmp:
        tmp = Path(tmp)
        say(f"synthesising {n_background} background and {n_speakers} enrolled speakers ...")
        # speakers 0..n_speakers-1 enroll; the next n_background only train the UBM
        corpus = make_corpus(n_speakers + n_background, 6, (2.5, 3.5), sr=SR, seed=seed)
        (tmp / "audio").mkdir()
        by_speaker = _write(tmp / "audio", corpus)
        names = sorted(by_speaker)
        targets, background = names[:n_speakers], names[n_speakers:]
        ubm_paths = [p for s in background for p in by_speaker[s]]
        say(f"training a 64-component UBM on {len(ubm_paths)} background recordings ...")
        config = FeatureConfig(sr=SR)
        ubm = train_ubm(ubm_paths, config, n_components=64, max_iter=30, n_jobs=1)
        store = SpeakerStore.create(tmp / "store", ubm, config)
        for name in targets:
            enroll_files(store, name, by_speaker[name][:4])
        say(f"enrolled {len(targets)} speakers on 4 recordings each; identifying 2 held-out recordings each:")
        rows, scores, labels = [], [], []
        for name in targets:
            for path in by_speaker[name][4:]:
                result = identify_file(store, path)
                rows.append((name, path.name, result["speaker"], result["score"]))
                for other, score in result["scores"].items():
                    scores.append(score)
                    labels.append(int(other == name))
                say(f"  {path.name:18s} spoken by {name:7s} -> identified {result['speaker']:7s} "
                    f"(score {result['score']:+.2f}) {'ok' if result['speaker'] == name else 'WRONG'}")
        accuracy = float(np.mean([truth == guess for truth, _, guess, _ in rows]))
        eer, threshold = metrics.eer(scores, labels)
    seconds = time.perf_counter() - started
    summary = (f"identification accuracy {100 * accuracy:.1f} % over {len(rows)} recordings, "
               f"verification EER {100 * eer:.1f} % over {len(scores)} trials (raw scores), {seconds:.1f}s in all")
    return {"n_speakers": n_speakers, "accuracy": accuracy, "eer": float(eer), "eer_threshold": float(threshold),
            "trials": len(scores), "seconds": seconds, "summary": summary}


def run_fsdd_demo(directory, progress=True):
    """The FSDD protocol (see :func:`speaker_id.pipeline.evaluate`)."""
    return evaluate("fsdd", directory, progress=progress)
