"""Evaluation protocols: a corpus split into UBM training, enrollment and tests, scored end to end.

:func:`evaluate` trains the UBM, enrolls every test speaker, scores every test
utterance against every enrolled speaker and reports verification (EER,
minDCF) and identification figures; the ``fsdd`` and ``kaldi`` protocols say
which utterances play which part.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from streamgmm import OnlineGMM
from streamgmm.io import write_atomic

from .. import scoring
from ..frontend.augmentation import training_warps
from ..frontend.config import FeatureConfig
from ..frontend.extraction import extract_files
from ..frontend.normalization import apply_prior, fit_prior
from ..frontend.cluster import ClusterFeatures, FeatureSets
from ..models.adaptation import DEFAULT_RELEVANCE_FACTOR
from ..models.ivector_backend import IvectorBackend, cluster_training_sessions, training_sessions
from ..models.ubm import DEFAULT_BATCH_SIZE, check_learning_method, fit_ubm
from ..models.ubm_schedule import DEFAULT_SCHEDULE, as_schedule
from ..operations import fit_ivector_backend, warped_training_sessions
from ..scoring.normalization import normalise_scores
from . import metrics
from .corpora import load_fsdd, read_kaldi_dir
from .trials import (
    BACKENDS,
    COHORTS,
    FeatureTable,
    GmmTrials,
    IvectorTrials,
    cohort_scores,
)


# --------------------------------------------------------------- evaluation
@dataclass
class EvaluationResult:
    """Everything a protocol run measured.

    ``eer``, ``min_dcf`` and ``norm_accuracy`` are of the scores normalised
    by ``norm`` with the ``cohort`` named; ``raw_eer``, ``raw_min_dcf`` and
    ``accuracy`` of the raw scores. ``min_dcf`` maps each ``p_target`` to its
    minimum normalised detection cost. ``trials`` rows: (model, test
    utterance, normalised score, target); ``ubm``: the UBM.
    """

    protocol: str
    n_speakers: int
    n_train_utterances: int
    n_enroll_utterances: int
    n_test_utterances: int
    eer: float
    min_dcf: dict
    accuracy: float
    raw_eer: float
    norm: str
    settings: dict
    seconds: dict
    raw_min_dcf: dict = field(default_factory=dict)
    norm_accuracy: float = float("nan")
    cohort: Optional[str] = None
    n_cohort_speakers: int = 0
    trials: list = field(repr=False, default_factory=list)
    ubm: Optional[OnlineGMM] = field(repr=False, default=None)

    def summary(self) -> dict:
        """The figures without the trial list and the UBM (for ``--json``)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("trials", "ubm")}
        out["n_trials"] = len(self.trials)
        out["n_target_trials"] = int(sum(t[3] for t in self.trials))
        return out

    def write_trials(self, path):
        """Write the trials as text, one ``model test score target`` line each, atomically.

        The format of Kaldi's and NIST's score files plus the target label
        (1 target, 0 non-target), so other tools can compute their own metrics.
        """
        lines = "".join(f"{model} {test} {score:.6f} {target}\n" for model, test, score, target in self.trials)
        write_atomic(path, lambda handle: handle.write(lines.encode("utf-8")))


@dataclass
class _Split:
    train: list
    enroll: dict  # speaker -> list of utterances
    test: list


def _fsdd_split(directory) -> _Split:
    train, test = load_fsdd(directory)
    enroll: dict = {}
    for utt in train:
        enroll.setdefault(utt.speaker, []).append(utt)
    return _Split(train=train, enroll=enroll, test=test)


def _kaldi_split(directory) -> _Split:
    directory = Path(directory)
    for part in ("train", "test"):
        if not (directory / part).is_dir():
            raise ValueError(
                f"{directory} has no {part}/ Kaldi data directory; the kaldi protocol needs "
                "DIR/train and DIR/test, each with wav.scp and utt2spk."
            )
    train = read_kaldi_dir(directory / "train", base_dir=directory)
    test_all = read_kaldi_dir(directory / "test", base_dir=directory)
    by_speaker: dict = {}
    for utt in sorted(test_all, key=lambda u: u.utt_id):
        by_speaker.setdefault(utt.speaker, []).append(utt)
    enroll, test = {}, []
    for speaker, utts in sorted(by_speaker.items()):
        if len(utts) < 2:
            raise ValueError(
                f"test speaker {speaker!r} has {len(utts)} utterance(s); the kaldi protocol needs at "
                "least 2 (the first half enrolls, the rest are tests)."
            )
        half = len(utts) // 2
        enroll[speaker], test = utts[:half], test + utts[half:]
    return _Split(train=train, enroll=enroll, test=test)


