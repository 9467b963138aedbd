"""Who is speaking now: running speaker scores and decisions over an audio stream.

:class:`StreamScorer` pushes audio through a
:class:`~speaker_id.frontend.streaming.StreamingFeatureExtractor`, scores the
new speech frames against all enrolled speakers with the store's back end
(:mod:`speaker_id.scoring.stream_scores`: ``gmm``, every frame's top-C
log-likelihood ratio against all speakers at once, so the cost per frame
grows slowly with the number of speakers; ``ivector``, the i-vector of the
frames' statistics against each speaker's), and after each push reports a
:class:`StreamUpdate`:

* ``window_scores``: per speaker, the score of the speech frames of the last
  ``window_s`` seconds of the stream (what is being said now): the average
  per-frame log-likelihood ratio (``gmm``) or the PLDA or cosine score of
  their i-vector (``ivector``);
* ``total_scores``: the same over every speech frame since the start (the
  batch score of the whole stream so far);
* the decision: ``"speaker"`` (the best window score reaches ``threshold``),
  ``"unknown"`` (it does not) or ``"silence"`` (fewer than ``min_speech_s``
  seconds of speech in the window); a decided speaker keeps the decision
  while their score stays within ``switch_margin`` of the best;
* ``events``: a :class:`DecisionEvent` whenever the decision changes, stamped
  with the stream time it refers to.

Decisions are taken on a fixed grid of stream time, every
``decision_interval_s`` (100 ms by default, rounded to whole frames), not
once per push, so the same audio gives the same events at the same times
whatever the size of the pieces it is pushed in: a push that covers several
grid points takes a decision at each of them, on exactly the frames that a
stream read in small pieces would have had by then (the frames the CMVN
warm-up holds back count from the moment they are released); a push that
covers none reports the latest decision again. The window and its scores in
an update are those of its latest decision.

Stream time ``now`` is the end of the latest frame the voice activity
detection has decided on; it trails the audio pushed by the delta
look-ahead (40 ms by default) and less than one frame. A decision at grid
time ``t`` scores the speech frames that end in ``(t - window_s, t]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from ..frontend.config import FeatureConfig
from ..frontend.streaming import StreamingFeatureExtractor
from .stream_scores import FrameLLRScores, IvectorScores

__all__ = ["DecisionEvent", "StreamUpdate", "StreamScorer"]

STATES = ("silence", "unknown", "speaker")


@dataclass(frozen=True)
class DecisionEvent:
    """The decision changed.

    Attributes
    ----------
    time : float
        Stream time in seconds the new decision refers to (``now``).
    state : {"silence", "unknown", "speaker"}
        The new state.
    speaker : str or None
        The speaker now decided on (``None`` unless ``state == "speaker"``).
    previous : str or None
        The speaker decided on before (``None`` if it was not a speaker).
    previous_state : {"silence", "unknown", "speaker"}
    score : float or None
        The best window score at the change (``None`` in silence).
    """

    time: float
    state: str
    speaker: Optional[str]
    previous: Optional[str]
    previous_state: str
    score: Optional[float]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line of text, e.g. ``'3.20 s: unknown -> alice (+0.512)'``."""
        def label(state, name):
            return name if state == "speaker" else state

        score = "" if self.score is None else f" ({self.score:+.3f})"
        return f"{self.time:.2f} s: {label(self.previous_state, self.previous)} -> {label(self.state, self.speaker)}{score}"


