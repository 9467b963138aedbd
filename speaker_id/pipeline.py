"""The speaker recognition operations the command line offers, as library calls.

Each function goes audio -> features -> statistics -> models -> scores ->
decisions with the modules to its left; the CLI only parses arguments and
prints what these return.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from streamgmm import OnlineGMM

from . import metrics, scoring
from .datasets import load_fsdd, read_kaldi_dir
from .enroll import map_adapt, speaker_stats
from .features import FeatureConfig, extract_files
from .store import SpeakerStore
from .ubm import DEFAULT_BATCH_SIZE, check_learning_method, fit_ubm

NORMALISATIONS = ("none", "znorm", "tnorm", "ztnorm", "snorm")


# ---------------------------------------------------------------- store ops
def enroll_files(store: SpeakerStore, name: str, paths: Sequence, *, mode: str = "add", n_jobs: int = 1) -> dict:
    """Enroll (or add audio to) speaker ``name`` from audio files.

    Returns the store's entry for the speaker (frames, utterances, ...).
    Nothing is written if any file fails.
    """
    features = extract_files(list(paths), store.feature_config, n_jobs=n_jobs)
    stats = speaker_stats(store.ubm, features)
    return store.enroll_stats(name, stats, n_utterances=len(features), mode=mode)


def speaker_model(store: SpeakerStore, name: str) -> OnlineGMM:
    """The MAP-adapted model of an enrolled speaker."""
    return map_adapt(store.ubm, store.load_stats(name), store.relevance_factor, store.adapt)


def verify_file(store: SpeakerStore, name: str, path, *, threshold: float = 0.0, top_c: Optional[int] = 5) -> dict:
    """Score ``path`` against speaker ``name``; accept when the average LLR reaches ``threshold``."""
    model = speaker_model(store, name)
    features = extract_files([path], store.feature_config, n_jobs=1)[0]
    score = float(scoring.llr(store.ubm, model, features, top_c=top_c))
    return {"speaker": name, "audio": str(path), "score": score, "threshold": float(threshold),
            "accepted": bool(scoring.verify(score, threshold)), "n_frames": int(len(features))}


def identify_file(store: SpeakerStore, path, *, threshold: Optional[float] = None, top_c: Optional[int] = 5) -> dict:
    """The best-scoring enrolled speaker for ``path`` (``None`` below ``threshold``: unknown)."""
    names = store.speakers()
    if not names:
        raise ValueError(f"the store {store.path} has no enrolled speakers; run `speaker-id enroll` first.")
    models = {name: speaker_model(store, name) for name in names}
    features = extract_files([path], store.feature_config, n_jobs=1)[0]
    scores = scoring.SpeakerScorer(store.ubm, models, top_c=top_c).score(features)
    best, best_score = scoring.identify(scores, names, threshold)
    ranking = sorted(zip(names, scores.tolist()), key=lambda item: -item[1])
    return {"audio": str(path), "speaker": best, "score": float(best_score),
            "threshold": threshold, "scores": dict(ranking), "n_frames": int(len(features))}


# --------------------------------------------------------------- evaluation
@dataclass
class EvaluationResult:
    """Everything a protocol run measured. ``trials`` rows: (model, test utterance, score, target); ``ubm``: the UBM."""

    protocol: str
    n_speakers: int
    n_train_utterances: int
    n_enroll_utterances: int
    n_test_utterances: int
    eer: float
    min_dcf: float
    accuracy: float
    raw_eer: float
    norm: str
    settings: dict
    seconds: dict
    trials: list = field(repr=False, default_factory=list)
    ubm: Optional[OnlineGMM] = field(repr=False, default=None)

    def summary(self) -> dict:
        """The figures without the trial list and the UBM (for ``--json``)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("trials", "ubm")}
        out["n_trials"] = len(self.trials)
        out["n_target_trials"] = int(sum(t[3] for t in self.trials))
        return out


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


def normalise_scores(raw, enroll_scores, enroll_speakers, model_names, norm):
    """Apply a score normalisation to a (n_test, n_models) score matrix.

    Parameters
    ----------
    raw : ndarray of shape (n_test, n_models)
    enroll_scores : ndarray of shape (n_enroll_utts, n_models) or None
        Every enrollment utterance scored against every model: the impostor
        utterances of model ``m`` (Z-norm) are those of the other speakers.
        Only read by the normalisations with a Z step.
    enroll_speakers : sequence of str, length n_enroll_utts
    model_names : sequence of str, length n_models
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm"}
        T-norm's cohort for the trial (test, m) is the other enrolled models.

    Returns
    -------
    ndarray of shape (n_test, n_models)
    """
    if norm not in NORMALISATIONS:
        raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r}.")
    if norm == "none":
        return raw.copy()
    n_models = raw.shape[1]
    if n_models < 3 and norm != "znorm":
        raise ValueError(f"{norm} needs at least 3 enrolled speakers (a cohort of 2 or more); use --norm none or znorm.")
    if norm in ("znorm", "ztnorm", "snorm"):
        enroll_speakers = np.asarray(enroll_speakers)
        impostors = [enroll_scores[enroll_speakers != name, m] for m, name in enumerate(model_names)]
    out = np.empty_like(raw)
    for m in range(n_models):
        others = [j for j in range(n_models) if j != m]
        if norm == "znorm":
            out[:, m] = scoring.znorm(raw[:, m], impostors[m])
        elif norm == "tnorm":
            out[:, m] = scoring.tnorm(raw[:, m], raw[:, others])
        elif norm == "snorm":
            out[:, m] = 0.5 * (scoring.znorm(raw[:, m], impostors[m]) + scoring.tnorm(raw[:, m], raw[:, others]))
        else:  # ztnorm: Z-normalise every model with its own impostors, then T-norm across models
            z = np.column_stack([scoring.znorm(raw[:, j], impostors[j]) for j in range(n_models)])
            out[:, m] = scoring.tnorm(z[:, m], z[:, others])
    return out


