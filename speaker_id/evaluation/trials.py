"""Trial scores of an evaluation: speakers enrolled and scored by a back end, and the cohort's scores.

A back end here is two calls on audio files' features, ``enroll(names,
path_lists)`` and ``score(names, paths) -> (n_utterances, n_models)``; the GMM
and the i-vector back ends implement them, and :func:`cohort_scores` builds
the score-normalisation cohort from the training speakers with either. The
features are a :class:`FeatureTable` in this process or
:class:`~speaker_id.frontend.cluster.FeatureSets` kept on a Dask cluster:
both ``map`` a per-utterance function, ``map_batches`` a function of a
list of utterances (to score many at once) and ``sum_by_key`` an additive
one (a speaker's statistics), so the same code runs in one process or where
the features are.
"""

from __future__ import annotations

import numpy as np

from streamgmm import accumulate

from .. import scoring
from ..models.adaptation import map_adapt, speaker_stats

BACKENDS = ("gmm", "ivector")


class FeatureTable:
    """Features of audio files held in this process, by path.

    Parameters
    ----------
    features : dict
        Path -> ndarray of shape (n_frames, n_features).
    """

    def __init__(self, features):
        self.features = features

    def __getitem__(self, path):
        return self.features[path]

    def map(self, function, paths, *shared):
        """``[function(features[path], *shared) for path in paths]``."""
        return [function(self.features[path], *shared) for path in paths]

    def map_batches(self, function, paths, *shared):
        """``function([features[path] for path in paths], *shared)``: one result per path, in order."""
        return list(function([self.features[path] for path in paths], *shared))

    def sum_by_key(self, function, paths, keys, *shared):
        """Per key, ``function([features of the key's paths], *shared)``; a dict in the keys' first order."""
        members: dict = {}
        for path, key in zip(paths, keys, strict=True):
            members.setdefault(key, []).append(self.features[path])
        return {key: function(utterances, *shared) for key, utterances in members.items()}


def _flatten(lists):
    flat = [x for items in lists for x in items]
    ends = np.cumsum([len(items) for items in lists])
    return flat, ends


def _stats(utterances, ubm):
    # one E-step over the utterances joined: the sum of theirs, at the cost of one call
    return speaker_stats(ubm, [utterances[0] if len(utterances) == 1 else np.concatenate(utterances)])


def _utterance_scores(utterances, scorer):
    return scorer.score_utterances(utterances)


# Utterances whose statistics are held at once for one batched i-vector extraction.
_VECTOR_BATCH = 256


def _utterance_vectors(utterances, ubm, backend):
    # extraction in batches shares the per-component precomputations (several times faster than one by one)
    out = []
    for start in range(0, len(utterances), _VECTOR_BATCH):
        out.extend(backend.vectors([accumulate(ubm, X) for X in utterances[start:start + _VECTOR_BATCH]]))
    return out


class GmmTrials:
    """Speakers as MAP-adapted GMMs, scored by the average frame LLR against the UBM."""

    def __init__(self, ubm, relevance_factor, adapt, top_c, features):
        self.ubm, self.relevance_factor, self.adapt, self.top_c = ubm, relevance_factor, adapt, top_c
        self.features = features
        self.models = {}

    def enroll(self, names, path_lists):
        keys = [k for k, paths in enumerate(path_lists) for _ in paths]
        totals = self.features.sum_by_key(_stats, [p for paths in path_lists for p in paths], keys, self.ubm)
        for k, name in enumerate(names):
            self.models[name] = map_adapt(self.ubm, totals[k], self.relevance_factor, self.adapt)

    def score(self, names, paths):
        """Shape (n_utterances, n_models)."""
        # float32 selection and speaker matrices: scores within 1e-7 of float64's (8e-8 measured on
        # arabic-speech-commands, the same decisions), and the selection's density product twice as fast
        scorer = scoring.SpeakerScorer(self.ubm, {name: self.models[name] for name in names}, top_c=self.top_c,
                                       dtype=np.float32)
        return np.array(self.features.map_batches(_utterance_scores, paths, scorer)).reshape(len(paths), len(names))


class IvectorTrials:
    """Speakers as sums of processed i-vectors, scored by PLDA (or cosine)."""

    def __init__(self, ubm, backend, features):
        self.ubm, self.backend, self.features = ubm, backend, features
        self.models = {}

    def _vectors(self, paths):
        vectors = self.features.map_batches(_utterance_vectors, paths, self.ubm, self.backend)
        return np.array(vectors).reshape(len(paths), -1)

    def enroll(self, names, path_lists):
        paths, ends = _flatten(path_lists)
        vectors = self._vectors(paths)
        for name, start, end in zip(names, np.concatenate([[0], ends[:-1]]), ends):
            self.models[name] = self.backend.enrollment(vectors[start:end])

    def score(self, names, paths):
        """Shape (n_utterances, n_models)."""
        sums = np.array([self.models[name][0] for name in names])
        counts = [self.models[name][1] for name in names]
        return self.backend.score(sums, counts, self._vectors(paths))


COHORTS = ("train", "enrolled")


def cohort_scores(split, speakers, raw, trials, cohort, norm):
    """The cohort score matrices :func:`normalise_scores` takes, as keyword arguments.

    ``trials.enroll(names, path_lists)`` adds models;
    ``trials.score(names, paths)`` scores utterances against models,
    shape (n_utterances, n_models). Returns the arguments and the cohort's size.
    """
    if norm == "none":
        return {}, 0
    if cohort == "enrolled":
        # the optimistic cohort of closed sets: the other enrolled speakers and their enrollment audio
        enroll_utts = [u for s in speakers for u in split.enroll[s]]
        impostors = trials.score(speakers, [u.path for u in enroll_utts])
        impostors[np.array([u.speaker for u in enroll_utts])[:, None] == np.array(speakers)[None, :]] = np.nan
        return {"impostor_scores": impostors, "cohort_scores": raw, "cohort_impostor_scores": impostors,
                "cohort_exclude": np.eye(len(speakers), dtype=bool)}, len(speakers)
    by_speaker: dict = {}
    for utt in split.train:
        by_speaker.setdefault(utt.speaker, []).append(utt)
    shared = sorted(set(by_speaker) & set(speakers))
    if shared:
        raise ValueError(
            f"the training speakers include {len(shared)} of the speakers under test (e.g. {shared[0]!r}), so a "
            "cohort drawn from them would leak the test speakers into normalisation; use norm='none', or "
            "cohort='enrolled' (optimistic), or a corpus whose training speakers are disjoint from its test speakers."
        )
    if len(by_speaker) < 2:
        raise ValueError(f"the training part has {len(by_speaker)} speaker(s); a cohort needs at least 2 (use norm='none').")
    names = sorted(by_speaker)
    trials.enroll(names, [[u.path for u in by_speaker[s]] for s in names])
    impostor_paths = [u.path for u in split.train]
    out = {"impostor_scores": trials.score(speakers, impostor_paths),
           "cohort_scores": trials.score(names, [u.path for u in split.test])}
    if norm == "ztnorm":
        cohort_impostors = trials.score(names, impostor_paths)
        cohort_impostors[np.array([u.speaker for u in split.train])[:, None] == np.array(names)[None, :]] = np.nan
        out["cohort_impostor_scores"] = cohort_impostors
    return out, len(names)
