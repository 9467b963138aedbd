"""Novelty scoring of a stream against an online density model.

:class:`NoveltyTracker` wraps an :class:`~streamgmm.OnlineGMM` that learns
a stream chunk by chunk (``partial_fit``) and asks of every chunk: how
improbable is it under what the model knew *before* seeing it?

The recipe
----------
For each chunk ``X`` of shape (n_frames, n_features):

1. **NLL before learning.** ``nll = -model.score(X)`` under the parameters
   the model had *before* ``partial_fit(X)``: the mean negative
   log-likelihood per frame (in nats) of data the model has not yet seen,
   an honest one-step-ahead prediction error. (After learning, the model
   has moved toward ``X`` and would flatter it.) When the model learns
   every chunk this costs no extra pass: ``partial_fit`` already computes
   it as ``model.lower_bound_``.
2. **Baseline.** An exponentially weighted mean of past NLLs
   (``baseline``) and an exponentially weighted mean absolute deviation,
   scaled by ``sqrt(pi / 2)`` so that it estimates a standard deviation
   for Gaussian noise (``spread``). Both have half-life
   ``baseline_halflife`` chunks.
3. **Novelty** ``= (nll - baseline) / spread``, and the chunk is flagged
   (``is_novel``) when the novelty exceeds ``threshold``. It is one-sided:
   only chunks *less* probable than usual are novel. A chunk that is more
   concentrated than the model (say the variance fell) is not improbable
   and is not flagged.
4. **Learning.** The model learns the chunk, unless it is flagged and
   ``learn_novel=False``.

The baseline is robust: each NLL enters it clipped to ``baseline +/-
threshold * spread``, so a novel chunk moves the baseline by at most what
an ordinary chunk at the threshold would. One outlier barely moves it; a
lasting change of level (for example a noisier regime whose NLL stays
higher even once the model has adapted) is absorbed geometrically, within
a few half-lives. The price: while it is absorbed the spread grows, and it
takes a few half-lives to shrink back, so a second change soon after the
first must be larger to be flagged.

``learn_novel`` is a trade-off:

* ``True`` (default): the model adapts to a new regime (with forgetting
  ``g``, in about ``3.5 / g`` chunks) and the flags stop once it has. A
  transient fault is learnt too, and the model needs time to forget it.
* ``False``: flagged chunks never reach the model, so bursts of garbage do
  not corrupt it. A genuine new regime is learnt only after the baseline
  has absorbed its higher NLL, so the alarm lasts longer.

Warm-up: no chunk is flagged (``warming_up=True``, ``novelty`` NaN) until
the model is initialised (``partial_fit`` buffers the first ``init_size``
frames; those chunks have NaN ``nll``) *and* ``warmup`` chunks have been
scored into the baseline.

Choosing the settings
---------------------
* ``forgetting`` (of the ``OnlineGMM``): the model remembers about ``1 /
  forgetting`` chunks. Changes that are fast against that window are
  novel; a drift much slower than it is followed without flags. Larger
  values re-adapt sooner after a change (shorter alarms) but give a
  noisier model; keep
  ``chunk_size / forgetting`` frames well above what ``n_components``
  components need (tens of frames per parameter). ``0.05`` to ``0.2`` are
  typical. With ``forgetting=None`` the step decays: the model converges
  to the long-run density and eventually stops adapting.
* Chunk size: the NLL of a chunk averages its frames, so its chunk-to-chunk
  noise falls as ``1 / sqrt(n_frames)``; a change of ``delta`` nats per
  frame is seen when ``delta`` is several times that noise. Detection
  happens at chunk granularity, so smaller chunks react sooner but see
  only larger changes. A few hundred frames is a good start.
* ``threshold``: in spreads (robust standard deviations of the chunk NLL).
  For Gaussian chunk NLLs the nominal one-sided tail probability is
  ``P(Z > 4) = 3.2e-5`` per chunk (``3`` gives ``1.3e-3``). In practice the
  rate is higher, because the baseline is itself estimated and the NLL of a
  chunk is slightly right-skewed: on a stationary three-cluster stream
  (about 4,900 scored chunks of 200 frames) 3.1e-3 at threshold 3 and 2e-4 (one
  flag) at threshold 4.
* ``baseline_halflife``: long enough that the spread is estimated from many
  chunks (the default 20 weighs about 58 chunks), short enough to follow
  the slow changes of level that the model's own re-adaptation causes.

Memory is bounded: the tracker keeps a handful of numbers plus the last
``history_size`` results.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ._validation import check_frames, check_nonnegative_float, check_positive_int

__all__ = ["NoveltyResult", "NoveltyTracker"]

# E|X - mu| = sigma * sqrt(2 / pi) for Gaussian X: this turns a mean absolute
# deviation into a standard-deviation estimate.
_MAD_TO_STD = math.sqrt(math.pi / 2.0)


@dataclass(frozen=True)
class NoveltyResult:
    """What :meth:`NoveltyTracker.update` found out about one chunk.

    Attributes
    ----------
    index : int
        Position of the chunk in the stream (0 for the first chunk passed to
        ``update``, warm-up and empty chunks included).
    n_frames : int
        Rows in the chunk.
    nll : float
        Mean negative log-likelihood per frame of the chunk under the model
        *before* it learnt the chunk, in nats. NaN while the model is not yet
        initialised, and for an empty chunk.
    baseline : float
        Exponentially weighted mean NLL of the earlier chunks (the value the
        chunk is compared with). NaN before any chunk was scored.
    spread : float
        Robust standard deviation of the chunk NLL about the baseline. NaN
        before two chunks were scored.
    novelty : float
        ``(nll - baseline) / spread``. NaN during warm-up.
    is_novel : bool
        ``novelty > threshold``. Never true during warm-up.
    learnt : bool
        Whether the model learnt the chunk (``partial_fit``).
    warming_up : bool
        True until the model is initialised and the baseline is established.
    """

    index: int
    n_frames: int
    nll: float
    baseline: float
    spread: float
    novelty: float
    is_novel: bool
    learnt: bool
    warming_up: bool


def _is_fitted(model):
    return getattr(model, "means_", None) is not None


class NoveltyTracker:
    """Scores each chunk of a stream against an online density model, then lets it learn.

    Parameters
    ----------
    model : OnlineGMM
        The density model, updated in place (not copied). Fitted or not: an
        unfitted model initialises from the first chunks (see warm-up). Use
        ``forgetting`` to let it follow a drifting stream.
    baseline_halflife : float, default=20
        Half-life, in chunks, of the exponentially weighted NLL mean and
        mean absolute deviation.
    threshold : float, default=4.0
        A chunk is novel when its NLL exceeds the baseline by more than this
        many spreads (robust standard deviations).
    warmup : int, default=10
        Chunks scored by the initialised model into the baseline before any
        chunk may be flagged (at least 2: the spread needs two).
    learn_novel : bool, default=True
        Whether the model learns flagged chunks. ``True`` adapts to a new
        regime; ``False`` keeps outliers out of the model (see the module
        notes for the trade-off). Chunks that are not flagged are always
        learnt.
    history_size : int, default=1000
        The last results kept in :attr:`history_` (0 keeps none). Memory
        does not grow with the stream.

    Attributes
    ----------
    n_chunks_ : int
        Chunks passed to ``update`` so far.
    n_scored_ : int
        Chunks whose NLL entered the baseline.
    n_novel_ : int
        Chunks flagged so far.
    baseline_ : float
        Current baseline NLL per frame (NaN before the first scored chunk).
    spread_ : float
        Current spread (NaN before the second scored chunk).
    history_ : list of NoveltyResult
        The last ``history_size`` results, oldest first.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import NoveltyTracker, OnlineGMM
    >>> rng = np.random.default_rng(0)
    >>> model = OnlineGMM(2, covariance_type="diag", forgetting=0.1, random_state=0)
    >>> tracker = NoveltyTracker(model, threshold=4.0)
    >>> for t in range(60):
    ...     shift = 0.0 if t < 40 else 2.0                    # the mean moves at chunk 40
    ...     result = tracker.update(rng.normal(shift, 1.0, (200, 3)))
    >>> flagged = [r.index for r in tracker.history_ if r.is_novel]
    >>> flagged[0], len(flagged) < 10                         # seen at once, then learnt
    (40, True)
    >>> result.n_frames, result.warming_up, result.is_novel
    (200, False, False)
    """

    def __init__(self, model, *, baseline_halflife=20.0, threshold=4.0, warmup=10,
                 learn_novel=True, history_size=1000):
        for method in ("partial_fit", "score"):
            if not callable(getattr(model, method, None)):
                raise ValueError(
                    f"model must be an online density estimator such as streamgmm.OnlineGMM "
                    f"(with partial_fit and score), got {type(model).__name__} without {method}."
                )
        self.model = model
        self.baseline_halflife = check_nonnegative_float(
            baseline_halflife, "baseline_halflife", strictly_positive=True
        )
        self.threshold = check_nonnegative_float(threshold, "threshold", strictly_positive=True)
        self.warmup = check_positive_int(warmup, "warmup", minimum=2)
        if not isinstance(learn_novel, (bool, np.bool_)):
            raise ValueError(f"learn_novel must be True or False, got {learn_novel!r}.")
        self.learn_novel = bool(learn_novel)
        self.history_size = check_positive_int(history_size, "history_size", minimum=0)
        self._alpha = 1.0 - 0.5 ** (1.0 / self.baseline_halflife)
        self._history = deque(maxlen=self.history_size)
        self._n_features = None
        self.n_chunks_ = 0
        self.n_scored_ = 0
        self.n_novel_ = 0
        self.baseline_ = math.nan
        self._mad = math.nan

    # ------------------------------------------------------------- state
    @property
    def spread_(self):
        """Robust standard deviation of the chunk NLL (NaN before two scored chunks)."""
        if not self.n_scored_ >= 2:
            return math.nan
        # A floor far below any real chunk-to-chunk noise, so a constant
        # stream's rounding differences are not standardised into novelty.
        return max(_MAD_TO_STD * self._mad, 1e-9 * max(1.0, abs(self.baseline_)))

    @property
    def history_(self):
        """The last ``history_size`` results, oldest first (a new list)."""
        return list(self._history)

    @property
    def warming_up(self):
        """True until the model is initialised and ``warmup`` chunks are in the baseline."""
        return not (_is_fitted(self.model) and self.n_scored_ >= self.warmup)

    def __repr__(self):
        return (
            f"NoveltyTracker({self.model!r}, baseline_halflife={self.baseline_halflife:g}, "
            f"threshold={self.threshold:g}, warmup={self.warmup}, learn_novel={self.learn_novel})"
        )

    # ------------------------------------------------------------ update
    def _check_chunk(self, chunk):
        name = f"chunk {self.n_chunks_}"
        expected = self.model.n_features_in_ if _is_fitted(self.model) else self._n_features
        if not isinstance(chunk, np.ndarray):
            try:
                chunk = np.asarray(chunk, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} could not be read as a numeric array: {exc}") from None
        if chunk.ndim == 2 and chunk.shape[0] == 0:
            if expected is not None and chunk.shape[1] != expected:
                raise ValueError(
                    f"{name} is empty with {chunk.shape[1]} columns but the stream has {expected} "
                    f"features; pass an empty chunk as an array of shape (0, {expected})."
                )
            return chunk
        try:
            return check_frames(chunk, n_features=expected, name=name)
        except ValueError as exc:
            raise ValueError(f"{exc} The tracker and its model are unchanged.") from None

    def update(self, chunk):
        """Score ``chunk`` against the model, update the baseline, then let the model learn it.

        Parameters
        ----------
        chunk : array-like of shape (n_frames, n_features)
            Frames as rows. ``n_frames`` may be 0: the chunk is counted and
            reported (NaN ``nll``, not novel, not learnt) and nothing else
            changes.

        Returns
        -------
        NoveltyResult

        Raises
        ------
        ValueError
            If the chunk is not 2-D, has the wrong number of features, holds
            NaN or inf or values beyond the scale limit (``1e100``, see
            :mod:`streamgmm._validation`), or the model refuses to learn it
            (an :class:`~streamgmm.OnlineGMM` whose update would overflow).
            The tracker and the model are then unchanged, and the stream can
            go on with the next chunk.
        """
        X = self._check_chunk(chunk)
        index, n_frames = self.n_chunks_, X.shape[0]
        baseline, spread = self.baseline_, self.spread_
        if n_frames == 0:
            return self._record(NoveltyResult(
                index, 0, math.nan, baseline, spread, math.nan, False, False, self.warming_up,
            ))
        was_fitted = _is_fitted(self.model)
        scoring = was_fitted and self.n_scored_ >= self.warmup
        learnt = False
        if not was_fitted:
            self.model.partial_fit(X)  # buffered, or initialises from the buffer
            nll, learnt = math.nan, True
        elif self.learn_novel or not scoring:
            # partial_fit reports the chunk's log-likelihood before it learnt it
            self.model.partial_fit(X)
            nll, learnt = -float(self.model.lower_bound_), True
        else:
            nll = -float(self.model.score(X))
        novelty = (nll - baseline) / spread if scoring else math.nan
        is_novel = bool(scoring and novelty > self.threshold)
        if was_fitted and not learnt and not is_novel:
            self.model.partial_fit(X)
            learnt = True
        if was_fitted:
            self._update_baseline(nll, clip=scoring)
        self._n_features = X.shape[1]
        self.n_novel_ += is_novel
        return self._record(NoveltyResult(
            index, n_frames, nll, baseline, spread, novelty, is_novel, learnt, not scoring,
        ))

    def _update_baseline(self, nll, *, clip):
        """Fold one chunk NLL into the weighted mean and mean absolute deviation.

        Until ``1 / n`` falls below the exponential weight, the weights are
        ``1 / n`` (a plain running mean), so the first chunks are not
        dwarfed by whichever came first.
        """
        n = self.n_scored_
        if n == 0:
            self.baseline_, self._mad = nll, 0.0
        else:
            if clip:
                reach = self.threshold * self.spread_
                nll = min(max(nll, self.baseline_ - reach), self.baseline_ + reach)
            deviation = abs(nll - self.baseline_)
            self.baseline_ += max(self._alpha, 1.0 / (n + 1)) * (nll - self.baseline_)
            self._mad += max(self._alpha, 1.0 / n) * (deviation - self._mad)
        self.n_scored_ = n + 1

    def _record(self, result):
        self.n_chunks_ += 1
        self._history.append(result)
        return result
