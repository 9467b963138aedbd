"""Scoring: models + frames -> scores -> decisions.

In flow order:

* :mod:`~speaker_id.scoring.likelihood_ratio`: the log-likelihood ratio of an utterance against one speaker, top-C or exact.
* :mod:`~speaker_id.scoring.scorer`: :class:`SpeakerScorer`, one utterance against many speakers at once.
* :mod:`~speaker_id.scoring.normalization`: Z-, T-, ZT- and S-norm from cohort scores.
* :mod:`~speaker_id.scoring.decisions`: accept or reject a claim, name the best speaker.
* :mod:`~speaker_id.scoring.stream_scores`: what each back end keeps of a stream's frames, and its window scores.
* :mod:`~speaker_id.scoring.stream`: :class:`StreamScorer`, live window scores, decisions and change events.
"""

from .decisions import identify, verify
from .likelihood_ratio import llr, top_components
from .normalization import normalise_scores, snorm, tnorm, znorm, ztnorm
from .scorer import SpeakerScorer
from .stream import DecisionEvent, StreamScorer, StreamUpdate

__all__ = [
    "DecisionEvent",
    "SpeakerScorer",
    "StreamScorer",
    "StreamUpdate",
    "identify",
    "llr",
    "normalise_scores",
    "snorm",
    "tnorm",
    "top_components",
    "verify",
    "znorm",
    "ztnorm",
]