@dataclass(frozen=True)
class StreamUpdate:
    """What one push changed.

    Attributes
    ----------
    time : float
        Stream time ``now`` in seconds (see the module notes).
    audio_time : float
        Seconds of audio pushed so far.
    n_frames : int
        Speech frames scored in this update.
    window_frames, total_frames : int
        Speech frames in the latest decision's window, and since the start.
    window_scores, total_scores : np.ndarray, shape (n_speakers,)
        Score per speaker (the back end's: average per-frame LLR or i-vector
        score), in the order of ``names``; NaN when there are no frames.
    state : {"silence", "unknown", "speaker"}
    speaker : str or None
        The decided speaker when ``state == "speaker"``.
    score : float or None
        Best window score (``None`` in silence).
    events : tuple of DecisionEvent
        The decision's changes at the grid points this update covered, in order.
    names : list of str
        Speaker names, in score order.
    """

    time: float
    audio_time: float
    n_frames: int
    window_frames: int
    total_frames: int
    window_scores: np.ndarray = field(repr=False)
    total_scores: np.ndarray = field(repr=False)
    state: str
    speaker: Optional[str]
    score: Optional[float]
    events: tuple
    names: list = field(repr=False)

    def ranking(self, n: int = 5, by: str = "window") -> list:
        """The ``n`` best speakers: ``[(name, window score, total score), ...]``.

        Parameters
        ----------
        n : int, default 5
        by : {"window", "total"}, default "window"
            The score to rank by; speakers without a score (NaN) come last.
        """
        if by not in ("window", "total"):
            raise ValueError(f"by must be 'window' or 'total', got {by!r}")
        key = self.window_scores if by == "window" else self.total_scores
        order = np.argsort(-np.nan_to_num(key, nan=-np.inf), kind="stable")
        return [(self.names[i], _number(self.window_scores[i]), _number(self.total_scores[i])) for i in order[:n]]

    def to_dict(self, top: int = 5) -> dict:
        """JSON-ready form, with the ``top`` best speakers' scores (NaN becomes ``None``)."""
        return {
            "time": round(self.time, 4), "audio_time": round(self.audio_time, 4),
            "state": self.state, "speaker": self.speaker, "score": self.score,
            "frames": self.n_frames, "window_frames": self.window_frames, "total_frames": self.total_frames,
            "top": [{"speaker": name, "window": w, "total": t} for name, w, t in self.ranking(top)],
            "events": [e.to_dict() for e in self.events],
        }

    def describe(self, top: int = 2) -> str:
        """One line of text for a terminal."""
        head = f"{self.time:8.2f} s  "
        if self.state == "silence":
            return head + f"silence     (speech in window {self.window_frames} frames)"
        who = self.speaker if self.state == "speaker" else "unknown"
        best = ", ".join(f"{name} {w:+.3f}" for name, w, _ in self.ranking(top))
        return head + f"{who:<11s} {self.score:+.3f}  window: {best}"


def _number(value):
    value = float(value)
    return None if np.isnan(value) else value


