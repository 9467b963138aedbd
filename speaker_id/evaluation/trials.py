"""Trial scores of an evaluation: speakers enrolled and scored by a back end, and the cohort's scores.

A back end here is two calls, ``enroll(names, feature_lists)`` and
``score(names, feature_arrays) -> (n_utterances, n_models)``; the GMM and the
i-vector back ends implement them, and :func:`cohort_scores` builds the
score-normalisation cohort from the training speakers with either.
"""

from __future__ import annotations

import numpy as np

from streamgmm import accumulate

from .. import scoring
from ..models.adaptation import map_adapt, speaker_stats

BACKENDS = ("gmm", "ivector")


class GmmTrials:
    """Speakers as MAP-adapted GMMs, scored by the average frame LLR against the UBM."""

    def __init__(self, ubm, relevance_factor, adapt, top_c):
        self.ubm, self.relevance_factor, self.adapt, self.top_c = ubm, relevance_factor, adapt, top_c
        self.models = {}

    def enroll(self, names, feature_lists):
        for name, feats in zip(names, feature_lists):
            self.models[name] = map_adapt(self.ubm, speaker_stats(self.ubm, feats), self.relevance_factor, self.adapt)

    def score(self, names, feature_arrays):
        """Shape (n_utterances, n_models)."""
        scorer = scoring.SpeakerScorer(self.ubm, {name: self.models[name] for name in names}, top_c=self.top_c)
        return np.array([scorer.score(X) for X in feature_arrays]).reshape(len(feature_arrays), len(names))


class IvectorTrials:
    """Speakers as sums of processed i-vectors, scored by PLDA (or cosine)."""

    def __init__(self, ubm, backend):
        self.ubm, self.backend = ubm, backend
        self.models = {}

    def _vectors(self, feature_arrays):
        return self.backend.vectors([accumulate(self.ubm, X) for X in feature_arrays])

    def enroll(self, names, feature_lists):
        for name, feats in zip(names, feature_lists):
            self.models[name] = self.backend.enrollment(self._vectors(feats))

    def score(self, names, feature_arrays):
        """Shape (n_utterances, n_models)."""
        sums = np.array([self.models[name][0] for name in names])
        counts = [self.models[name][1] for name in names]
        return self.backend.score(sums, counts, self._vectors(feature_arrays))


COHORTS = ("train", "enrolled")


def cohort_scores(split, speakers, features, raw, trials, cohort, norm):
    """The cohort score matrices :func:`normalise_scores` takes, as keyword arguments.

    ``trials.enroll(names, feature_lists)`` adds models;
    ``trials.score(names, feature_arrays)`` scores utterances against models,
    shape (n_utterances, n_models). Returns the arguments and the cohort's size.
    """
    if norm == "none":
        return {}, 0
    if cohort == "enrolled":
        # the optimistic cohort of closed sets: the other enrolled speakers and their enrollment audio
        enroll_utts = [u for s in speakers for u in split.enroll[s]]
        impostors = trials.score(speakers, [features[u.path] for u in enroll_utts])
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
    trials.enroll(names, [[features[u.path] for u in by_speaker[s]] for s in names])
    impostor_features = [features[u.path] for u in split.train]
    out = {"impostor_scores": trials.score(speakers, impostor_features),
           "cohort_scores": trials.score(names, [features[u.path] for u in split.test])}
    if norm == "ztnorm":
        cohort_impostors = trials.score(names, impostor_features)
        cohort_impostors[np.array([u.speaker for u in split.train])[:, None] == np.array(names)[None, :]] = np.nan
        out["cohort_impostor_scores"] = cohort_impostors
    return out, len(names)
