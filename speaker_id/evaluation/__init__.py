"""Evaluation: corpora and protocols in, verification and identification figures out.

In flow order:

* :mod:`~speaker_id.evaluation.corpora`: corpus readers (audio folders, FSDD, LibriSpeech, Kaldi data directories).
* :mod:`~speaker_id.evaluation.trials`: enrolling and scoring with the GMM or i-vector back end; the training cohort.
* :mod:`~speaker_id.evaluation.protocols`: :func:`evaluate`, a protocol run end to end (UBM, enrollment, trials).
* :mod:`~speaker_id.evaluation.metrics`: EER, minDCF, DET points, identification accuracy.
* :mod:`~speaker_id.evaluation.plots`: DET plots as PNG files.
"""

from .metrics import det_curve, eer, identification_accuracy, min_dcf
from .protocols import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "det_curve", "eer", "evaluate", "identification_accuracy", "min_dcf"]