class StreamScorer:
    """Score enrolled speakers on an audio stream as it arrives.

    Parameters
    ----------
    ubm : OnlineGMM
        The UBM the speakers were adapted from (diagonal covariances).
    speakers : mapping of name to OnlineGMM, ndarray of shape (n_components, n_features) or (vector_sum, count)
        Enrolled speakers: MAP-adapted models or their means (see
        :class:`~speaker_id.scoring.SpeakerScorer`), or, with
        ``ivector_backend``, each speaker's sum of enrollment i-vectors and
        their count (:meth:`~speaker_id.models.ivector_backend.IvectorBackend.enrollment`).
    feature_config : FeatureConfig
        The front end the models were trained with.
    ivector_backend : IvectorBackend, optional
        Score i-vectors of the window's and the stream's statistics with it
        instead of frame log-likelihood ratios; its scores are PLDA
        log-likelihood ratios (or cosine similarities), so ``threshold`` and
        ``switch_margin`` are on that scale.
    sr : int, optional
        Sample rate of the pushed audio; defaults to ``feature_config.sr``.
    resample : bool, default True
        Resample audio at another rate (True) or refuse it (False).
    window_s : float, default 2.0
        Length of the sliding window, in seconds of stream time. Shorter
        follows turns faster but decides on less speech: in conversations
        built from FSDD and librispeech-mini test utterances
        (``scripts/stream_vs_offline.py``) 2 s named the right speaker most
        often (65 % and 86 % of the updates in the turns, against 58 % and
        84 % with 3 s and 62 % and 83 % with 1.5 s).
    min_speech_s : float, default 0.5
        Speech needed in the window before any decision ("silence" below);
        at most ``window_s``.
    decision_interval_s : float, default 0.1
        Time between decisions, in seconds of stream time (rounded to a
        whole number of frames, at least one).
    threshold : float, default 0.0
        A speaker is decided when their window score reaches it; otherwise
        "unknown". Use ``-inf`` for closed-set identification.
    switch_margin : float, default 0.5
        Hysteresis: while the decided speaker's window score stays within
        this much of the best one (and reaches ``threshold``), the decision
        stays with them, so two close scores do not make the decision flicker.
        0 always follows the best score. In the conversations of
        ``scripts/stream_vs_offline.py`` (2 s window) 0.5 cut the changes of
        decision per speaker turn from 2.10 to 1.26 (librispeech-mini) and
        from 1.15 to 1.03 (FSDD) for 0.6 and 1.6 points fewer updates named
        right.
    top_c : int or None, default 5
        Components per frame (``None``: exact scoring, slower); ``gmm`` only.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        Precision of the stacked speaker products (float32 is about twice
        as fast; scores differ by about 1e-6); ``gmm`` only.
    **extractor_options
        ``vad_memory_s``, ``cmvn_window_s``, ``cmvn_min_frames`` of
        :class:`~speaker_id.frontend.streaming.StreamingFeatureExtractor`.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM
    >>> from speaker_id.frontend import FeatureConfig, extract
    >>> from speaker_id.frontend.normalization import fit_prior
    >>> from speaker_id.demo.synth import make_speakers, synthesize
    >>> from speaker_id.models.adaptation import map_adapt, speaker_stats
    >>> cfg = FeatureConfig(sr=8000)
    >>> voices = make_speakers(3, seed=1)
    >>> audio = {name: [synthesize(v, 2.0, sr=8000, seed=i) for i in range(3)] for name, v in voices.items()}
    >>> cfg = fit_prior(cfg, [extract(y, cfg) for ys in audio.values() for y in ys])  # as train-ubm does
    >>> feats = {name: [extract(y, cfg) for y in ys] for name, ys in audio.items()}
    >>> ubm = OnlineGMM(16, covariance_type="diag", random_state=0).fit(
    ...     np.concatenate([x for xs in feats.values() for x in xs]))
    >>> models = {name: map_adapt(ubm, speaker_stats(ubm, xs[:2])) for name, xs in feats.items()}
    >>> scorer = StreamScorer(ubm, models, cfg, min_speech_s=0.3, threshold=-2.0)
    >>> updates = [scorer.push(y) for y in np.array_split(audio["spk001"][2], 20)]
    >>> updates[-1].speaker, [e.speaker for u in updates for e in u.events]
    ('spk001', ['spk001'])
    """

    def __init__(
        self,
        ubm,
        speakers: Mapping,
        feature_config: FeatureConfig,
        *,
        ivector_backend=None,
        sr: Optional[int] = None,
        resample: bool = True,
        window_s: float = 2.0,
        min_speech_s: float = 0.5,
        decision_interval_s: float = 0.1,
        threshold: float = 0.0,
        switch_margin: float = 0.5,
        top_c: Optional[int] = 5,
        dtype=np.float32,
        **extractor_options,
    ):
        self.extractor = StreamingFeatureExtractor(feature_config, sr=sr, resample=resample, **extractor_options)
        if ivector_backend is None:
            self.speaker_scores = FrameLLRScores(ubm, speakers, top_c=top_c, dtype=dtype)
        else:
            self.speaker_scores = IvectorScores(ubm, ivector_backend, speakers)
        if feature_config.n_features != ubm.n_features_in_:
            raise ValueError(
                f"the feature configuration gives {feature_config.n_features} features but the UBM "
                f"expects {ubm.n_features_in_}; use the store's own feature configuration"
            )
        for name, value in (("window_s", window_s), ("min_speech_s", min_speech_s),
                            ("decision_interval_s", decision_interval_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
        if window_s <= 0 or decision_interval_s <= 0:
            raise ValueError(f"window_s and decision_interval_s must be positive, got {window_s!r} and "
                             f"{decision_interval_s!r}")
        if min_speech_s > window_s:
            raise ValueError(f"min_speech_s ({min_speech_s}) is longer than window_s ({window_s}): the window "
                             "could never hold enough speech to decide; lower min_speech_s or widen the window")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or np.isnan(threshold):
            raise ValueError(f"threshold must be a number (or -inf for closed-set decisions), got {threshold!r}")
        if isinstance(switch_margin, bool) or not isinstance(switch_margin, (int, float)) \
                or not np.isfinite(switch_margin) or switch_margin < 0:
            raise ValueError(f"switch_margin must be a non-negative number, got {switch_margin!r}")
        self.switch_margin = float(switch_margin)
        self.window_s = float(window_s)
        self.min_speech_s = float(min_speech_s)
        self.threshold = float(threshold)
        cfg = feature_config
        hop_s = cfg.hop_length / cfg.sr
        self._window_frames = max(1, int(round(self.window_s / hop_s)))
        self._index = {name: i for i, name in enumerate(self.speaker_scores.names)}
        self._min_frames = int(np.ceil(self.min_speech_s / hop_s - 1e-9))
        self.decision_interval_s = float(decision_interval_s)
        self._step = max(1, int(round(self.decision_interval_s / hop_s)))
        # the first speech frames the CMVN holds back are released together (see _availability)
        self._warmup = self.extractor.cmvn_min_frames if cfg.cmvn or cfg.prior_mean is not None else 0
        # ... and so are the frames the VAD warm-up holds (decided when its last frame has arrived)
        self._vad_warm_last = self.extractor.vad_warmup_frames - 1 if cfg.vad else -1
        self.reset()

    @classmethod
    def from_store(cls, store, **options) -> "StreamScorer":
        """A scorer over every speaker enrolled in a :class:`~speaker_id.store.SpeakerStore`.

        Parameters
        ----------
        store : SpeakerStore
        **options
            As for the constructor (``sr``, ``window_s``, ``threshold``, ...).

        The store's back end scores: MAP-adapted models for ``gmm``, the
        i-vector back end and each speaker's sum of enrollment i-vectors for
        ``ivector``.

        Raises
        ------
        ValueError
            If the store has no enrolled speaker.
        """
        names = store.speakers()
        if not names:
            raise ValueError(f"the store {store.path} has no enrolled speakers; run `speaker-id enroll` first")
        if store.backend == "ivector":
            enrolled = {name: store.speaker_enrollment(name) for name in names}
            return cls(store.ubm, enrolled, store.feature_config, ivector_backend=store.ivector_backend, **options)
        models = {name: store.speaker_model(name) for name in names}
        return cls(store.ubm, models, store.feature_config, **options)

    @property
    def names(self) -> list:
        """Speaker names, in score order."""
        return self.speaker_scores.names

    def reset(self) -> None:
        """Start a new stream (the models are kept)."""
        self.extractor.reset()
        self.speaker_scores.reset(self._window_frames)
        self._ring_index = np.full(self._window_frames, -1, dtype=np.int64)  # stream frame index; -1 empty
        self._total_frames = 0
        self._state, self._speaker = "silence", None
        self._next_decision = self._step - 1  # stream frame index of the next grid point
        self._decided = None  # (window_scores, window_frames, score) of the latest decision

    def push(self, samples) -> StreamUpdate:
        """Add audio; score the frames it completes; report the decision.

        Parameters
        ----------
        samples : array-like, shape (n_samples,)
            Mono float samples in [-1, 1] at the stream's rate; any length.

        Returns
        -------
        StreamUpdate
        """
        return self._update(self.extractor.push(samples))

    def flush(self) -> StreamUpdate:
        """End of stream: score the frames held for look-ahead, decide at the end, and report."""
        return self._update(self.extractor.flush(), final=True)

    def _availability(self, index):
        """Stream frame index from which each new frame counts in decisions.

        A frame counts from its own index, except the first ``cmvn_min_frames``
        speech frames, which the normalisation's warm-up releases together, so
        they count from the index of the last of them, and the frames of the
        VAD's warm-up, which count from its last frame, whatever the chunking.
        """
        available = index.copy()
        n_warm = min(max(self._warmup - self._total_frames, 0), len(index))
        if n_warm:
            available[:n_warm] = index[n_warm - 1]
        return np.maximum(available, self._vad_warm_last)

    def _add(self, features, index):
        if not features.shape[0]:
            return
        keep = min(features.shape[0], self._window_frames)
        slots = (self._total_frames + np.arange(features.shape[0] - keep, features.shape[0])) % self._window_frames
        self.speaker_scores.add(features, slots)
        self._ring_index[slots] = index[-keep:]
        self._total_frames += features.shape[0]

    def _update(self, block, final=False) -> StreamUpdate:
        features, index = block
        available = self._availability(index)
        latest = self.extractor.n_decided_ - 1  # the last frame the VAD has decided on
        points = list(range(self._next_decision, latest + 1, self._step))
        if final and latest > (points[-1] if points else self._next_decision - self._step):
            points.append(latest)  # the end of the stream is decided on too
        events, start = [], 0
        for point in points:
            stop = start + int(np.searchsorted(available[start:], point, side="right"))
            self._add(features[start:stop], index[start:stop])
            start = stop
            event = self._decide(point)
            if event is not None:
                events.append(event)
        self._add(features[start:], index[start:])
        if points:
            self._next_decision = points[-1] + self._step
        now = float(self.extractor.frame_time(latest)) if latest >= 0 else 0.0
        n_speakers = len(self.names)
        window_scores, n_window, score = self._decided or (np.full(n_speakers, np.nan), 0, None)
        return StreamUpdate(
            time=now, audio_time=self.extractor.time_s, n_frames=int(features.shape[0]),
            window_frames=n_window, total_frames=self._total_frames,
            window_scores=window_scores, total_scores=self.speaker_scores.total(),
            state=self._state, speaker=self._speaker, score=score, events=tuple(events), names=self.names,
        )

    def _decide(self, point):
        """Decide on the window ending with stream frame ``point``; the event if the decision changed."""
        in_window = (self._ring_index > point - self._window_frames) & (self._ring_index >= 0)
        n_window = int(np.count_nonzero(in_window))
        window_scores = self.speaker_scores.window(in_window)
        if n_window < max(self._min_frames, 1):
            state, speaker, score = "silence", None, None
        else:
            best = int(np.argmax(window_scores))
            if self._state == "speaker":
                current = self._index[self._speaker]
                if window_scores[current] >= max(window_scores[best] - self.switch_margin, self.threshold):
                    best = current
            score = float(window_scores[best])
            if score >= self.threshold:
                state, speaker = "speaker", self.names[best]
            else:
                state, speaker = "unknown", None
        self._decided = window_scores, n_window, score
        if (state, speaker) == (self._state, self._speaker):
            return None
        event = DecisionEvent(float(self.extractor.frame_time(point)), state, speaker, self._speaker, self._state,
                              score)
        self._state, self._speaker = state, speaker
        return event
