"""The models: frames -> statistics -> models.

In flow order:

* :mod:`~speaker_id.models.ubm`: the universal background model, by out-of-core or online EM over the training frames.
* :mod:`~speaker_id.models.adaptation`: a speaker's statistics under the UBM and its MAP-adapted GMM.
* :mod:`~speaker_id.models.model_files`: one pickle-free ``.npz`` file per model (``save`` / ``load``).
* :mod:`~speaker_id.models.ivector`: the total-variability model, i-vectors from the same statistics.
* :mod:`~speaker_id.models.plda`: length normalisation, LDA, two-covariance PLDA, cosine scores.
* :mod:`~speaker_id.models.ivector_backend`: the i-vector back end as one model (extractor, LDA, PLDA).
* :mod:`~speaker_id.models.isv`: inter-session variability (session-compensated MAP); measured, not used by default.

Every model here is trained from the UBM's additive statistics.
"""

from .adaptation import map_adapt, speaker_stats
from .ivector import IvectorExtractor
from .ivector_backend import IvectorBackend
from .plda import LDA, PLDA, length_normalize
from .ubm import fit_ubm, train_ubm

__all__ = ["IvectorBackend", "IvectorExtractor", "LDA", "PLDA", "fit_ubm", "length_normalize", "map_adapt",
           "speaker_stats", "train_ubm"]
