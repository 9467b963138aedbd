"""The speaker store: a UBM and the speakers' statistics in one directory on disk.

In flow order:

* :mod:`~speaker_id.store.errors`: one error class per cause a user can fix.
* :mod:`~speaker_id.store.names`: speaker names and the file stems they map to.
* :mod:`~speaker_id.store.manifest`: the on-disk format (file names, ``manifest.json``, the UBM fingerprint).
* :mod:`~speaker_id.store.files`: atomic writes, locking, cleaning up after crashed writers.
* :mod:`~speaker_id.store.speaker_store`: :class:`SpeakerStore`, the API: create, open, enroll, read, remove.
"""

from .errors import (
    ForeignModelError,
    InvalidSpeakerNameError,
    InvalidStoreError,
    NotAStoreError,
    StoreAccessError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    UnknownSpeakerError,
)
from .manifest import FORMAT_VERSION, ubm_fingerprint
from .names import check_speaker_name, speaker_file_stem
from .speaker_store import SpeakerStore

__all__ = [
    "FORMAT_VERSION",
    "ForeignModelError",
    "InvalidSpeakerNameError",
    "InvalidStoreError",
    "NotAStoreError",
    "SpeakerStore",
    "StoreAccessError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "UnknownSpeakerError",
    "check_speaker_name",
    "speaker_file_stem",
    "ubm_fingerprint",
]