def _protocol(protocol, directory):
    """(split, default sample rate, default normalisation) of a protocol's corpus."""
    if protocol == "fsdd":
        return _fsdd_split(directory), 8000, "none"
    if protocol == "kaldi":
        return _kaldi_split(directory), 16000, "snorm"
    raise ValueError(f"protocol must be 'fsdd' or 'kaldi', got {protocol!r}.")


def _feature_config(protocol_sr, sr, feature_config):
    return feature_config or FeatureConfig(sr=sr or protocol_sr)


def protocol_features(protocol: str, directory, *, sr: Optional[int] = None,
                      feature_config: Optional[FeatureConfig] = None, n_jobs: int = 2) -> dict:
    """The features of every file a protocol run reads, to pass to several :func:`evaluate` calls.

    Parameters
    ----------
    protocol, directory, sr, feature_config, n_jobs
        As :func:`evaluate`.

    Returns
    -------
    dict of str to ndarray of shape (n_frames_i, n_features)
        Keyed by audio path; give it to :func:`evaluate` as ``features``
        (with the same ``sr`` and ``feature_config``).

    Examples
    --------
    >>> feats = protocol_features("fsdd", "fsdd/recordings")                     # doctest: +SKIP
    >>> [evaluate("fsdd", "fsdd/recordings", features=feats, random_state=s) for s in range(3)]  # doctest: +SKIP
    """
    split, default_sr, _ = _protocol(protocol, directory)
    config = _feature_config(default_sr, sr, feature_config)
    paths = list({u.path: None for u in split.train + [u for s in sorted(split.enroll) for u in split.enroll[s]]
                  + split.test})
    return dict(zip(paths, extract_files(paths, config, n_jobs=n_jobs)))


