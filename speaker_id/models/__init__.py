"""The models: frames -> statistics -> models.

In flow order:

* :mod:`~speaker_id.models.ubm`: the universal background model, by out-of-core or online EM over the training frames.
* :mod:`~speaker_id.models.adaptation`: a speaker's statistics under the UBM and its MAP-adapted GMM.

Every model here is trained from the UBM's additive statistics; the
i-vector extractor and PLDA, which consume the same statistics, belong here too.
"""

from .adaptation import map_adapt, speaker_stats
from .ubm import fit_ubm, train_ubm

__all__ = ["fit_ubm", "map_adapt", "speaker_stats", "train_ubm"]
