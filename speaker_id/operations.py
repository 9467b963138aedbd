"""Enroll, verify and identify audio files against a speaker store.

The operations the ``speaker-id`` command offers, as library calls: each one
goes audio -> features -> statistics -> models -> scores -> decisions with the
stages upstream of it; the CLI only parses arguments and prints what these
return.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from streamgmm import accumulate

from . import scoring
from .frontend.augmentation import check_vtln_warps, pseudo_speaker, warped_config
from .frontend.cluster import ClusterFeatures
from .frontend.extraction import extract_files
from .models.adaptation import speaker_stats
from .models.ivector_backend import IvectorBackend, cluster_training_sessions, training_sessions
from .models.ubm import FeatureCache, fit_ubm
from .store import SpeakerStore, check_speaker_name


def train_models(paths: Sequence, config, *, speakers: Optional[Sequence] = None, ivector_options=None,
                 vtln_warps: Optional[Sequence[float]] = None, n_jobs: int = 2, progress: bool = False, client=None,
                 **ubm_options):
    """A UBM, and with ``speakers`` an i-vector back end, trained on audio files whose features are extracted once.

    Parameters
    ----------
    paths : sequence of path-like
    config : FeatureConfig
    speakers : sequence of str, optional
        The speaker of each file: also train an
        :class:`~speaker_id.models.ivector_backend.IvectorBackend` on the same
        cached features (LDA and PLDA need at least 3 speakers, most of them
        with several files).
    ivector_options : dict, optional
        Keyword arguments of ``IvectorBackend`` (``rank``, ``lda_dim``, ``scoring``, ...).
    vtln_warps : sequence of float, optional
        With ``speakers``: the back end also trains on each speaker heard
        through each of these VTLN warps, as one more pseudo-speaker per warp
        (:mod:`~speaker_id.frontend.augmentation`); the UBM trains on the
        unwarped audio only. None or empty: no augmentation.
    n_jobs : int, default=2
        Feature extraction processes.
    progress : bool, default=False
    client : dask.distributed.Client, optional
        Extract the features on the workers of this cluster and train there
        (:class:`~speaker_id.frontend.cluster.ClusterFeatures`): the same UBM
        and back end as in one process. ``n_jobs`` and ``progress`` are then unused.
    **ubm_options
        Keyword arguments of :func:`~speaker_id.models.ubm.fit_ubm`
        (``n_components``, ``max_iter``, ``learning_method``, ...).

    Returns
    -------
    ubm : OnlineGMM
    backend : IvectorBackend or None
    config : FeatureConfig
        ``config``, with the training features' mean when it waited for one
        (:attr:`~speaker_id.frontend.config.FeatureConfig.needs_prior`): store it beside the UBM.
    """
    backend = None
    vtln_warps = check_vtln_warps(vtln_warps)
    if speakers is not None:  # too few speakers for LDA and PLDA: say so before the UBM's minutes
        IvectorBackend(**(ivector_options or {})).check_speakers(len(set(speakers)), len(vtln_warps))
    if client is not None:
        features = ClusterFeatures(client, paths, config)
        try:
            if config.needs_prior:
                config = features.fit_prior(config)
            ubm = fit_ubm(features, **ubm_options)
            if speakers is not None:
                stats, labels = cluster_training_sessions(list(speakers), features, ubm)
        finally:
            features.close()
    else:
        with FeatureCache(paths, config, n_jobs=n_jobs, progress=progress) as cache:
            if config.needs_prior:
                config = cache.fit_prior(config)
            ubm = fit_ubm(cache, progress=progress, **ubm_options)
            if speakers is not None:
                stats, labels = training_sessions(list(speakers), cache.utterances(), ubm)
    if speakers is not None:
        more, more_labels = warped_training_sessions(paths, speakers, config, ubm, vtln_warps, n_jobs=n_jobs,
                                                     progress=progress, client=client)
        backend = fit_ivector_backend(ubm, (stats, labels), (more, more_labels), ivector_options, client=client)
    return ubm, backend, config


def warped_training_sessions(paths: Sequence, speakers: Sequence, config, ubm, vtln_warps: Sequence[float], *,
                             n_jobs: int = 2, progress: bool = False, client=None):
    """Training sessions of the pseudo-speakers each VTLN warp makes of ``speakers`` (extracted again, warped).

    Parameters
    ----------
    paths : sequence of path-like
        The training audio, one file per utterance.
    speakers : sequence of str
        The speaker of each file.
    config : FeatureConfig
        The unwarped configuration, with its training mean (``prior_mean``) when it has one.
    ubm : OnlineGMM
    vtln_warps : sequence of float
        Checked by :func:`~speaker_id.frontend.augmentation.check_vtln_warps`.
    n_jobs, progress, client
        As :func:`train_models`.

    Returns
    -------
    stats : list
        As :func:`~speaker_id.models.ivector_backend.training_sessions` (or, with ``client``,
        :func:`~speaker_id.models.ivector_backend.cluster_training_sessions`), warp after warp.
    labels : ndarray of str, shape (n_sessions,)
        Pseudo-speaker labels (:func:`~speaker_id.frontend.augmentation.pseudo_speaker`).
    """
    stats, labels = [], [np.array([], dtype=str)]
    for warp in check_vtln_warps(vtln_warps):
        names = [pseudo_speaker(s, warp) for s in speakers]
        if client is not None:
            features = ClusterFeatures(client, paths, warped_config(config, warp))
            try:
                part, part_labels = cluster_training_sessions(names, features, ubm)
            finally:
                features.close()
        else:
            with FeatureCache(paths, warped_config(config, warp), n_jobs=n_jobs, progress=progress) as cache:
                part, part_labels = training_sessions(names, cache.utterances(), ubm)
        stats += part
        labels.append(part_labels)
    return stats, np.concatenate(labels)


def fit_ivector_backend(ubm, sessions, warped, ivector_options=None, *, client=None):
    """An :class:`~speaker_id.models.ivector_backend.IvectorBackend` trained on real and warped sessions.

    Parameters
    ----------
    ubm : OnlineGMM
    sessions : (stats, labels)
        The unwarped training sessions, as
        :func:`~speaker_id.models.ivector_backend.training_sessions` gives them.
    warped : (stats, labels)
        The pseudo-speakers' sessions, as :func:`warped_training_sessions` gives them.
    ivector_options : dict, optional
        Keyword arguments of ``IvectorBackend``.
    client : dask.distributed.Client, optional
        When the statistics are futures on its cluster.

    Returns
    -------
    IvectorBackend
        Trained on all sessions, centred on the unwarped ones.
    """
    (stats, labels), (more, more_labels) = sessions, warped
    return IvectorBackend(**(ivector_options or {})).fit(
        ubm, list(stats) + list(more), np.concatenate([labels, more_labels]), client=client,
        augmented=np.arange(len(labels) + len(more_labels)) >= len(labels))


def enroll_files(store: SpeakerStore, name: str, paths: Sequence, *, mode: str = "add", n_jobs: int = 1) -> dict:
    """Enroll (or add audio to) speaker ``name`` from audio files.

    Returns the store's entry for the speaker (frames, utterances, ...).
    Nothing is written if any file fails. An invalid name is refused before any audio is read.
    """
    name = check_speaker_name(name)
    features = extract_files(list(paths), store.feature_config, n_jobs=n_jobs)
    if store.backend == "ivector":
        # a speaker is the sum of its utterances' i-vectors (measured better than one i-vector of the
        # pooled statistics: EER 2.2 against 5.6 % on librispeech-mini, 15.4 against 17.0 % on
        # arabic-speech-commands), and the pooled statistics stay beside it
        per_utterance = [accumulate(store.ubm, X) for X in features]
        vectors = store.ivector_backend.vectors(per_utterance)
        return store.enroll_stats(name, sum(per_utterance[1:], per_utterance[0]), n_utterances=len(features),
                                  mode=mode, vectors=vectors)
    stats = speaker_stats(store.ubm, features)
    return store.enroll_stats(name, stats, n_utterances=len(features), mode=mode)


def _scores(store: SpeakerStore, names, features, top_c):
    """Scores of one utterance's features against enrolled speakers, with the store's back end.

    ``"gmm"``: average frame log-likelihood ratio of MAP-adapted models;
    ``"ivector"``: PLDA (or cosine) score of its i-vector against each speaker's
    sum of enrollment i-vectors. Shape (len(names),).
    """
    if store.backend == "ivector":
        backend = store.ivector_backend
        sums, counts = zip(*(store.speaker_enrollment(name) for name in names))
        test = backend.vectors([accumulate(store.ubm, features)])
        return backend.score(np.array(sums), np.array(counts), test)[0]
    models = {name: store.speaker_model(name) for name in names}
    return scoring.SpeakerScorer(store.ubm, models, top_c=top_c).score(features)


def verify_file(store: SpeakerStore, name: str, path, *, threshold: float = 0.0, top_c: Optional[int] = 5) -> dict:
    """Score ``path`` against speaker ``name``; accept when the score reaches ``threshold``.

    The score is the store's back end's: the average frame LLR (``gmm``) or
    the PLDA LLR of the i-vectors (``ivector``).
    """
    features = extract_files([path], store.feature_config, n_jobs=1)[0]
    score = float(_scores(store, [name], features, top_c)[0])
    return {"speaker": name, "audio": str(path), "score": score, "threshold": float(threshold),
            "accepted": bool(scoring.verify(score, threshold)), "n_frames": int(len(features))}


def identify_file(store: SpeakerStore, path, *, threshold: Optional[float] = None, top_c: Optional[int] = 5) -> dict:
    """The best-scoring enrolled speaker for ``path`` (``None`` below ``threshold``: unknown)."""
    names = store.speakers()
    if not names:
        raise ValueError(f"the store {store.path} has no enrolled speakers; run `speaker-id enroll` first.")
    features = extract_files([path], store.feature_config, n_jobs=1)[0]
    scores = _scores(store, names, features, top_c)
    best, best_score = scoring.identify(scores, names, threshold)
    ranking = sorted(zip(names, scores.tolist()), key=lambda item: -item[1])
    return {"audio": str(path), "speaker": best, "score": float(best_score),
            "threshold": threshold, "scores": dict(ranking), "n_frames": int(len(features))}