def evaluate(
    protocol: str,
    directory,
    *,
    n_components: int = 128,
    sr: Optional[int] = None,
    feature_config: Optional[FeatureConfig] = None,
    relevance_factor: float = 16.0,
    adapt: Sequence[str] = ("means",),
    top_c: Optional[int] = 5,
    norm: str = "tnorm",
    max_iter: int = 50,
    random_state: int = 0,
    learning_method: str = "batch",
    batch_size: int = DEFAULT_BATCH_SIZE,
    n_jobs: int = 2,
    p_target: float = 0.01,
    progress: bool = False,
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
    relevance_factor : float, default=16
    adapt : sequence of {"weights", "means", "variances"}, default ("means",)
        What MAP adaptation moves.
    top_c : int or None, default=5
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm"}, default="tnorm"
        Normalisation for the verification figures (EER, minDCF); see
        :func:`normalise_scores`. Identification uses the raw scores.
    max_iter : int, default=50
        Batch EM passes of the UBM at most.
    random_state : int, default=0
        Seed of the UBM's initialisation (and of the online order).
    learning_method : {"batch", "online"}, default="batch"
        How the UBM learns: EM to convergence, or ONE pass of online EM over
        the training utterances in a seeded random order; see
        :func:`speaker_id.ubm.fit_ubm`.
    batch_size : int, default=DEFAULT_BATCH_SIZE
        Frames per online EM update of the UBM.
    p_target : float, default=0.01
        Target prior of minDCF (c_miss = c_fa = 1).

    Returns
    -------
    EvaluationResult
    """
    clock = {"start": time.perf_counter()}
    check_learning_method(learning_method, batch_size)
    if protocol == "fsdd":
        split, default_sr = _fsdd_split(directory), 8000
    elif protocol == "kaldi":
        split, default_sr = _kaldi_split(directory), 16000
    else:
        raise ValueError(f"protocol must be 'fsdd' or 'kaldi', got {protocol!r}.")
    config = feature_config or FeatureConfig(sr=sr or default_sr)
    speakers = sorted(split.enroll)
    enroll_utts = [u for s in speakers for u in split.enroll[s]]
    unique = {u.path: None for u in split.train + enroll_utts + split.test}
    paths = list(unique)
    features = dict(zip(paths, extract_files(paths, config, n_jobs=n_jobs)))
    clock["features"] = time.perf_counter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = fit_ubm([features[u.path] for u in split.train], n_components=n_components,
                      learning_method=learning_method, batch_size=batch_size, max_iter=max_iter,
                      random_state=random_state)
    clock["ubm"] = time.perf_counter()

    models = {s: map_adapt(ubm, speaker_stats(ubm, [features[u.path] for u in split.enroll[s]]),
                           relevance_factor, adapt) for s in speakers}
    scorer = scoring.SpeakerScorer(ubm, models, top_c=top_c)
    raw = np.array([scorer.score(features[u.path]) for u in split.test])
    clock["scoring"] = time.perf_counter()
    enroll_scores = (np.array([scorer.score(features[u.path]) for u in enroll_utts])
                     if norm in ("znorm", "ztnorm", "snorm") else None)
    normalised = normalise_scores(raw, enroll_scores, [u.speaker for u in enroll_utts], speakers, norm)

    truth = np.array([u.speaker for u in split.test])
    labels = (truth[:, None] == np.array(speakers)[None, :]).astype(int)
    known = np.isin(truth, speakers)
    predicted = np.array(speakers)[np.argmax(raw, axis=1)]
    accuracy = float(np.mean(predicted[known] == truth[known])) if known.any() else float("nan")
    eer, _ = metrics.eer(normalised.ravel(), labels.ravel())
    raw_eer, _ = metrics.eer(raw.ravel(), labels.ravel())
    dcf, _ = metrics.min_dcf(normalised.ravel(), labels.ravel(), p_target=p_target)
    trials = [(s, u.utt_id, float(normalised[t, m]), int(labels[t, m]))
              for t, u in enumerate(split.test) for m, s in enumerate(speakers)]
    clock["end"] = time.perf_counter()
    seconds = {
        "features": clock["features"] - clock["start"],
        "ubm": clock["ubm"] - clock["features"],
        "enroll_and_score": clock["scoring"] - clock["ubm"],
        "total": clock["end"] - clock["start"],
    }
    settings = {"n_components": n_components, "sr": config.sr, "relevance_factor": relevance_factor,
                "adapt": list(adapt),
                "top_c": top_c, "p_target": p_target, "ubm_learning_method": learning_method,
                "ubm_batch_size": batch_size if learning_method == "online" else None,
                # passes over the training frames: batch EM's initialisation scan + its iterations
                "ubm_passes": 1 if learning_method == "online" else ubm.n_iter_ + 1,
                "ubm_iterations": ubm.n_iter_, "ubm_converged": bool(ubm.converged_)}
    return EvaluationResult(
        protocol=protocol, n_speakers=len(speakers), n_train_utterances=len(split.train),
        n_enroll_utterances=len(enroll_utts), n_test_utterances=len(split.test), eer=float(eer),
        min_dcf=float(dcf), accuracy=accuracy, raw_eer=float(raw_eer), norm=norm,
        settings=settings, seconds=seconds, trials=trials, ubm=ubm,
    )
