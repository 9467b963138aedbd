"""The on-disk speaker store of a GMM-UBM system: one UBM, per-speaker statistics.

A store is a directory::

    STORE/
      manifest.json          format version, feature configuration, MAP settings,
                             UBM fingerprint, timestamps, the enrolled speakers
      ubm.npz                the UBM, exactly as ``OnlineGMM.save`` writes it
      speakers/<file>.npz    one speaker's SufficientStats (plus its name and the
                             fingerprint of the UBM they were accumulated against)
      .lock                  the lock file that serialises writers

Only statistics are stored: a speaker's model is recomputed from the UBM and
its statistics by MAP adaptation, and enrolling more audio later is adding
statistics.

Consistency rules
-----------------
* The manifest is the source of truth. A speaker exists if and only if the
  manifest lists it; any other file in ``speakers/`` is an orphan, ignored by
  readers and deleted by the next write.
* Every file is written to a temporary file in its own directory, flushed to
  disk, then renamed over its destination (``os.replace``): a reader never
  sees a half-written file.
* A speaker file the manifest refers to is never modified: every enrollment
  writes the new statistics to a *new* file name (the name carries a store-wide
  write counter), then commits the manifest that points to it, then deletes the
  old file. A crash before the manifest is committed leaves the old state
  intact plus an orphan.
* Writers hold ``filelock.FileLock(STORE/.lock)`` and re-read the manifest
  under the lock, so an enrollment made by another process in the meantime
  is never lost. Readers take no lock.
* Nothing is loaded with pickle: ``.npz`` files are read with
  ``allow_pickle=False`` and the manifest is JSON.

Replacing the UBM (``SpeakerStore.create(..., overwrite=True)`` on an existing
store) renames the new ``ubm.npz`` into place and then commits the manifest; a
crash between the two is reported by :meth:`SpeakerStore.open` as a UBM that
does not match the manifest, and running the same ``create`` again repairs it.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from streamgmm import SufficientStats
from streamgmm import load as load_model
from streamgmm.io import STATS_KIND, array, read_npz, scalar, write_npz_atomic
from streamgmm.stats import file_fields as stats_file_fields

from ..frontend.config import FeatureConfig
from ..models.adaptation import DEFAULT_RELEVANCE_FACTOR, map_adapt
from ..models.ivector_backend import BACKEND_KIND, IvectorBackend
from .errors import (
    ForeignModelError,
    InvalidStoreError,
    NotAStoreError,
    StoreExistsError,
    UnknownSpeakerError,
    _SpeakerFileMissing,
)
from .files import (
    DEFAULT_LOCK_TIMEOUT,
    _clean_orphans,
    _file_signature,
    _fsync_directory,
    _locked,
    _now,
    _write_bytes_atomic,
    open_store_file,
    store_os_errors,
)
from .manifest import (
    BACKEND_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    MAX_GENERATION,
    SPEAKERS_DIR,
    UBM_NAME,
    _check_adapt,
    _check_relevance_factor,
    _manifest_to_json,
    _parse_manifest,
    new_manifest,
    read_ubm_description,
    speaker_file_name,
    speaker_file_name_stem,
    ubm_fingerprint,
)
from .names import _HASH_CHARS, check_speaker_name, speaker_file_stem

# What a speaker's statistics file holds besides the statistics: its name and
# UBM (checked by the store, absent from files of other origin) and, in an
# i-vector store, the sum of its utterances' i-vectors and their count.
_FINGERPRINT_FIELD = scalar("str", required=False, max_chars=256)
SPEAKER_FILE_FIELDS = {
    **stats_file_fields(),
    "speaker_name": scalar("str", required=False),
    "ubm_fingerprint": _FINGERPRINT_FIELD,
    "ivector_sum": array("real", "lda_dim", required=False),
    "ivector_count": scalar("real", required=False),
}


class SpeakerStore:
    """A directory holding a UBM and the enrollment statistics of speakers.

    Open an existing store with ``SpeakerStore(path)`` or
    :meth:`SpeakerStore.open`; make a new one with :meth:`SpeakerStore.create`.
    Reading (``speakers()``, ``load_stats``, ``ubm``, ...) takes no lock and
    always sees the latest committed manifest, so a long-running scorer sees
    speakers enrolled by other processes. Writing (``enroll_stats``,
    ``remove``) takes the store's lock, re-reads the manifest under it, and
    commits atomically.

    Parameters
    ----------
    path : str or Path
        The store directory.
    lock_timeout : float, default 30.0
        Seconds a write waits for another process's write to finish before
        raising :class:`StoreLockedError`.

    Raises
    ------
    NotAStoreError
        If ``path`` does not exist, is not a directory, or holds no manifest.
    InvalidStoreError
        If the manifest is not valid JSON or of another format version, the
        UBM file is missing or unreadable, or its parameters are not those the
        manifest records (the UBM was replaced behind the store's back).
    StoreAccessError
        If the system refuses to read a store file (permissions, ...); the
        message names the file and the fix. Writes raise it too (read-only
        store, full disk, ``.lock`` not a file) and leave the store as it was.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from streamgmm import OnlineGMM, accumulate
    >>> from speaker_id.frontend import FeatureConfig
    >>> rng = np.random.default_rng(0)
    >>> ubm = OnlineGMM(n_components=4, covariance_type="diag", random_state=0).fit(rng.normal(size=(500, 3)))
    >>> path = os.path.join(tempfile.mkdtemp(), "store")
    >>> store = SpeakerStore.create(path, ubm, FeatureConfig(n_mfcc=1))
    >>> info = store.enroll_stats("Ada Lovelace", accumulate(ubm, rng.normal(size=(200, 3))), n_utterances=1)
    >>> info["n_frames"], info["n_utterances"]
    (200.0, 1)
    >>> info = store.enroll_stats("Ada Lovelace", accumulate(ubm, rng.normal(size=(100, 3))), n_utterances=1)
    >>> SpeakerStore.open(path).speakers(), store.load_stats("Ada Lovelace").n_frames
    (['Ada Lovelace'], 300.0)
    """

    def __init__(self, path, *, lock_timeout=DEFAULT_LOCK_TIMEOUT):
        root = Path(path)
        hint = f"run `speaker-id train-ubm --store {root} ...` first"
        with store_os_errors(root, "read"):
            if not root.exists():
                raise NotAStoreError(f"speaker store {root} does not exist: not a speaker store; {hint}.")
            if not root.is_dir():
                raise NotAStoreError(f"{root} is not a directory: not a speaker store; {hint}.")
            if not os.path.lexists(root / MANIFEST_NAME):
                raise NotAStoreError(f"{root} has no {MANIFEST_NAME}: not a speaker store; {hint}.")
        self._root = root
        self.lock_timeout = self._check_timeout(lock_timeout)
        self._manifest = None
        self._signature = None
        self._ubm = None  # the UBM model, loaded on first use
        self._ubm_fp = None  # its fingerprint
        self._backend = None  # the i-vector back end of an "ivector" store, loaded on first use
        self._backend_fp = None  # the fingerprint of the UBM it was loaded for
        self._ubm_verified = None  # (file signature, fingerprint) of the last verified UBM file
        self._refresh(force=True)

    @classmethod
    def open(cls, path, *, lock_timeout=DEFAULT_LOCK_TIMEOUT):
        """Open an existing store; the same as ``SpeakerStore(path)``.

        Parameters
        ----------
        path : str or Path
        lock_timeout : float, default 30.0

        Returns
        -------
        SpeakerStore

        Raises
        ------
        NotAStoreError, InvalidStoreError
            See :class:`SpeakerStore`.

        Examples
        --------
        >>> import tempfile
        >>> SpeakerStore.open(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speaker_id.store.errors.NotAStoreError: ... has no manifest.json: not a speaker store; run `speaker-id train-ubm --store ... ...` first.
        """
        return cls(path, lock_timeout=lock_timeout)

    @classmethod
    def create(
        cls,
        path,
        ubm,
        feature_config,
        relevance_factor=DEFAULT_RELEVANCE_FACTOR,
        adapt=("means",),
        overwrite=False,
        *,
        backend=None,
        lock_timeout=DEFAULT_LOCK_TIMEOUT,
    ):
        """Create a store holding ``ubm`` and no speakers.

        Parameters
        ----------
        path : str or Path
            A new or empty directory (created with its parents if needed).
        ubm : OnlineGMM or str or Path
            The fitted universal background model, or the path of its file.
        feature_config : FeatureConfig or dict
            The front end the UBM was trained on; enrollment and test audio
            must use the same. Its ``n_features`` must equal the UBM's.
        relevance_factor : float, default DEFAULT_RELEVANCE_FACTOR (4)
            MAP relevance factor used when speaker models are computed.
        adapt : str or sequence of {"weights", "means", "variances"}, default ("means",)
            Parameters MAP adaptation moves toward the speaker's statistics.
        overwrite : bool, default False
            Replace an existing store (its UBM and settings) and **drop all its
            enrolled speakers**, whose statistics belong to the old UBM; or
            create the store in a non-empty directory that is not a store
            (other files there are left alone).
        backend : IvectorBackend, optional
            The store's i-vector back end, trained on ``ubm``'s statistics:
            speakers are then scored by i-vectors and PLDA (``store.backend ==
            "ivector"``). ``None``: MAP-adapted GMMs (``"gmm"``).
        lock_timeout : float, default 30.0
            Seconds to wait for the lock, here and in the returned store.

        Returns
        -------
        SpeakerStore

        Raises
        ------
        StoreExistsError
            If ``path`` is an existing store or a non-empty directory and
            ``overwrite`` is false. When the store has speakers, the message
            says they were enrolled against the old UBM and must be re-enrolled.
        NotAStoreError
            If ``path`` exists and is not a directory.
        ValueError, TypeError
            If the UBM is not fitted, the settings are invalid, or the
            feature configuration does not give the UBM's number of features.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from streamgmm import OnlineGMM
        >>> from speaker_id.frontend import FeatureConfig
        >>> X = np.random.default_rng(0).normal(size=(500, 3))
        >>> ubm = OnlineGMM(n_components=4, covariance_type="diag", random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "store")
        >>> store = SpeakerStore.create(path, ubm, FeatureConfig(n_mfcc=3, deltas=False), relevance_factor=8)
        >>> store.relevance_factor, store.adapt, sorted(os.listdir(path))
        (8.0, ('means',), ['.lock', 'manifest.json', 'speakers', 'ubm.npz'])
        >>> SpeakerStore.create(path, ubm, store.feature_config)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speaker_id.store.errors.StoreExistsError: ... is already a speaker store; pass overwrite=True (--overwrite) to replace its UBM and settings.
        """
        if isinstance(ubm, (str, os.PathLike)):
            ubm = load_model(ubm)
        fingerprint = ubm_fingerprint(ubm)  # checks the type and that it is fitted
        if isinstance(feature_config, dict):
            feature_config = FeatureConfig.from_dict(feature_config)
        if not isinstance(feature_config, FeatureConfig):
            raise TypeError(f"feature_config must be a FeatureConfig or a dict, got {type(feature_config).__name__}.")
        n_features = int(ubm.n_features_in_)
        if feature_config.n_features != n_features:
            raise ValueError(
                f"the UBM models {n_features} features per frame but the feature configuration gives "
                f"{feature_config.n_features}; store the configuration the UBM was trained with."
            )
        relevance_factor = _check_relevance_factor(relevance_factor)
        adapt = _check_adapt(adapt)
        lock_timeout = cls._check_timeout(lock_timeout)
        if backend is not None:
            if not isinstance(backend, IvectorBackend):
                raise TypeError(f"backend must be an IvectorBackend or None, got {type(backend).__name__}.")
            backend.extractor_.check_ubm(ubm)

        root = Path(path)
        with store_os_errors(root, "write"):
            cls._create_files(root, ubm, fingerprint, feature_config, relevance_factor, adapt, overwrite, backend,
                              lock_timeout)
        store = cls(root, lock_timeout=lock_timeout)
        store._ubm, store._ubm_fp = ubm, fingerprint
        if backend is not None:
            store._backend, store._backend_fp = backend, fingerprint
        return store

    @classmethod
    def _create_files(cls, root, ubm, fingerprint, feature_config, relevance_factor, adapt, overwrite, backend,
                      lock_timeout):
        """Write the UBM, the back end and a manifest without speakers into ``root`` (see :meth:`create`)."""
        n_components, n_features = int(ubm.n_components), int(ubm.n_features_in_)
        if root.exists() and not root.is_dir():
            raise NotAStoreError(f"{root} exists and is not a directory; choose a directory for the speaker store.")
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root, lock_timeout):
            old = cls._existing_contents(root, overwrite)
            (root / SPEAKERS_DIR).mkdir(exist_ok=True)
            now = _now()
            ubm.save(root / UBM_NAME)
            _fsync_directory(root)
            written = ubm_fingerprint(root / UBM_NAME)
            if written != fingerprint:  # pragma: no cover - would be a bug in OnlineGMM.save
                raise RuntimeError("the UBM file written does not hold the UBM's parameters.")
            if backend is not None:
                write_npz_atomic(root / BACKEND_NAME, {**backend.to_arrays(), "ubm_fingerprint": np.array(fingerprint)})
                _fsync_directory(root)
            description = {"fingerprint": fingerprint, "n_components": n_components, "n_features": n_features,
                           "covariance_type": ubm.covariance_type}
            manifest = new_manifest(feature_config, relevance_factor, adapt, description,
                                    generation=_next_generation(old),
                                    created=now, updated=now, speakers={},
                                    backend="gmm" if backend is None else "ivector")
            _write_bytes_atomic(root / MANIFEST_NAME, _manifest_to_json(manifest))
            _clean_orphans(root, manifest)

    @classmethod
    def check_can_create(cls, path, overwrite=False):
        """Refuse early what :meth:`create` would refuse after the UBM is trained.

        Parameters
        ----------
        path : str or Path
        overwrite : bool, default False

        Raises
        ------
        StoreExistsError, NotAStoreError
            As :meth:`create` would.
        StoreAccessError
            If no file can be created where the store would be.
        """
        root = Path(path)
        with store_os_errors(root, "write"):
            if root.exists() and not root.is_dir():
                raise NotAStoreError(f"{root} exists and is not a directory; choose a directory for the speaker store.")
            if root.is_dir():
                cls._existing_contents(root, overwrite)
            existing = next(p for p in (root, *root.absolute().parents) if p.exists())
            if not existing.is_dir():
                raise NotAStoreError(f"{existing} is not a directory; choose another place for the speaker store.")
            with tempfile.TemporaryFile(dir=existing):
                pass

    @staticmethod
    def _existing_contents(root, overwrite):
        """Refuse to replace a non-empty directory unless ``overwrite``; return the old manifest if readable."""
        entries = sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME)
        if not entries:
            return None
        manifest_path = root / MANIFEST_NAME
        old = None
        if manifest_path.is_file():
            try:
                with open_store_file(manifest_path, root, MANIFEST_NAME) as handle:
                    old = _parse_manifest(handle.read(), root)
            except InvalidStoreError:
                old = None
        if overwrite:
            return old
        if old is not None and old["speakers"]:
            names = sorted(old["speakers"])
            shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
            raise StoreExistsError(
                f"{root} is a speaker store with {len(names)} enrolled speaker(s) ({shown}). They were "
                "enrolled against its current UBM and must be re-enrolled if the UBM is replaced. "
                "Pass overwrite=True (--overwrite) to replace the UBM and drop them."
            )
        if manifest_path.exists():
            raise StoreExistsError(
                f"{root} is already a speaker store; pass overwrite=True (--overwrite) to replace its UBM and settings."
            )
        raise StoreExistsError(
            f"{root} is a non-empty directory ({len(entries)} entries) and not a speaker store; choose a new or "
            "empty directory, or pass overwrite=True to create the store in it anyway (other files are left alone)."
        )

    # ------------------------------------------------------------ properties
    @property
    def path(self):
        """The store directory (:class:`pathlib.Path`)."""
        return self._root

    @property
    def ubm(self):
        """The universal background model (:class:`~streamgmm.OnlineGMM`), loaded on first use.

        Raises
        ------
        InvalidStoreError
            If the UBM file is missing, unreadable, or not the one the
            manifest records.
        """
        manifest = self._current()
        expected = manifest["ubm"]["fingerprint"]
        if self._ubm is None or self._ubm_fp != expected:
            path = self._root / UBM_NAME
            if not path.is_file():
                raise self._missing_ubm()
            self._check_readable(path, "UBM file")
            try:
                model = load_model(path)
            except (ValueError, TypeError) as exc:
                raise InvalidStoreError(
                    f"the UBM of speaker store {self._root} is unreadable ({exc}); {self._ubm_fix()}."
                ) from None
            found = ubm_fingerprint(model)
            if found != expected:
                raise self._replaced_ubm(found, expected)
            self._ubm, self._ubm_fp = model, expected
        return self._ubm

    @property
    def backend(self):
        """How speakers are modelled and scored: ``"gmm"`` (MAP-adapted GMMs) or ``"ivector"``."""
        return self._current()["backend"]

    @property
    def ivector_backend(self):
        """The :class:`~speaker_id.models.ivector_backend.IvectorBackend` of an ``"ivector"`` store.

        Raises
        ------
        ValueError
            If the store's back end is ``"gmm"``.
        InvalidStoreError
            If ``backend.npz`` is missing, unreadable, or of another UBM.
        """
        manifest = self._current()
        if manifest["backend"] != "ivector":
            raise ValueError(
                f"speaker store {self._root} uses the {manifest['backend']} back end, not ivector; "
                "train a store with `speaker-id train-ubm --backend ivector` to score i-vectors."
            )
        expected = manifest["ubm"]["fingerprint"]
        if self._backend is None or self._backend_fp != expected:
            path = self._root / BACKEND_NAME
            fix = f"rebuild the store with `speaker-id train-ubm --store {self._root} --backend ivector --overwrite`"
            if not path.is_file():
                raise InvalidStoreError(f"speaker store {self._root} has no {BACKEND_NAME}; {fix}.")
            self._check_readable(path, "back-end file")
            try:
                source = f"back-end file {path}"
                fields = {**IvectorBackend.file_fields(), "ubm_fingerprint": _FINGERPRINT_FIELD}
                arrays = read_npz(path, fields, kind=BACKEND_KIND, source=source)
                backend = IvectorBackend.from_arrays(arrays, source=source)
            except (ValueError, TypeError) as exc:
                raise InvalidStoreError(f"{exc} The store's back end is unusable: {fix}.") from None
            stored = str(arrays["ubm_fingerprint"]) if "ubm_fingerprint" in arrays else None
            if stored != expected:
                raise ForeignModelError(
                    f"the back-end file {path} belongs to another UBM than the store's ({expected[:12]}...): {fix}."
                )
            self._backend, self._backend_fp = backend, expected
        return self._backend

    @property
    def fingerprint(self):
        """The UBM fingerprint the manifest records (see :func:`ubm_fingerprint`)."""
        return self._current()["ubm"]["fingerprint"]

    @property
    def feature_config(self):
        """The :class:`~speaker_id.frontend.FeatureConfig` of the UBM's features."""
        return FeatureConfig.from_dict(self._current()["feature_config"])

    @property
    def relevance_factor(self):
        """MAP relevance factor (float)."""
        return float(self._current()["map"]["relevance_factor"])

    @property
    def adapt(self):
        """Parameters MAP adaptation moves, a tuple drawn from ``("weights", "means", "variances")``."""
        return tuple(self._current()["map"]["adapt"])

    @property
    def created(self):
        """When the store (its current UBM) was created, ISO 8601 UTC."""
        return self._current()["created"]

    @property
    def updated(self):
        """When the store was last written, ISO 8601 UTC."""
        return self._current()["updated"]

    def speakers(self):
        """Names of the enrolled speakers, sorted.

        Returns
        -------
        list of str
        """
        return sorted(self._current()["speakers"])

    def __contains__(self, name):
        try:
            name = check_speaker_name(name)
        except (TypeError, ValueError):
            return False
        return name in self._current()["speakers"]

    def __len__(self):
        return len(self._current()["speakers"])

    def __iter__(self):
        return iter(self.speakers())

    def __repr__(self):
        return f"SpeakerStore({str(self._root)!r}, speakers={len(self)})"

    def info(self, name):
        """The manifest entry of a speaker.

        Parameters
        ----------
        name : str

        Returns
        -------
        dict
            ``name``, ``file`` (in ``speakers/``), ``n_frames`` (float),
            ``n_utterances`` (int), ``updated`` (ISO 8601 UTC) and
            ``ubm_fingerprint``.

        Raises
        ------
        UnknownSpeakerError
            If no such speaker is enrolled; the message lists close names.
        """
        name = check_speaker_name(name)
        manifest = self._current()
        entry = manifest["speakers"].get(name)
        if entry is None:
            raise self._unknown(name, manifest)
        return dict(name=name, **entry)

    # --------------------------------------------------------------- reading
    def load_stats(self, name):
        """The enrollment statistics of a speaker, validated against the UBM.

        Parameters
        ----------
        name : str

        Returns
        -------
        SufficientStats

        Raises
        ------
        UnknownSpeakerError
            If no such speaker is enrolled (a ``KeyError``); the message lists
            close names.
        ForeignModelError
            If the statistics were accumulated against another UBM than the
            store's (re-enroll the speaker with ``mode="replace"``).
        InvalidStoreError
            If the speaker file is missing, truncated, of another kind, holds
            non-finite values, no frames, counts that disagree with the
            manifest or with each other, or was written for another speaker.
        StoreAccessError
            If the system refuses to read it.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from streamgmm import OnlineGMM, accumulate
        >>> from speaker_id.frontend import FeatureConfig
        >>> rng = np.random.default_rng(0)
        >>> ubm = OnlineGMM(n_components=4, covariance_type="diag", random_state=0).fit(rng.normal(size=(500, 3)))
        >>> store = SpeakerStore.create(os.path.join(tempfile.mkdtemp(), "s"), ubm, FeatureConfig(n_mfcc=1))
        >>> _ = store.enroll_stats("alice", accumulate(ubm, rng.normal(size=(50, 3))), n_utterances=1)
        >>> store.load_stats("alice").n_frames
        50.0
        >>> store.load_stats("alise")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speaker_id.store.errors.UnknownSpeakerError: no speaker 'alise' in the store ...; did you mean 'alice'?
        """
        return self._load_speaker(name)[0]

    def _load_speaker(self, name):
        """(statistics, the file's arrays) of an enrolled speaker; see :meth:`load_stats`."""
        name = check_speaker_name(name)
        for _attempt in range(5):
            manifest = self._current()
            entry = manifest["speakers"].get(name)
            if entry is None:
                raise self._unknown(name, manifest)
            try:
                return self._read_speaker(manifest, name, entry)
            except _SpeakerFileMissing as exc:
                # A concurrent writer may have committed a newer file and removed
                # this one after we read the manifest: look again.
                missing = exc
                if self._refresh():
                    continue
                raise InvalidStoreError(str(exc)) from None
        raise InvalidStoreError(str(missing)) from None

    def speaker_model(self, name):
        """The MAP-adapted GMM of an enrolled speaker (UBM moved toward its statistics).

        Parameters
        ----------
        name : str

        Returns
        -------
        OnlineGMM
            :func:`~speaker_id.models.adaptation.map_adapt` of the speaker's
            statistics with the store's ``relevance_factor`` and ``adapt``.

        Raises
        ------
        UnknownSpeakerError, ForeignModelError, InvalidStoreError
            As :meth:`load_stats`.
        """
        return map_adapt(self.ubm, self.load_stats(name), self.relevance_factor, self.adapt)

    def speaker_enrollment(self, name):
        """An enrolled speaker of an ``"ivector"`` store: the sum of its utterances' i-vectors and their count.

        What :meth:`IvectorBackend.score <speaker_id.models.ivector_backend.IvectorBackend.score>`
        takes; enrolling more audio later adds to both. A speaker enrolled
        before the store kept vector sums (no ``ivector_sum`` in its file) is
        the i-vector of its pooled statistics, counted once.

        Returns
        -------
        vector_sum : ndarray of shape (lda_dim,)
        count : int

        Raises
        ------
        ValueError
            If the store's back end is ``"gmm"``.
        UnknownSpeakerError, ForeignModelError, InvalidStoreError
            As :meth:`load_stats`, or if the vector sum does not fit the back end.
        """
        backend = self.ivector_backend
        stats, arrays = self._load_speaker(name)
        return self._vector_sum(backend, stats, arrays, check_speaker_name(name))

    def _vector_sum(self, backend, stats, arrays, name):
        if "ivector_sum" not in arrays:
            return backend.vectors([stats])[0], 1
        fix = _speaker_fix(name)
        vector_sum, count = arrays["ivector_sum"], arrays.get("ivector_count")
        if (vector_sum.shape != (backend.lda_dim_,) or vector_sum.dtype.kind != "f"
                or not np.isfinite(vector_sum).all()):
            raise InvalidStoreError(
                f"the statistics file of speaker {name!r} holds an i-vector sum of shape {vector_sum.shape} "
                f"({vector_sum.dtype}) where the back end gives {backend.lda_dim_} finite values: {fix}."
            )
        if count is None or count.shape != () or count.dtype.kind not in "iu" or not 1 <= int(count) <= 2**53:
            raise InvalidStoreError(
                f"the statistics file of speaker {name!r} holds no valid i-vector count (a positive integer): {fix}."
            )
        return vector_sum.astype(np.float64), int(count)

    def _read_speaker(self, manifest, name, entry):
        root_fp = manifest["ubm"]["fingerprint"]
        fix = _speaker_fix(name)
        if entry["ubm_fingerprint"] != root_fp:
            raise ForeignModelError(
                f"the speaker model of {name!r} in store {self._root} belongs to another UBM (fingerprint "
                f"{entry['ubm_fingerprint'][:12]}..., the store's is {root_fp[:12]}...); it must be re-enrolled: {fix}."
            )
        path = self._root / SPEAKERS_DIR / entry["file"]
        if not path.is_file():
            self._check_speakers_directory()
            raise _SpeakerFileMissing(
                f"the statistics file {path} of speaker {name!r} is missing; the store is damaged: {fix}."
            )
        self._check_readable(path, "statistics file")
        try:
            source = f"statistics file {path}"
            arrays = read_npz(path, SPEAKER_FILE_FIELDS, kind=STATS_KIND, source=source)
            stats = SufficientStats.from_arrays(arrays, source=source)
        except (ValueError, TypeError) as exc:
            if not path.is_file():
                raise _SpeakerFileMissing(
                    f"the statistics file {path} of speaker {name!r} is missing; the store is damaged: {fix}."
                ) from None
            raise InvalidStoreError(f"speaker {name!r}: {exc} The store's copy is unusable: {fix}.") from None
        stored_fp = str(arrays["ubm_fingerprint"]) if "ubm_fingerprint" in arrays else None
        if stored_fp != root_fp:
            origin = "carries no UBM fingerprint" if stored_fp is None else f"was accumulated against UBM {stored_fp[:12]}..."
            raise ForeignModelError(
                f"the statistics file {path} of speaker {name!r} {origin}, not this store's UBM "
                f"{root_fp[:12]}...: the speaker model belongs to another UBM and must be re-enrolled: {fix}."
            )
        stored_name = str(arrays["speaker_name"]) if "speaker_name" in arrays else None
        if stored_name != name:
            raise InvalidStoreError(
                f"the statistics file {path} holds speaker {stored_name!r}, not {name!r}; the store is damaged: {fix}."
            )
        what = f"the statistics file {path} of speaker {name!r}"
        self._check_stats(stats, manifest, what=what, fix=fix)
        self._check_against_entry(stats, arrays, entry, what, fix)
        return stats, arrays

    @staticmethod
    def _check_against_entry(stats, arrays, entry, what, fix):
        """Cross-check what the manifest and the speaker's file both say: frames, utterances, i-vectors."""
        if not stats.n_frames > 0:
            raise InvalidStoreError(f"{what} holds no frames: a speaker without statistics can never be scored: {fix}.")
        if not np.isclose(stats.n_frames, entry["n_frames"], rtol=1e-9, atol=1e-6):
            raise InvalidStoreError(
                f"{what} holds {stats.n_frames:.6g} frames but the manifest records {entry['n_frames']:.6g}; one "
                f"of them was altered: {fix}."
            )
        if entry["n_utterances"] < 1:
            raise InvalidStoreError(f"the manifest records no utterance for {what}: {fix}.")
        count = arrays.get("ivector_count")
        if (count is not None and count.shape == () and count.dtype.kind in "iu"
                and int(count) > entry["n_utterances"]):
            raise InvalidStoreError(
                f"{what} holds the i-vectors of {int(count)} utterances but the manifest records "
                f"{entry['n_utterances']}; one of them was altered: {fix}."
            )

    def _check_stats(self, stats, manifest, what, fix, invalid=InvalidStoreError):
        ubm = manifest["ubm"]
        layout = "diag" if ubm["covariance_type"] in ("diag", "spherical") else "full"
        k, d = ubm["n_components"], ubm["n_features"]
        if (stats.n_components, stats.n_features, stats.layout) != (k, d, layout):
            raise ForeignModelError(
                f"{what} has {stats.n_components} components x {stats.n_features} features ({stats.layout}) "
                f"but the store's UBM has {k} x {d} ({layout}): the speaker model belongs to another UBM "
                f"and must be re-enrolled: {fix}."
            )
        values = (stats.zeroth, stats.first, stats.second, stats.shift, stats.log_likelihood, stats.n_frames)
        if not all(np.isfinite(v).all() for v in values):
            raise invalid(f"{what} holds non-finite values: {fix}.")
        if np.any(stats.zeroth < 0) or stats.n_frames < 0:
            raise invalid(f"{what} holds negative counts: {fix}.")
        counted = float(stats.zeroth.sum())
        if not np.isclose(counted, stats.n_frames, rtol=1e-6, atol=1e-6):
            raise invalid(
                f"{what} holds soft counts summing to {counted:.6g} for {stats.n_frames:.6g} frames (each frame "
                f"counts once): they are not a UBM's statistics: {fix}."
            )

    # --------------------------------------------------------------- writing
    def enroll_stats(self, name, stats, n_utterances=1, mode="add", *, vectors=None, ubm_fingerprint=None):
        """Store a speaker's statistics, adding them to any already enrolled.

        Under the store's lock: re-read the manifest, read the speaker's
        current statistics (``mode="add"``), write the sum (or the new
        statistics, ``mode="replace"``) to a new file, commit the manifest,
        delete the previous file. Enrolling more audio later is adding its
        statistics.

        Parameters
        ----------
        name : str
            Any non-empty text without control characters.
        stats : SufficientStats
            Statistics of the new enrollment audio under the store's UBM
            (``streamgmm.accumulate(store.ubm, frames)``).
        n_utterances : int, default 1
            Number of utterances ``stats`` were accumulated over.
        mode : {"add", "replace"}, default "add"
            ``"add"`` sums with the statistics already enrolled (a new
            speaker simply starts from them); ``"replace"`` discards them,
            which is how a speaker of another UBM is re-enrolled.
        vectors : ndarray of shape (n_utterances, lda_dim), optional
            ``"ivector"`` stores only, and required there: the processed
            i-vector of each enrollment utterance
            (``store.ivector_backend.vectors(per-utterance statistics)``);
            their sum and count are added to the speaker's.
        ubm_fingerprint : str, optional
            Fingerprint of the UBM ``stats`` were accumulated against; if
            given it must be the store's.

        Returns
        -------
        dict
            The speaker's new manifest entry (see :meth:`info`).

        Raises
        ------
        ForeignModelError
            If ``stats`` do not have the UBM's shape, ``ubm_fingerprint``
            differs from the store's, the UBM was replaced since this store
            object read it, or (``mode="add"``) the enrolled statistics belong
            to another UBM.
        InvalidStoreError
            If ``mode="add"`` and the enrolled statistics are unreadable
            (re-enroll with ``mode="replace"``).
        StoreLockedError
            If another process holds the lock for longer than ``lock_timeout``.
        StoreAccessError
            If the system refuses the write (read-only store, full disk, ...);
            nothing is changed.
        ValueError
            If ``stats`` hold non-finite values, no frames, or soft counts that
            do not sum to the frame count, or the name is invalid.
        """
        name = check_speaker_name(name)
        if mode not in ("add", "replace"):
            raise ValueError(f"mode must be 'add' or 'replace', got {mode!r}.")
        if isinstance(n_utterances, bool) or not isinstance(n_utterances, numbers.Integral) or n_utterances < 1:
            raise ValueError(f"n_utterances must be a positive integer, got {n_utterances!r}.")
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"stats must be streamgmm.SufficientStats, got {type(stats).__name__}.")
        seen = self._current()
        expected_fp = seen["ubm"]["fingerprint"]
        if ubm_fingerprint is not None and ubm_fingerprint != expected_fp:
            raise ForeignModelError(
                f"the statistics for {name!r} were accumulated against UBM {str(ubm_fingerprint)[:12]}..., "
                f"not the store's UBM {expected_fp[:12]}...; accumulate them with the store's UBM (store.ubm)."
            )
        what = f"the statistics given for {name!r}"
        if not stats.n_frames > 0:
            raise ValueError(f"{what} cover no frames; there is nothing to enroll (did the VAD drop every frame?).")
        self._check_stats(
            stats, seen, what=what, fix="accumulate them with the store's UBM (store.ubm)", invalid=ValueError
        )
        backend = self.ivector_backend if seen["backend"] == "ivector" else None
        if backend is None and vectors is not None:
            raise ValueError(f"store {self._root} uses the gmm back end, which keeps no i-vectors; "
                             "enroll the statistics without vectors.")
        if backend is not None:
            if vectors is None:
                raise ValueError(f"store {self._root} uses the ivector back end: pass vectors=, the i-vector "
                                 "of each enrollment utterance (store.ivector_backend.vectors(statistics)).")
            vectors = np.asarray(vectors, dtype=np.float64)
            if vectors.shape != (n_utterances, backend.lda_dim_) or not np.isfinite(vectors).all():
                raise ValueError(f"vectors must be {n_utterances} finite i-vectors of {backend.lda_dim_} "
                                 f"values (one per utterance), got shape {vectors.shape}.")

        with self._transaction() as manifest:
            self._check_speakers_directory()
            if manifest["ubm"]["fingerprint"] != expected_fp:
                raise ForeignModelError(
                    f"the UBM of store {self._root} was replaced by another process while {name!r} was being "
                    "enrolled; the statistics belong to the old UBM: re-open the store and accumulate them again."
                )
            old = manifest["speakers"].get(name)
            vector_sum, vector_count = (vectors.sum(axis=0), len(vectors)) if backend is not None else (None, 0)
            if mode == "add" and old is not None:
                old_stats, old_arrays = self._read_speaker(manifest, name, old)
                total = old_stats + stats
                n_total = old["n_utterances"] + int(n_utterances)
                if backend is not None:
                    old_sum, old_count = self._vector_sum(backend, old_stats, old_arrays, name)
                    vector_sum, vector_count = old_sum + vector_sum, old_count + vector_count
            else:
                total, n_total = stats.copy(), int(n_utterances)
            generation = manifest["generation"] + 1
            stem = speaker_file_name_stem(old["file"]) if old is not None else self._new_stem(name, manifest)
            file_name = speaker_file_name(stem, generation)
            arrays = total.to_arrays()
            arrays["speaker_name"] = np.array(name)
            arrays["ubm_fingerprint"] = np.array(expected_fp)
            if backend is not None:
                arrays["ivector_sum"], arrays["ivector_count"] = vector_sum, np.array(vector_count, dtype=np.int64)
            write_npz_atomic(self._root / SPEAKERS_DIR / file_name, arrays)
            now = _now()
            entry = {
                "file": file_name,
                "n_frames": float(total.n_frames),
                "n_utterances": n_total,
                "updated": now,
                "ubm_fingerprint": expected_fp,
            }
            new = copy.deepcopy(manifest)
            new["speakers"][name] = entry
            new["generation"], new["updated"] = generation, now
            self._commit(new)
        return dict(name=name, **entry)

    def remove(self, name):
        """Remove a speaker from the store (manifest first, then its file).

        Parameters
        ----------
        name : str

        Raises
        ------
        UnknownSpeakerError
            If no such speaker is enrolled.
        StoreLockedError
            If another process holds the lock for longer than ``lock_timeout``.
        """
        name = check_speaker_name(name)
        with self._transaction() as manifest:
            if name not in manifest["speakers"]:
                raise self._unknown(name, manifest)
            new = copy.deepcopy(manifest)
            del new["speakers"][name]
            new["generation"] += 1
            new["updated"] = _now()
            self._commit(new)

    # ------------------------------------------------------------- internals
    @staticmethod
    def _check_timeout(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or value < 0:
            raise ValueError(f"lock_timeout must be a number of seconds >= 0, got {value!r}.")
        return float(value)

    def _new_stem(self, name, manifest):
        used = {speaker_file_name_stem(entry["file"]) for entry in manifest["speakers"].values()}
        for chars in (_HASH_CHARS, 20, 32, 64):
            stem = speaker_file_stem(name, chars)
            if stem not in used:
                return stem
        raise InvalidStoreError(f"no free file name for speaker {name!r}; the manifest is damaged.")  # pragma: no cover

    def _refresh(self, force=False):
        """Re-read the manifest if it changed on disk, check the UBM file; return whether it changed."""
        path = self._root / MANIFEST_NAME
        with store_os_errors(self._root, "read"):
            try:
                if not force and self._signature is not None:
                    if _file_signature(os.stat(path)) == self._signature:
                        self._verify_ubm_file(self._manifest["ubm"])
                        return False
                with open_store_file(path, self._root, MANIFEST_NAME) as handle:
                    signature = _file_signature(os.fstat(handle.fileno()))
                    data = handle.read()
            except FileNotFoundError:
                raise NotAStoreError(
                    f"{self._root} has no {MANIFEST_NAME} any more: not a speaker store; "
                    f"run `speaker-id train-ubm --store {self._root} ...` first."
                ) from None
            manifest = _parse_manifest(data, self._root)
            self._verify_ubm_file(manifest["ubm"])
        changed = manifest != self._manifest
        self._manifest, self._signature = manifest, signature
        return changed

    def _current(self):
        self._refresh()
        return self._manifest

    def _verify_ubm_file(self, recorded):
        """Check that ubm.npz holds the UBM the manifest describes (hashed again only if the file changed).

        ``recorded`` is the manifest's ``ubm`` entry: fingerprint, components,
        features and covariance type.
        """
        expected = recorded["fingerprint"]
        path = self._root / UBM_NAME
        try:
            signature = _file_signature(os.stat(path))
        except FileNotFoundError:
            raise self._missing_ubm() from None
        if self._ubm_verified == (signature, expected):
            return
        self._check_readable(path, "UBM file")
        try:
            found = read_ubm_description(path)
        except ValueError as exc:
            raise InvalidStoreError(
                f"the UBM of speaker store {self._root} is unreadable ({exc}); {self._ubm_fix()}."
            ) from None
        if found["fingerprint"] != expected:
            raise self._replaced_ubm(found["fingerprint"], expected)
        differ = [key for key in ("n_components", "n_features", "covariance_type") if found[key] != recorded[key]]
        if differ:
            said = ", ".join(f"{key} {recorded[key]!r}" for key in differ)
            held = ", ".join(f"{key} {found[key]!r}" for key in differ)
            raise InvalidStoreError(
                f"the manifest of speaker store {self._root} records a UBM with {said} but {UBM_NAME} has {held}; "
                f"the manifest was altered: restore it from a backup, or rebuild the store with `speaker-id "
                f"train-ubm --store {self._root} --overwrite` and re-enroll the speakers."
            )
        self._ubm_verified = (signature, expected)

    def _check_readable(self, path, what):
        """Open and close a store file, so that a FIFO, a device or a permission problem is named as such.

        (A file reader would otherwise say "not a zip archive", or wait forever on a FIFO.)
        """
        with store_os_errors(self._root, "read"):
            open_store_file(path, self._root, what).close()

    def _check_speakers_directory(self):
        directory = self._root / SPEAKERS_DIR
        if not directory.is_dir():
            raise InvalidStoreError(
                f"speaker store {self._root} has no {SPEAKERS_DIR}/ directory, where speakers are kept; the store "
                f"is damaged: restore it from a backup, or create the directory (mkdir {directory}) and re-enroll "
                "the speakers it held."
            )

    def _ubm_fix(self):
        return (
            f"put the original {UBM_NAME} back, or rebuild the store with "
            f"`speaker-id train-ubm --store {self._root} --overwrite` and re-enroll the speakers"
        )

    def _missing_ubm(self):
        return InvalidStoreError(f"speaker store {self._root} has no UBM file {UBM_NAME}; {self._ubm_fix()}.")

    def _replaced_ubm(self, found, expected):
        return InvalidStoreError(
            f"the UBM file {self._root / UBM_NAME} was replaced behind the store's back: its parameters "
            f"(fingerprint {found[:12]}...) are not those of the UBM the manifest records ({expected[:12]}...), "
            f"against which the speakers were enrolled; {self._ubm_fix()}."
        )

    def _unknown(self, name, manifest):
        names = sorted(manifest["speakers"])
        folded = {}
        for n in names:
            folded.setdefault(n.casefold(), n)
        close = [folded[m] for m in difflib.get_close_matches(name.casefold(), list(folded), n=5, cutoff=0.6)]
        message = f"no speaker {name!r} in the store {self._root}"
        if close:
            message += "; did you mean " + ", ".join(repr(c) for c in close) + "?"
        elif names:
            shown = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
            message += f"; enrolled speakers: {shown}."
        else:
            message += "; no speaker is enrolled yet."
        return UnknownSpeakerError(message, name=name, close_matches=close)

    @contextmanager
    def _transaction(self):
        """Hold the store's lock and yield the manifest as re-read under it; word the system's refusals."""
        with store_os_errors(self._root, "write"), _locked(self._root, self.lock_timeout):
            self._refresh(force=True)
            yield self._manifest

    def _commit(self, manifest):
        """Write ``manifest`` atomically, adopt it, delete files it no longer refers to (lock held)."""
        _write_bytes_atomic(self._root / MANIFEST_NAME, _manifest_to_json(manifest))
        self._manifest = manifest
        try:
            self._signature = _file_signature(os.stat(self._root / MANIFEST_NAME))
        except OSError:  # committed all the same; the next read re-reads the manifest
            self._signature = None
        _clean_orphans(self._root, manifest)


def _next_generation(old_manifest):
    """The write counter of a store (re)created over ``old_manifest`` (None: a new store).

    It goes on from the old store's, so no file name is reused, and starts
    again at 0 in the one case where it could not go on.
    """
    if old_manifest is None or old_manifest["generation"] >= MAX_GENERATION:
        return 0
    return old_manifest["generation"] + 1


def _speaker_fix(name):
    """How to repair one speaker, in the command line's words (library users: ``enroll_stats(mode="replace")``)."""
    return f"re-enroll {name!r} (speaker-id enroll --replace) or remove it (speaker-id remove)"
