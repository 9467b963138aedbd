"""How a UBM's EM passes are spent: the schedules :func:`speaker_id.models.ubm.fit_ubm` can follow.

``"full"``
    The model of ``n_components`` initialised by k-means on a reservoir
    sample, then batch EM over all the frames until the mean log-likelihood
    per frame changes by less than ``tol`` or ``max_iter`` passes.
``"grow"``
    Kaldi-style mixture growth (``train_diag_ubm.sh``): a small mixture
    (``n_components / start_fraction``) is initialised by k-means on a
    random subsample of the frames, EM runs a few iterations on the
    subsample at each size, then every component (the heaviest ones, at the
    last step) is split in two, until the mixture has ``n_components``; a
    few passes of EM over all the frames finish it.

Every EM iteration, on the subsample or on all the frames, is a call of
:meth:`streamgmm.OnlineGMM.fit` (the growth passes its parameters on with
``weights_init`` / ``means_init`` / ``precisions_init``; the last stage goes
on with ``warm_start``), so whatever ``fit`` learns to do (distributed
accumulation, float32 E-steps) the schedule does too.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from streamgmm import ConvergenceWarning, OnlineGMM
from streamgmm.init import UniformSample

SCHEDULES = ("full", "grow")
# measured with scripts/ubm_schedule_experiment.py (README, "UBM schedule")
DEFAULT_SCHEDULE = "grow"


@dataclass(frozen=True)
class UbmSchedule:
    """The EM schedule of a UBM.

    Parameters
    ----------
    kind : {"full", "grow"}
        See the module documentation.
    max_iter : int, default=50
        ``"full"``: passes over all the frames at most. ``"grow"``: passes at
        the full size over all the frames at most (``final_iterations``
        unless ``max_iter`` is smaller).
    tol : float, default=1e-3
        Stop when the mean log-likelihood per frame changes by less
        (absolute, as :class:`streamgmm.OnlineGMM`'s ``tol``).
    rel_tol : float, optional
        Stop instead when it changes by less than ``rel_tol`` times its
        magnitude (the magnitude is taken from the first pass, or, for
        ``"grow"``, from the subsample). Overrides ``tol``.
    start_fraction : int, default=8
        ``"grow"``: the first mixture has ``max(1, n_components // start_fraction)``
        components.
    iterations_per_size : int, default=4
        ``"grow"``: EM iterations on the subsample at each size below
        ``n_components``.
    subsample_iterations_at_full_size : int, default=8
        ``"grow"``: EM iterations on the subsample once the mixture has
        ``n_components``, before the passes over all the frames.
    subsample_frames : int or None, default=None
        ``"grow"``: frames of the subsample; default
        ``subsample_per_component * n_components``. ``0`` means all the
        frames (read into memory).
    subsample_per_component : int, default=200
    final_iterations : int, default=8
        ``"grow"``: EM passes over all the frames at the full size.
    perturbation : float, default=0.2
        ``"grow"``: a split component's two halves move their means apart by
        ``+-perturbation`` standard deviations in every dimension (random
        signs).
    """

    kind: str = "grow"
    max_iter: int = 50
    tol: float = 1e-3
    rel_tol: Optional[float] = None
    start_fraction: int = 8
    iterations_per_size: int = 4
    subsample_iterations_at_full_size: int = 8
    subsample_frames: Optional[int] = None
    subsample_per_component: int = 200
    final_iterations: int = 8
    perturbation: float = 0.2

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.kind!r}.")
        for name in ("max_iter", "iterations_per_size", "subsample_iterations_at_full_size",
                     "final_iterations", "subsample_per_component"):
            _check_int(getattr(self, name), name, minimum=0)
        _check_int(self.start_fraction, "start_fraction", minimum=1)
        if self.subsample_frames is not None:
            _check_int(self.subsample_frames, "subsample_frames", minimum=0)
        for name in ("tol", "perturbation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if self.rel_tol is not None and (isinstance(self.rel_tol, bool) or not isinstance(
                self.rel_tol, (int, float, np.floating)) or not self.rel_tol >= 0):
            raise ValueError(f"rel_tol must be a number >= 0 or None, got {self.rel_tol!r}.")
        if self.kind == "grow" and self.final_iterations < 1 and self.subsample_frames != 0:
            raise ValueError("a 'grow' schedule needs final_iterations >= 1 (passes over all the frames).")


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def as_schedule(schedule, max_iter=50, tol=1e-3) -> UbmSchedule:
    """A :class:`UbmSchedule` from a name (``"full"``, ``"grow"``) or a schedule.

    ``max_iter`` and ``tol`` fill in a named schedule.
    """
    if isinstance(schedule, UbmSchedule):
        return schedule
    if isinstance(schedule, str) and schedule in SCHEDULES:
        return UbmSchedule(kind=schedule, max_iter=max_iter, tol=tol)
    raise ValueError(f"schedule must be one of {SCHEDULES} or a UbmSchedule, got {schedule!r}.")


@dataclass
class StageLog:
    """One stage of a schedule: ``components``, ``frames`` it learnt from, EM ``iterations``, ``seconds``."""

    components: int
    frames: int
    iterations: int
    seconds: float
    on: str  # "subsample" or "all"


@dataclass
class ScheduleLog:
    """What a schedule did, stage by stage (``fit_ubm`` sets it as ``ubm.schedule_log_``)."""

    schedule: UbmSchedule
    n_frames: int
    stages: list = field(default_factory=list)

    @property
    def full_passes(self) -> int:
        """EM passes over all the frames (E-steps of the whole corpus)."""
        return sum(s.iterations for s in self.stages if s.on == "all")

    @property
    def equivalent_passes(self) -> float:
        """All E-step work in passes of the final model over all the frames (frames x components)."""
        k = max(s.components for s in self.stages)
        return sum(s.iterations * s.frames * s.components for s in self.stages) / (self.n_frames * k)


class LocalFrames:
    """All the training frames, in this process: a callable returning a fresh iterable of chunks per pass."""

    def __init__(self, chunks: Callable[[], Iterable[np.ndarray]]):
        self.chunks = chunks

    def fit(self, model):
        """``model.fit`` over all the frames (one pass per EM iteration)."""
        return _fit(model, self.chunks)

    def sample(self, n_frames, seed):
        """:class:`~streamgmm.init.UniformSample` of ``n_frames`` frames (all of them, if fewer), in one pass."""
        sample = UniformSample(n_frames, seed)
        for chunk in self.chunks():
            sample.add(np.asarray(chunk))
        return sample.sample()


class ClusterFrames:
    """All the training frames, kept on the workers of a Dask cluster (futures of lists of arrays, in order).

    The same passes as :class:`LocalFrames`, run where the frames are, with
    the same results (:mod:`streamgmm.distributed`).
    """

    def __init__(self, futures, client):
        self.futures, self.client = futures, client

    def fit(self, model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(self.futures, client=self.client)

    def sample(self, n_frames, seed):
        from streamgmm.distributed import ClusterPasses

        return ClusterPasses(self.client, self.futures).scan(n_frames, seed)[0]


def subsample(frames, n_frames: int, rng) -> np.ndarray:
    """A uniform random sample of ``n_frames`` of the training frames (all of them, if fewer), in one pass.

    The rows are drawn by hashed row index, so the sample is the same
    however the frames are cut into chunks or spread over workers.

    Parameters
    ----------
    frames : LocalFrames or ClusterFrames
    n_frames : int
    rng : numpy.random.Generator
        Draws the sample's seed.
    """
    return np.array(frames.sample(n_frames, int(rng.integers(0, 2**64, dtype=np.uint64))))


def split_components(weights, means, covariances, n_target, perturbation, rng):
    """Split the heaviest components in two until there are ``n_target`` (at most doubling).

    Diagonal covariances. Each half keeps the covariance and half the
    weight; the means move apart by ``+-perturbation`` standard deviations
    in every dimension, with random signs.

    Returns
    -------
    weights, means, covariances : ndarray
        ``min(n_target, 2 * len(weights))`` components, the split ones' second
        halves appended at the end.
    """
    k = len(weights)
    n_split = min(k, n_target - k)
    order = np.argsort(-weights, kind="stable")[:n_split]
    offset = perturbation * rng.choice([-1.0, 1.0], size=means[order].shape) * np.sqrt(covariances[order])
    means = np.concatenate([means, means[order] + offset])
    means[order] -= offset
    weights = weights.copy()
    weights[order] *= 0.5
    weights = np.concatenate([weights, weights[order]])
    covariances = np.concatenate([covariances, covariances[order]])
    return weights / weights.sum(), means, covariances


def _fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def _tol(schedule, lower_bound):
    if schedule.rel_tol is None:
        return schedule.tol
    return schedule.rel_tol * abs(lower_bound)


def fit_full(frames, n_components, schedule, *, covariance_type, init_params, init_size, random_state,
             log: ScheduleLog) -> OnlineGMM:
    """The ``"full"`` schedule: initialise on a reservoir sample, EM over all the frames."""
    started = time.perf_counter()
    ubm = OnlineGMM(n_components, covariance_type=covariance_type, max_iter=schedule.max_iter, tol=schedule.tol,
                    init_params=init_params, random_state=random_state, init_size=init_size)
    if schedule.rel_tol is None or schedule.max_iter < 2:
        frames.fit(ubm)
        log.stages.append(StageLog(n_components, log.n_frames, ubm.n_iter_, time.perf_counter() - started, "all"))
        return ubm
    ubm.set_params(max_iter=1)
    frames.fit(ubm)
    first = ubm.n_iter_
    ubm.set_params(max_iter=schedule.max_iter - 1, warm_start=True, tol=_tol(schedule, ubm.lower_bound_))
    frames.fit(ubm)
    ubm.set_params(max_iter=schedule.max_iter, warm_start=False, tol=schedule.tol)
    log.stages.append(StageLog(n_components, log.n_frames, first + ubm.n_iter_, time.perf_counter() - started, "all"))
    return ubm


def fit_grow(frames, n_components, schedule, *, covariance_type, random_state, log: ScheduleLog) -> OnlineGMM:
    """The ``"grow"`` schedule (diagonal covariances): see the module documentation."""
    if covariance_type != "diag":
        raise ValueError(f"the 'grow' schedule trains diagonal UBMs; use schedule='full' for {covariance_type!r}.")
    rng = np.random.default_rng(random_state)
    n_sub = schedule.subsample_frames
    if n_sub is None:
        n_sub = schedule.subsample_per_component * n_components
    started = time.perf_counter()
    sample = subsample(frames, n_sub if n_sub else log.n_frames, rng)
    n_sub = len(sample)
    k = max(1, n_components // schedule.start_fraction)
    # k-means on at most max(100 k, 20000) of the subsample's frames (as the "full" schedule's sample)
    model = OnlineGMM(k, covariance_type="diag", init_params="kmeans", init_size=min(n_sub, max(100 * k, 20_000)),
                      max_iter=schedule.iterations_per_size, tol=0.0, random_state=random_state)
    _fit(model, sample)
    log.stages.append(StageLog(k, n_sub, model.n_iter_, time.perf_counter() - started, "subsample"))
    while k < n_components:
        started = time.perf_counter()
        weights, means, covariances = split_components(model.weights_, model.means_, model.covariances_,
                                                       n_components, schedule.perturbation, rng)
        k = len(weights)
        iterations = schedule.iterations_per_size if k < n_components else schedule.subsample_iterations_at_full_size
        model = OnlineGMM(k, covariance_type="diag", weights_init=weights, means_init=means,
                          precisions_init=1.0 / covariances, init_size=k, max_iter=iterations, tol=0.0,
                          random_state=random_state)
        _fit(model, sample)
        log.stages.append(StageLog(k, n_sub, model.n_iter_, time.perf_counter() - started, "subsample"))
    started = time.perf_counter()
    # go on over all the frames from the subsample's model (its shift and variance floor are the sample's)
    lower_bound = model.lower_bound_ if model.n_iter_ else model.score(sample)
    model.set_params(warm_start=True, max_iter=min(schedule.final_iterations, schedule.max_iter),
                     tol=_tol(schedule, lower_bound))
    frames.fit(model)
    log.stages.append(StageLog(k, log.n_frames, model.n_iter_, time.perf_counter() - started, "all"))
    model.set_params(warm_start=False, tol=schedule.tol)
    return model
