"""The ``speaker-id demo``: synthetic voices through the whole pipeline, no corpus needed.

In flow order:

* :mod:`~speaker_id.demo.synth`: a source-filter voice synthesiser and corpora of synthetic speakers.
* :mod:`~speaker_id.demo.run`: the demo itself (train a UBM, enroll, identify, stream a conversation).
"""

from .run import run_demo, run_fsdd_demo

__all__ = ["run_demo", "run_fsdd_demo"]