def evaluate(
    protocol: str,
    directory,
    *,
    n_components: int = 128,
    sr: Optional[int] = None,
    feature_config: Optional[FeatureConfig] = None,
    relevance_factor: float = DEFAULT_RELEVANCE_FACTOR,
    adapt: Sequence[str] = ("means",),
    top_c: Optional[int] = 5,
    backend: str = "gmm",
    ivector_options: Optional[dict] = None,
    vtln_warps: Optional[Sequence[float]] = None,
    norm: Optional[str] = None,
    cohort: str = "train",
    top_n: int = 200,
    max_iter: int = 50,
    random_state: int = 0,
    learning_method: str = "batch",
    batch_size: int = DEFAULT_BATCH_SIZE,
    n_jobs: int = 2,
    p_targets: Sequence[float] = (0.01, 0.001),
    progress: bool = False,
    ubm_schedule=DEFAULT_SCHEDULE,
    features: Optional[dict] = None,
    client=None,
) -> EvaluationResult:
    """Run a verification + identification protocol over a corpus.

    Parameters
    ----------
    protocol : {"fsdd", "kaldi"}
        ``fsdd``: DIR holds ``{digit}_{speaker}_{index}.wav``; index 5-49 train
        the UBM and enroll each speaker, 0-4 are tests. ``kaldi``: DIR/train
        and DIR/test are Kaldi data directories; the UBM is trained on train,
        each test speaker enrolls on the first half of its utterances (sorted
        by id) and the rest are tests. Every test is scored against every
        enrolled speaker.
    directory : path-like
    n_components : int, default=128
    sr : int, optional
        Feature sample rate: 8000 for ``fsdd``, 16000 for ``kaldi`` by default.
    feature_config : FeatureConfig, optional
        The whole front end (its ``sr`` wins over ``sr``); defaults otherwise.
    relevance_factor : float, default=DEFAULT_RELEVANCE_FACTOR (4)
    adapt : sequence of {"weights", "means", "variances"}, default ("means",)
        What MAP adaptation moves.
    top_c : int or None, default=5
    backend : {"gmm", "ivector"}, default="gmm"
        ``gmm``: MAP-adapted speaker GMMs scored by the frame log-likelihood
        ratio. ``ivector``: an :class:`~speaker_id.models.ivector_backend.IvectorBackend`
        (i-vector extractor, LDA, PLDA) trained on the training speakers'
        statistics (see :func:`~speaker_id.models.ivector_backend.training_sessions`); speakers are the sums of
        their enrollment utterances' vectors.
    ivector_options : dict, optional
        Keyword arguments of ``IvectorBackend`` (``rank``, ``lda_dim``,
        ``scoring``, ...).
    vtln_warps : sequence of float, optional
        The i-vector back end also trains on the training speakers heard
        through these VTLN warps, each warp one more pseudo-speaker per
        speaker (:mod:`~speaker_id.frontend.augmentation`; the UBM, the
        score-normalisation cohort and every enrolled or tested utterance
        stay unwarped). Default: ``DEFAULT_VTLN_WARPS`` (0.8, 0.9, 1.1, 1.2)
        for ``backend="ivector"``, none for ``"gmm"`` (which refuses any).
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}, optional
        Normalisation of the verification scores; see
        :func:`speaker_id.scoring.normalization.normalise_scores`. Default:
        ``"snorm"`` for ``kaldi``; ``"none"`` for ``fsdd``, whose training
        speakers are its test speakers, so it has no honest cohort.
    cohort : {"train", "enrolled"}, default="train"
        ``"train"``: the cohort models are MAP-adapted from each training
        speaker's utterances, and the training utterances are the Z-norm
        impostors: nothing about the speakers under test is used. Refused when
        the training speakers overlap the test speakers. ``"enrolled"``: the
        other enrolled speakers and their enrollment utterances, as a closed
        set allows; optimistic, since the cohort is the speakers under test.
    top_n : int, default=200
        Cohort size of adaptive S-norm (``norm="asnorm"``).
    max_iter : int, default=50
        Batch EM passes of the UBM at most.
    random_state : int, default=0
        Seed of the UBM's initialisation (and of the online order).
    learning_method : {"batch", "online"}, default="batch"
        How the UBM learns: EM to convergence, or ONE pass of online EM over
        the training utterances in a seeded random order; see
        :func:`speaker_id.models.ubm.fit_ubm`.
    batch_size : int, default=DEFAULT_BATCH_SIZE
        Frames per online EM update of the UBM.
    p_targets : sequence of float, default=(0.01, 0.001)
        Target priors of minDCF (c_miss = c_fa = 1).
    ubm_schedule : {"grow", "full"} or UbmSchedule, default="grow"
        How batch EM spends its passes; see :func:`speaker_id.models.ubm.fit_ubm`.
    features : dict, optional
        Features already extracted by :func:`protocol_features` (same ``sr``
        and ``feature_config``), reused instead of reading the audio again.
    client : dask.distributed.Client, optional
        Run on a Dask cluster: features are extracted on the workers and
        stay there; the UBM (and the i-vector extractor) train there by EM
        whose statistics are summed in a tree, and enrollment and scoring map
        over the utterances. The figures equal one process's. ``n_jobs`` and
        ``features`` are then unused; the online learning method is refused.

    Returns
    -------
    EvaluationResult
    """
    clock = {"start": time.perf_counter()}
    check_learning_method(learning_method, batch_size)
    ubm_schedule = as_schedule(ubm_schedule, max_iter=max_iter)
    split, default_sr, default_norm = _protocol(protocol, directory)
    norm = default_norm if norm is None else norm
    if norm not in scoring.normalization.NORMALISATIONS:
        raise ValueError(f"norm must be one of {scoring.normalization.NORMALISATIONS}, got {norm!r}.")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if cohort not in COHORTS:
        raise ValueError(f"cohort must be one of {COHORTS}, got {cohort!r}.")
    config = _feature_config(default_sr, sr, feature_config)
    vtln_warps = training_warps(backend, vtln_warps)
    if backend == "ivector":  # too few training speakers for the LDA asked for: say so before any work
        IvectorBackend(**(ivector_options or {})).check_speakers(len({u.speaker for u in split.train}), len(vtln_warps))
    if client is not None and learning_method != "batch":
        raise ValueError("online EM is one sequential pass in one process; use learning_method='batch' on a cluster.")
    speakers = sorted(split.enroll)
    enroll_utts = [u for s in speakers for u in split.enroll[s]]
    train_paths = list({u.path: None for u in split.train})
    other_paths = [p for p in {u.path: None for u in enroll_utts + split.test} if p not in set(train_paths)]
    ubm_options = dict(n_components=n_components, learning_method=learning_method, batch_size=batch_size,
                       max_iter=max_iter, random_state=random_state, schedule=ubm_schedule)
    if client is None:
        paths = train_paths + other_paths
        if features is None:
            features = dict(zip(paths, extract_files(paths, config, n_jobs=n_jobs)))
        else:
            missing = [p for p in paths if p not in features]
            if missing:
                raise ValueError(f"features has no entry for {missing[0]} ({len(missing)} files missing); "
                                 "pass protocol_features() of the same protocol and directory.")
        if config.needs_prior:  # the training speakers' mean, the prior of every utterance's
            config = fit_prior(config, [features[p] for p in train_paths])
            features = {p: apply_prior(features[p], config) for p in paths}
        features = FeatureTable(features)
        train_features = [features[u.path] for u in split.train]
    else:
        train_features = ClusterFeatures(client, train_paths, config)
        others = ClusterFeatures(client, other_paths, config) if other_paths else None
        features = FeatureSets(train_features, others)
        train_features.wait()
        if config.needs_prior:
            config = train_features.fit_prior(config)
            if others is not None:
                others.apply_prior(config)
    clock["features"] = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ubm = fit_ubm(train_features, **ubm_options)
        clock["ubm"] = time.perf_counter()

        if backend == "gmm":
            trials = GmmTrials(ubm, relevance_factor, adapt, top_c, features)
        else:
            speakers_of_train = [u.speaker for u in split.train]
            if client is None:
                sessions, session_labels = training_sessions(speakers_of_train, train_features, ubm)
            else:
                sessions, session_labels = cluster_training_sessions(speakers_of_train, train_features, ubm)
            more, more_labels = warped_training_sessions([u.path for u in split.train], speakers_of_train, config,
                                                         ubm, vtln_warps, n_jobs=n_jobs, client=client)
            fitted = fit_ivector_backend(ubm, (sessions, session_labels), (more, more_labels), ivector_options,
                                         client=client)
            trials = IvectorTrials(ubm, fitted, features)
        clock["backend"] = time.perf_counter()
        trials.enroll(speakers, [[u.path for u in split.enroll[s]] for s in speakers])
        clock["enrolled"] = time.perf_counter()
        raw = trials.score(speakers, [u.path for u in split.test])
        clock["scoring"] = time.perf_counter()
        cohort_matrices, n_cohort = cohort_scores(split, speakers, raw, trials, cohort, norm)
    finally:
        if client is not None:
            features.close()
    normalised = normalise_scores(raw, norm, top_n=top_n, **cohort_matrices)

    truth = np.array([u.speaker for u in split.test])
    labels = (truth[:, None] == np.array(speakers)[None, :]).astype(int)
    known = np.isin(truth, speakers)

    def accuracy_of(scores):
        predicted = np.array(speakers)[np.argmax(scores, axis=1)]
        return float(np.mean(predicted[known] == truth[known])) if known.any() else float("nan")

    eer, _ = metrics.eer(normalised.ravel(), labels.ravel())
    raw_eer, _ = metrics.eer(raw.ravel(), labels.ravel())
    dcf = {p: float(metrics.min_dcf(normalised.ravel(), labels.ravel(), p_target=p)[0]) for p in p_targets}
    raw_dcf = {p: float(metrics.min_dcf(raw.ravel(), labels.ravel(), p_target=p)[0]) for p in p_targets}
    trials = [(s, u.utt_id, float(normalised[t, m]), int(labels[t, m]))
              for t, u in enumerate(split.test) for m, s in enumerate(speakers)]
    clock["end"] = time.perf_counter()
    seconds = {
        "features": clock["features"] - clock["start"],
        "ubm": clock["ubm"] - clock["features"],
        "backend": clock["backend"] - clock["ubm"],
        "enroll_and_score": clock["scoring"] - clock["backend"],
        "enroll": clock["enrolled"] - clock["backend"],
        "score": clock["scoring"] - clock["enrolled"],
        "normalisation": clock["end"] - clock["scoring"],
        "total": clock["end"] - clock["start"],
    }
    settings = {"backend": backend, "ivector_options": dict(ivector_options or {}), "vtln_warps": list(vtln_warps),
                "n_components": n_components, "sr": config.sr, "relevance_factor": relevance_factor,
                "adapt": list(adapt), "top_c": top_c, "top_n": top_n if norm == "asnorm" else None,
                "ubm_learning_method": learning_method,
                "ubm_batch_size": batch_size if learning_method == "online" else None,
                # passes over the training frames: batch EM's initialisation scan + its iterations
                "ubm_passes": 1 if learning_method == "online" else ubm.n_iter_ + 1,
                "ubm_iterations": ubm.n_iter_, "ubm_converged": bool(ubm.converged_)}
    if learning_method == "batch":
        log = ubm.schedule_log_
        settings.update({"ubm_schedule": log.schedule.kind,
                         # EM passes over all the training frames, and all E-step work in such passes
                         "ubm_iterations": log.full_passes,
                         "ubm_passes": log.full_passes + 1,
                         "ubm_equivalent_passes": log.equivalent_passes})
    return EvaluationResult(
        protocol=protocol, n_speakers=len(speakers), n_train_utterances=len(split.train),
        n_enroll_utterances=len(enroll_utts), n_test_utterances=len(split.test), eer=float(eer),
        min_dcf=dcf, accuracy=accuracy_of(raw), raw_eer=float(raw_eer), norm=norm, settings=settings,
        seconds=seconds, raw_min_dcf=raw_dcf, norm_accuracy=accuracy_of(normalised),
        cohort=None if norm == "none" else cohort, n_cohort_speakers=n_cohort, trials=trials, ubm=ubm,
    )
