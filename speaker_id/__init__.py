"""speaker_id: GMM-UBM speaker recognition on streamgmm.

audio -> :mod:`~speaker_id.features` (MFCC, deltas, VAD, CMVN) ->
:mod:`~speaker_id.ubm` (background model by out-of-core EM) ->
:mod:`~speaker_id.enroll` (MAP-adapted speakers, kept as statistics in a
:mod:`~speaker_id.store`) -> :mod:`~speaker_id.scoring` (log-likelihood
ratios, top-C, score normalisation) -> decisions and :mod:`~speaker_id.metrics`.
Live audio: :mod:`~speaker_id.sources` (file, raw PCM pipe, microphone) ->
:mod:`~speaker_id.stream_features` (the same features, chunk by chunk) ->
:mod:`~speaker_id.stream_scoring` (window and running scores, decisions,
change events). The ``speaker-id`` command (:mod:`~speaker_id.cli`) drives
:mod:`~speaker_id.pipeline`.
"""

from .audio import AudioError, load_audio
from .enroll import map_adapt, speaker_stats
from .features import FeatureConfig, FeatureError, extract, extract_file, extract_files
from .scoring import SpeakerScorer, identify, llr, verify
from .store import SpeakerStore
from .stream_features import StreamingFeatureExtractor
from .stream_scoring import StreamScorer
from .ubm import fit_ubm, train_ubm

__all__ = [
    "AudioError",
    "FeatureConfig",
    "FeatureError",
    "SpeakerScorer",
    "SpeakerStore",
    "StreamScorer",
    "StreamingFeatureExtractor",
    "extract",
    "extract_file",
    "extract_files",
    "fit_ubm",
    "identify",
    "llr",
    "load_audio",
    "map_adapt",
    "speaker_stats",
    "train_ubm",
    "verify",
]
