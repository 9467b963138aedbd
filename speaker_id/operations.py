"""Enroll, verify and identify audio files against a speaker store.

The operations the ``speaker-id`` command offers, as library calls: each one
goes audio -> features -> statistics -> models -> scores -> decisions with the
stages upstream of it; the CLI only parses arguments and prints what these
return.
"""

from __future__ import annotations

from typing import Optional, Sequence

from . import scoring
from .frontend.extraction import extract_files
from .models.adaptation import speaker_stats
from .store import SpeakerStore


def enroll_files(store: SpeakerStore, name: str, paths: Sequence, *, mode: str = "add", n_jobs: int = 1) -> dict:
    """Enroll (or add audio to) speaker ``name`` from audio files.

    Returns the store's entry for the speaker (frames, utterances, ...).
    Nothing is written if any file fails.
    """
    features = extract_files(list(paths), store.feature_config, n_jobs=n_jobs)
    stats = speaker_stats(store.ubm, features)
    return store.enroll_stats(name, stats, n_utterances=len(features), mode=mode)


def verify_file(store: SpeakerStore, name: str, path, *, threshold: float = 0.0, top_c: Optional[int] = 5) -> dict:
    """Score ``path`` against speaker ``name``; accept when the average LLR reaches ``threshold``."""
    model = store.speaker_model(name)
    features = extract_files([path], store.feature_config, n_jobs=1)[0]
    score = float(scoring.llr(store.ubm, model, features, top_c=top_c))
    return {"speaker": name, "audio": str(path), "score": score, "threshold": float(threshold),
            "accepted": bool(scoring.verify(score, threshold)), "n_frames": int(len(features))}


def identify_file(store: SpeakerStore, path, *, threshold: Optional[float] = None, top_c: Optional[int] = 5) -> dict:
    """The best-scoring enrolled speaker for ``path`` (``None`` below ``threshold``: unknown)."""
    names = store.speakers()
    if not names:
        raise ValueError(f"the store {store.path} has no enrolled speakers; run `speaker-id enroll` first.")
    models = {name: store.speaker_model(name) for name in names}
    features = extract_files([path], store.feature_config, n_jobs=1)[0]
    scores = scoring.SpeakerScorer(store.ubm, models, top_c=top_c).score(features)
    best, best_score = scoring.identify(scores, names, threshold)
    ranking = sorted(zip(names, scores.tolist()), key=lambda item: -item[1])
    return {"audio": str(path), "speaker": best, "score": float(best_score),
            "threshold": threshold, "scores": dict(ranking), "n_frames": int(len(features))}
