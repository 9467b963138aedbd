"""The front end: audio -> frames of features.

In flow order:

* :mod:`~speaker_id.frontend.audio`: audio files to mono float32 at a chosen rate.
* :mod:`~speaker_id.frontend.sources`: live audio (a file at real-time pace, raw PCM on a pipe, the microphone).
* :mod:`~speaker_id.frontend.config`: :class:`FeatureConfig`, every parameter of the front end.
* :mod:`~speaker_id.frontend.spectral`: framing, power spectra, mel filterbank, DCT.
* :mod:`~speaker_id.frontend.blas_threads`: one BLAS thread for the small products of a frame block.
* :mod:`~speaker_id.frontend.mfcc`: static MFCCs of a signal.
* :mod:`~speaker_id.frontend.deltas`: deltas and delta-deltas.
* :mod:`~speaker_id.frontend.vad`: energy voice activity detection.
* :mod:`~speaker_id.frontend.normalization`: cepstral mean and variance normalisation.
* :mod:`~speaker_id.frontend.extraction`: the whole chain on one utterance, one file, many files.
* :mod:`~speaker_id.frontend.streaming`: the same chain on a stream, chunk by chunk.
* :mod:`~speaker_id.frontend.cluster`: many files' features extracted and kept on a Dask cluster.
* :mod:`~speaker_id.frontend.augmentation`: VTLN pseudo-speakers that widen a back end's training speakers.
"""

from .._lazy import lazy_exports

from .audio import AUDIO_EXTENSIONS, AudioError, is_audio_file, load_audio
from .config import FeatureConfig, FeatureError
from .extraction import extract, extract_file, extract_files

# imported on first use (PEP 562): streaming brings Numba and streamgmm, sources the audio devices,
# which an extraction worker never needs
_LAZY = {"SourceError": ".sources", "open_source": ".sources", "StreamingFeatureExtractor": ".streaming"}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "FeatureConfig",
    "FeatureError",
    "SourceError",
    "StreamingFeatureExtractor",
    "extract",
    "extract_file",
    "extract_files",
    "is_audio_file",
    "load_audio",
    "open_source",
]
