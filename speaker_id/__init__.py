"""speaker_id: GMM-UBM speaker recognition on streamgmm.

audio -> :mod:`~speaker_id.features` (MFCC, deltas, VAD, CMVN) ->
:mod:`~speaker_id.ubm` (background model by out-of-core EM) ->
:mod:`~speaker_id.enroll` (MAP-adapted speakers, kept as statistics in a
:mod:`~speaker_id.store`) -> :mod:`~speaker_id.scoring` (log-likelihood
ratios, top-C, score normalisation) -> decisions and :mod:`~speaker_id.metrics`.
The ``speaker-id`` command (:mod:`~speaker_id.cli`) drives
:mod:`~speaker_id.pipeline`.
"""

from .audio import AudioError, load_audio
from .enroll import map_adapt, speaker_stats
from .features import FeatureConfig, FeatureError, extract, extract_file, extract_files
from .scoring import SpeakerScorer, identify, llr, verify
from .store import SpeakerStore
from .ubm import train_ubm

__all__ = [
    "AudioError",
    "FeatureConfig",
    "FeatureError",
    "SpeakerScorer",
    "SpeakerStore",
    "extract",
    "extract_file",
    "extract_files",
    "identify",
    "llr",
    "load_audio",
    "map_adapt",
    "speaker_stats",
    "train_ubm",
    "verify",
]
