"""speaker_id: GMM-UBM speaker recognition on streamgmm's additive statistics.

Data flow one way, audio -> frames -> statistics -> models -> scores ->
decisions; each subpackage uses only those above it in this list:

* :mod:`~speaker_id.frontend`: audio files and live sources -> MFCCs, deltas, VAD, CMVN (offline and streaming).
* :mod:`~speaker_id.models`: frames -> UBM statistics -> the UBM and MAP-adapted speaker models.
* :mod:`~speaker_id.store`: the UBM and the speakers' statistics on disk (manifest, atomic files, locking).
* :mod:`~speaker_id.scoring`: log-likelihood ratios, score normalisation, decisions, live stream scoring.
* :mod:`~speaker_id.operations`: enroll, verify and identify audio files against a store.
* :mod:`~speaker_id.evaluation`: corpus readers, protocols, metrics (EER, minDCF, DET).
* :mod:`~speaker_id.demo`: synthetic voices through the whole pipeline.
* :mod:`~speaker_id.cli`: the ``speaker-id`` command; parses arguments and prints, computes nothing.
"""

from ._lazy import lazy_exports

# Names are imported on first use (PEP 562), so that importing one module of the package (an
# extraction worker imports speaker_id.frontend.extraction) does not import all of it: the models
# and scoring bring scikit-learn and Numba, about a second and a half of every worker's start-up.
_EXPORTS = {
    "AudioError": ".frontend",
    "FeatureConfig": ".frontend",
    "FeatureError": ".frontend",
    "StreamingFeatureExtractor": ".frontend",
    "extract": ".frontend",
    "extract_file": ".frontend",
    "extract_files": ".frontend",
    "load_audio": ".frontend",
    "fit_ubm": ".models",
    "map_adapt": ".models",
    "speaker_stats": ".models",
    "train_ubm": ".models",
    "SpeakerScorer": ".scoring",
    "StreamScorer": ".scoring",
    "identify": ".scoring",
    "llr": ".scoring",
    "verify": ".scoring",
    "SpeakerStore": ".store",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

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
