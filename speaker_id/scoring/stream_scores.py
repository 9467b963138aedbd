"""Window and whole-stream scores of a stream's speech frames, one class per back end.

:class:`~speaker_id.scoring.stream.StreamScorer` keeps the bookkeeping of
stream time (which ring slot holds which frame, which frames are in the
window); these classes keep what each back end needs of the frames and turn
it into scores:

* :class:`FrameLLRScores` (``gmm``): each frame's log-likelihood ratio
  against every MAP-adapted speaker; a score is the mean over the frames.
* :class:`IvectorScores` (``ivector``): the frames themselves; a score is
  the PLDA (or cosine) score of the i-vector of the frames' zeroth- and
  first-order statistics against each speaker's enrollment, the same
  score ``speaker-id verify`` gives a file of those frames.

Both share one interface: ``names``, ``reset(window_frames)``,
``add(features, slots)`` (new frames, and the ring slots the last of them
go to), ``window(in_window)`` (the scores of the ring's frames selected by
a boolean mask) and ``total()`` (the scores of every frame added), each of
shape (n_speakers,) and NaN without frames.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from streamgmm import accumulate

from .scorer import SpeakerScorer

__all__ = ["FrameLLRScores", "IvectorScores"]


class FrameLLRScores:
    """Average frame log-likelihood ratios of MAP-adapted speaker GMMs.

    Parameters
    ----------
    ubm : OnlineGMM
    speakers : mapping of name to OnlineGMM or ndarray of shape (n_components, n_features)
    top_c : int or None
    dtype : numpy float type
        See :class:`~speaker_id.scoring.SpeakerScorer`.
    """

    def __init__(self, ubm, speakers: Mapping, *, top_c=5, dtype=np.float32):
        self.scorer = SpeakerScorer(ubm, speakers, top_c=top_c, dtype=dtype)
        self.names = self.scorer.names

    def reset(self, window_frames: int) -> None:
        """Forget every frame; hold at most ``window_frames`` in the window."""
        self._ring = np.zeros((window_frames, len(self.names)))
        self._total = np.zeros(len(self.names))
        self._n_total = 0

    def add(self, features: np.ndarray, slots: np.ndarray) -> None:
        """Score new speech frames ``features`` (n_frames, n_features); the last ``len(slots)`` enter the ring."""
        llrs = self.scorer.score_frames(features)
        self._ring[slots] = llrs[llrs.shape[0] - len(slots):]
        self._total += llrs.sum(axis=0)
        self._n_total += features.shape[0]

    def window(self, in_window: np.ndarray) -> np.ndarray:
        """Mean frame LLR of the ring's frames where ``in_window``, shape (n_speakers,)."""
        if not np.any(in_window):
            return np.full(len(self.names), np.nan)
        return self._ring[in_window].mean(axis=0)

    def total(self) -> np.ndarray:
        """Mean frame LLR of every frame added, shape (n_speakers,)."""
        return self._total / self._n_total if self._n_total else np.full(len(self.names), np.nan)


class IvectorScores:
    """PLDA (or cosine) scores of the i-vectors of the window's and the whole stream's frames.

    Parameters
    ----------
    ubm : OnlineGMM
        The UBM the back end was trained on.
    backend : IvectorBackend
    speakers : mapping of name to (vector_sum, count)
        Each speaker's sum of enrollment i-vectors, shape (lda_dim,), and
        their count (:meth:`~speaker_id.models.ivector_backend.IvectorBackend.enrollment`), as in ``speaker-id verify``.

    Notes
    -----
    The window's statistics are recomputed from its frames at each update
    (``window_frames x n_components x n_features`` operations, a few
    milliseconds for a 2 s window at 512 components), and the whole
    stream's are a running sum of :class:`~streamgmm.SufficientStats`, so
    memory stays at one window of frames and one set of statistics.
    """

    def __init__(self, ubm, backend, speakers: Mapping):
        if not speakers:
            raise ValueError("no speakers to score: enroll at least one speaker first")
        self.ubm = ubm
        self.backend = backend
        self.names = sorted(speakers)
        sums, counts = [], []
        for name in self.names:
            try:
                vector_sum, count = speakers[name]
            except (TypeError, ValueError):
                raise TypeError(f"speaker {name!r}: expected (vector_sum, count) of its enrollment i-vectors, "
                                f"got {type(speakers[name]).__name__}") from None
            sums.append(np.asarray(vector_sum, dtype=np.float64))
            counts.append(count)
        self._enrolled = np.array(sums)
        self._counts = np.asarray(counts, dtype=np.float64)

    def reset(self, window_frames: int) -> None:
        """Forget every frame; hold at most ``window_frames`` in the window."""
        self._ring = np.zeros((window_frames, self.ubm.n_features_in_))
        self._total = None
        self._n_added = 0
        self._last = {}  # per kind, (key, scores) of the latest call: updates without new frames reuse it

    def add(self, features: np.ndarray, slots: np.ndarray) -> None:
        """Add new speech frames ``features`` (n_frames, n_features); the last ``len(slots)`` enter the ring."""
        self._ring[slots] = features[features.shape[0] - len(slots):]
        stats = accumulate(self.ubm, features)
        self._total = stats if self._total is None else self._total + stats
        self._n_added += features.shape[0]

    def window(self, in_window: np.ndarray) -> np.ndarray:
        """Scores of the i-vector of the ring's frames where ``in_window``, shape (n_speakers,)."""
        if not np.any(in_window):
            return np.full(len(self.names), np.nan)
        return self._cached("window", (self._n_added, in_window.tobytes()),
                            lambda: accumulate(self.ubm, self._ring[in_window]))

    def total(self) -> np.ndarray:
        """Scores of the i-vector of every frame added, shape (n_speakers,)."""
        if self._total is None:
            return np.full(len(self.names), np.nan)
        return self._cached("total", self._n_added, lambda: self._total)

    def _cached(self, kind, key, stats):
        last = self._last.get(kind)
        if last is None or last[0] != key:
            vector = self.backend.vectors([stats()])
            last = self._last[kind] = key, self.backend.score(self._enrolled, self._counts, vector)[0]
        return last[1]
