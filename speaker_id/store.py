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
import hashlib
import json
import math
import numbers
import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import filelock
import numpy as np

from streamgmm import OnlineGMM, SufficientStats
from streamgmm import load as load_model
from streamgmm.io import MODEL_KIND, check_header, read_npz, write_npz_atomic

from .features import FeatureConfig

__all__ = [
    "SpeakerStore",
    "StoreError",
    "InvalidStoreError",
    "NotAStoreError",
    "StoreExistsError",
    "StoreLockedError",
    "ForeignModelError",
    "UnknownSpeakerError",
    "InvalidSpeakerNameError",
    "ubm_fingerprint",
    "speaker_file_stem",
    "check_speaker_name",
    "FORMAT_VERSION",
    "ADAPTABLE",
]

FORMAT_VERSION = 1
STORE_KIND = "speaker_id.SpeakerStore"
MANIFEST_NAME = "manifest.json"
UBM_NAME = "ubm.npz"
SPEAKERS_DIR = "speakers"
LOCK_NAME = ".lock"
ADAPTABLE = ("weights", "means", "variances")  # the names speaker_id.enroll.map_adapt takes
DEFAULT_LOCK_TIMEOUT = 30.0

_FINGERPRINT_TAG = b"speaker_id.ubm-fingerprint.v1\0"
_HASH_CHARS = 12
_SLUG_CHARS = 40
# <slug>-<hex hash>.g<write counter>.npz ; the only names a manifest may refer to
_SPEAKER_FILE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,120}\.g[0-9]{1,18}\.npz")
# temporary files of write_npz_atomic and _write_bytes_atomic: .<name>.<random>.tmp
_TEMP_FILE_RE = re.compile(r"\..+\.tmp")


# --------------------------------------------------------------------- errors
class StoreError(Exception):
    """Base class of every error the speaker store raises on purpose."""


class InvalidStoreError(StoreError, ValueError):
    """The store on disk cannot be used as it is (damaged, foreign or of another version)."""


class NotAStoreError(InvalidStoreError):
    """The path is not a speaker store (missing, not a directory, or no manifest)."""


class StoreExistsError(StoreError, FileExistsError):
    """:meth:`SpeakerStore.create` refused to overwrite an existing store or directory."""


class StoreLockedError(StoreError, TimeoutError):
    """Another process held the store's lock for longer than the lock timeout."""


class ForeignModelError(StoreError, ValueError):
    """Speaker statistics belong to another UBM than the store's and must be re-enrolled."""


class InvalidSpeakerNameError(StoreError, ValueError):
    """A speaker name is empty or contains control characters."""


class UnknownSpeakerError(StoreError, KeyError):
    """No speaker of that name is enrolled; the message lists close matches.

    Attributes
    ----------
    name : str
        The name asked for.
    close_matches : list of str
        Enrolled names that look like it (possibly empty).
    """

    def __init__(self, message, name=None, close_matches=()):
        super().__init__(message)
        self.name = name
        self.close_matches = list(close_matches)

    def __str__(self):  # KeyError would show the repr of the message
        return str(self.args[0])


class _SpeakerFileMissing(InvalidStoreError):
    """A file the manifest refers to is gone (maybe replaced by a concurrent writer)."""


# ---------------------------------------------------------------- name helpers
def check_speaker_name(name):
    """Validate a speaker name and return it in Unicode normal form NFC.

    Any text is a valid name (spaces, slashes, dots, any script) except the
    empty or all-blank string and text containing control characters
    (``\\n``, ``\\t``, ``\\x00``, ...), line or paragraph separators, or lone
    surrogates. Names are compared after NFC normalisation, so a name typed
    in decomposed form (``"Zoe\\u0308"``) finds the speaker enrolled as ``"Zoë"``.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        The NFC form of ``name``.

    Raises
    ------
    InvalidSpeakerNameError
        If the name is empty, blank or contains a control character.
    TypeError
        If ``name`` is not a string.

    Examples
    --------
    >>> check_speaker_name("Zoe\\u0308 / studio A") == "Zoë / studio A"
    True
    >>> check_speaker_name("bad\\nname")
    Traceback (most recent call last):
    ...
    speaker_id.store.InvalidSpeakerNameError: speaker name 'bad\\nname' contains the control character U+000A; use printable text.
    """
    if not isinstance(name, str):
        raise TypeError(f"a speaker name must be a string, got {type(name).__name__}.")
    if not name.strip():
        raise InvalidSpeakerNameError(f"speaker name {name!r} is empty; give the speaker a name.")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            raise InvalidSpeakerNameError(
                f"speaker name {name!r} contains the control character U+{ord(char):04X}; use printable text."
            )
    return unicodedata.normalize("NFC", name)


def speaker_file_stem(name, hash_chars=_HASH_CHARS):
    """A file-system-safe, collision-resistant stem for a speaker name.

    The stem is a lower-case ASCII slug of the name (at most 40 characters of
    ``[a-z0-9-]``) followed by the first ``hash_chars`` hex digits of the
    SHA-256 of the name's UTF-8 bytes. It never contains a path separator or
    starts with a dot, is the same on case-insensitive file systems, and two
    names differing only in case or punctuation get different stems.

    Parameters
    ----------
    name : str
        A valid speaker name (see :func:`check_speaker_name`).
    hash_chars : int, default 12
        Hex digits of the hash kept (up to 64).

    Returns
    -------
    str

    Examples
    --------
    >>> speaker_file_stem("Zoë / Studio A")[:-12]
    'zoe-studio-a-'
    >>> speaker_file_stem("../../etc/passwd").startswith("etc-passwd-")
    True
    >>> speaker_file_stem("Alice") != speaker_file_stem("alice")
    True
    """
    name = check_speaker_name(name)
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:_SLUG_CHARS].rstrip("-")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:hash_chars]
    return f"{slug or 'speaker'}-{digest}"


# --------------------------------------------------------------- fingerprints
def _fingerprint_arrays(covariance_type, weights, means, covariances):
    digest = hashlib.sha256(_FINGERPRINT_TAG)
    digest.update(str(covariance_type).encode("utf-8") + b"\0")
    for label, value in (("weights", weights), ("means", means), ("covariances", covariances)):
        value = np.ascontiguousarray(value, dtype="<f8")
        digest.update(f"{label}{value.shape}\0".encode("ascii"))
        digest.update(value.tobytes())
    return digest.hexdigest()


def ubm_fingerprint(ubm):
    """SHA-256 fingerprint of a UBM's parameters (weights, means, covariances).

    The hash covers the covariance type and the float64 values and shapes of
    the three parameter arrays, not the file's bytes, so it is the same for a
    model in memory, its file, and any re-save of the same parameters (file
    timestamps and running statistics do not count).

    Parameters
    ----------
    ubm : OnlineGMM or str or Path
        A fitted model, or the path of a model file written by ``OnlineGMM.save``.

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    ValueError
        If the file is not a readable streamgmm model file.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from streamgmm import OnlineGMM
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> gmm = OnlineGMM(n_components=2, covariance_type="diag", random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "ubm.npz")
    >>> gmm.save(path)
    >>> ubm_fingerprint(path) == ubm_fingerprint(gmm)
    True
    """
    if isinstance(ubm, (str, os.PathLike)):
        source = f"UBM file {ubm}"
        arrays = read_npz(ubm)
        check_header(arrays, MODEL_KIND, source)
        try:
            covariance_type = json.loads(str(arrays["params_json"]))["covariance_type"]
            weights, means, covariances = arrays["weights"], arrays["means"], arrays["covariances"]
        except KeyError as exc:
            raise ValueError(f"{source} is missing {exc.args[0]!r}; it is truncated or foreign.") from None
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{source} has invalid settings ({exc}); the file is corrupt.") from None
        return _fingerprint_arrays(covariance_type, weights, means, covariances)
    if not isinstance(ubm, OnlineGMM):
        raise TypeError(
            f"expected a streamgmm.OnlineGMM or a model file path, got {type(ubm).__name__} "
            "(convert a scikit-learn GaussianMixture with OnlineGMM.from_sklearn)."
        )
    if getattr(ubm, "weights_", None) is None:
        raise ValueError("the UBM is not fitted; fit it before storing or fingerprinting it.")
    return _fingerprint_arrays(ubm.covariance_type, ubm.weights_, ubm.means_, ubm.covariances_)


# ---------------------------------------------------------------- file helpers
def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (best effort; not possible everywhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_atomic(path, data):
    """Write ``data`` to ``path`` through a flushed temporary file in the same directory."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _file_signature(stat_result):
    return (stat_result.st_ino, stat_result.st_dev, stat_result.st_mtime_ns, stat_result.st_size)


def _check_relevance_factor(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"relevance_factor must be a finite number > 0 (typically 16), got {value!r}.")
    return float(value)


def _check_adapt(adapt):
    if isinstance(adapt, str):
        adapt = (adapt,)
    try:
        requested = list(adapt)
    except TypeError:
        raise TypeError(f"adapt must be a string or a sequence of strings, got {adapt!r}.") from None
    unknown = [a for a in requested if a not in ADAPTABLE]
    if unknown or not requested:
        raise ValueError(
            f"adapt must be a non-empty subset of {ADAPTABLE}, got {tuple(requested)!r}; "
            "GMM-UBM systems usually adapt the means only."
        )
    return tuple(a for a in ADAPTABLE if a in requested)


# -------------------------------------------------------------------- manifest
def _manifest_to_json(manifest):
    document = {key: value for key, value in manifest.items() if key != "speakers"}
    document["speakers"] = [
        dict(name=name, **{k: v for k, v in entry.items() if k != "name"})
        for name, entry in sorted(manifest["speakers"].items())
    ]
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _parse_manifest(data, root):
    """Parse and validate manifest bytes; return the internal form (speakers keyed by name)."""
    source = f"manifest {Path(root) / MANIFEST_NAME}"
    fix = (
        f"restore it from a backup, or rebuild the store with `speaker-id train-ubm --store {root} "
        "--overwrite` and re-enroll the speakers"
    )
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidStoreError(f"{source} is not valid JSON ({exc}); the store is damaged: {fix}.") from None

    def bad(what):
        return InvalidStoreError(f"{source} is invalid: {what}; the store is damaged: {fix}.")

    if not isinstance(document, dict) or document.get("kind") != STORE_KIND:
        raise bad(f"it does not describe a speaker store (kind is not {STORE_KIND!r})")
    version = document.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise bad(f"format_version is {version!r}, not an integer")
    if version != FORMAT_VERSION:
        newer = "a newer" if version > FORMAT_VERSION else "an older"
        raise InvalidStoreError(
            f"{source} has format version {version}; this speaker_id reads version {FORMAT_VERSION}. "
            f"The store was written by {newer} speaker_id: use that version, or rebuild the store "
            f"with `speaker-id train-ubm --store {root} --overwrite` and re-enroll the speakers."
        )
    try:
        feature_config = FeatureConfig.from_dict(document["feature_config"])
        settings = document["map"]
        relevance_factor = _check_relevance_factor(settings["relevance_factor"])
        adapt = _check_adapt(settings["adapt"])
        ubm = document["ubm"]
        fingerprint = ubm["fingerprint"]
        n_components, n_features = ubm["n_components"], ubm["n_features"]
        covariance_type = ubm["covariance_type"]
        generation = document["generation"]
        created, updated = document["created"], document["updated"]
        speakers = document["speakers"]
    except KeyError as exc:
        raise bad(f"the field {exc.args[0]!r} is missing") from None
    except (TypeError, ValueError) as exc:
        raise bad(str(exc)) from None
    if not (isinstance(fingerprint, str) and re.fullmatch(r"[0-9a-f]{64}", fingerprint)):
        raise bad("the UBM fingerprint is not 64 hexadecimal digits")
    for label, value in (("n_components", n_components), ("n_features", n_features), ("generation", generation)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(f"{label} is {value!r}, not a non-negative integer")
    if covariance_type not in ("full", "tied", "diag", "spherical"):
        raise bad(f"covariance_type is {covariance_type!r}")
    if not isinstance(speakers, list):
        raise bad("speakers is not a list")
    by_name = {}
    for item in speakers:
        if not isinstance(item, dict):
            raise bad(f"a speaker entry is {item!r}, not an object")
        try:
            name = check_speaker_name(item["name"])
            entry = {
                "file": item["file"],
                "n_frames": item["n_frames"],
                "n_utterances": item["n_utterances"],
                "updated": item["updated"],
                "ubm_fingerprint": item["ubm_fingerprint"],
            }
        except KeyError as exc:
            raise bad(f"a speaker entry has no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise bad(f"a speaker entry has an invalid name ({exc})") from None
        if name in by_name:
            raise bad(f"speaker {name!r} is listed twice")
        if not (isinstance(entry["file"], str) and _SPEAKER_FILE_RE.fullmatch(entry["file"])):
            raise bad(f"speaker {name!r} refers to the file {entry['file']!r}, which is not a speaker file name")
        n_frames, n_utterances = entry["n_frames"], entry["n_utterances"]
        if isinstance(n_frames, bool) or not isinstance(n_frames, (int, float)) or not (
            math.isfinite(n_frames) and n_frames >= 0
        ):
            raise bad(f"speaker {name!r} has n_frames {n_frames!r}")
        if isinstance(n_utterances, bool) or not isinstance(n_utterances, int) or n_utterances < 0:
            raise bad(f"speaker {name!r} has n_utterances {n_utterances!r}")
        if not isinstance(entry["ubm_fingerprint"], str) or not isinstance(entry["updated"], str):
            raise bad(f"speaker {name!r} has an invalid ubm_fingerprint or updated field")
        entry["n_frames"] = float(n_frames)
        by_name[name] = entry
    files = [entry["file"] for entry in by_name.values()]
    if len(set(files)) != len(files):
        raise bad("two speakers refer to the same file")
    return {
        "kind": STORE_KIND,
        "format_version": FORMAT_VERSION,
        "created": created,
        "updated": updated,
        "generation": generation,
        "feature_config": feature_config.to_dict(),
        "map": {"relevance_factor": relevance_factor, "adapt": list(adapt)},
        "ubm": {
            "fingerprint": fingerprint,
            "n_components": n_components,
            "n_features": n_features,
            "covariance_type": covariance_type,
        },
        "speakers": by_name,
    }


# ----------------------------------------------------------------------- store
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

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from streamgmm import OnlineGMM, accumulate
    >>> from speaker_id.features import FeatureConfig
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
        if not root.exists():
            raise NotAStoreError(f"speaker store {root} does not exist: not a speaker store; {hint}.")
        if not root.is_dir():
            raise NotAStoreError(f"{root} is not a directory: not a speaker store; {hint}.")
        if not (root / MANIFEST_NAME).is_file():
            raise NotAStoreError(f"{root} has no {MANIFEST_NAME}: not a speaker store; {hint}.")
        self._root = root
        self.lock_timeout = self._check_timeout(lock_timeout)
        self._manifest = None
        self._signature = None
        self._ubm = None  # the UBM model, loaded on first use
        self._ubm_fp = None  # its fingerprint
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
        speaker_id.store.NotAStoreError: ... has no manifest.json: not a speaker store; run `speaker-id train-ubm --store ... ...` first.
        """
        return cls(path, lock_timeout=lock_timeout)

    @classmethod
    def create(
        cls,
        path,
        ubm,
        feature_config,
        relevance_factor=16.0,
        adapt=("means",),
        overwrite=False,
        *,
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
        relevance_factor : float, default 16.0
            MAP relevance factor used when speaker models are computed.
        adapt : str or sequence of {"weights", "means", "variances"}, default ("means",)
            Parameters MAP adaptation moves toward the speaker's statistics.
        overwrite : bool, default False
            Replace an existing store (its UBM and settings) and **drop all its
            enrolled speakers**, whose statistics belong to the old UBM; or
            create the store in a non-empty directory that is not a store
            (other files there are left alone).
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
        >>> from speaker_id.features import FeatureConfig
        >>> X = np.random.default_rng(0).normal(size=(500, 3))
        >>> ubm = OnlineGMM(n_components=4, covariance_type="diag", random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "store")
        >>> store = SpeakerStore.create(path, ubm, FeatureConfig(n_mfcc=3, deltas=False), relevance_factor=8)
        >>> store.relevance_factor, store.adapt, sorted(os.listdir(path))
        (8.0, ('means',), ['.lock', 'manifest.json', 'speakers', 'ubm.npz'])
        >>> SpeakerStore.create(path, ubm, store.feature_config)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speaker_id.store.StoreExistsError: ... is already a speaker store; pass overwrite=True (--overwrite) to replace its UBM and settings.
        """
        if isinstance(ubm, (str, os.PathLike)):
            ubm = load_model(ubm)
        fingerprint = ubm_fingerprint(ubm)  # checks the type and that it is fitted
        if isinstance(feature_config, dict):
            feature_config = FeatureConfig.from_dict(feature_config)
        if not isinstance(feature_config, FeatureConfig):
            raise TypeError(f"feature_config must be a FeatureConfig or a dict, got {type(feature_config).__name__}.")
        n_components, n_features = int(ubm.n_components), int(ubm.n_features_in_)
        if feature_config.n_features != n_features:
            raise ValueError(
                f"the UBM models {n_features} features per frame but the feature configuration gives "
                f"{feature_config.n_features}; store the configuration the UBM was trained with."
            )
        relevance_factor = _check_relevance_factor(relevance_factor)
        adapt = _check_adapt(adapt)
        lock_timeout = cls._check_timeout(lock_timeout)

        root = Path(path)
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
            manifest = {
                "kind": STORE_KIND,
                "format_version": FORMAT_VERSION,
                "created": now,
                "updated": now,
                "generation": (old["generation"] + 1) if old else 0,
                "feature_config": feature_config.to_dict(),
                "map": {"relevance_factor": relevance_factor, "adapt": list(adapt)},
                "ubm": {
                    "fingerprint": fingerprint,
                    "n_components": n_components,
                    "n_features": n_features,
                    "covariance_type": ubm.covariance_type,
                },
                "speakers": {},
            }
            _write_bytes_atomic(root / MANIFEST_NAME, _manifest_to_json(manifest))
            _clean_orphans(root, manifest)
        store = cls(root, lock_timeout=lock_timeout)
        store._ubm, store._ubm_fp = ubm, fingerprint
        return store

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
                old = _parse_manifest(manifest_path.read_bytes(), root)
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
            try:
                model = load_model(path)
            except ValueError as exc:
                raise InvalidStoreError(
                    f"the UBM of speaker store {self._root} is unreadable ({exc}); {self._ubm_fix()}."
                ) from None
            found = ubm_fingerprint(model)
            if found != expected:
                raise self._replaced_ubm(found, expected)
            self._ubm, self._ubm_fp = model, expected
        return self._ubm

    @property
    def fingerprint(self):
        """The UBM fingerprint the manifest records (see :func:`ubm_fingerprint`)."""
        return self._current()["ubm"]["fingerprint"]

    @property
    def feature_config(self):
        """The :class:`~speaker_id.features.FeatureConfig` of the UBM's features."""
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
            non-finite values or was written for another speaker.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from streamgmm import OnlineGMM, accumulate
        >>> from speaker_id.features import FeatureConfig
        >>> rng = np.random.default_rng(0)
        >>> ubm = OnlineGMM(n_components=4, covariance_type="diag", random_state=0).fit(rng.normal(size=(500, 3)))
        >>> store = SpeakerStore.create(os.path.join(tempfile.mkdtemp(), "s"), ubm, FeatureConfig(n_mfcc=1))
        >>> _ = store.enroll_stats("alice", accumulate(ubm, rng.normal(size=(50, 3))), n_utterances=1)
        >>> store.load_stats("alice").n_frames
        50.0
        >>> store.load_stats("alise")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        speaker_id.store.UnknownSpeakerError: no speaker 'alise' in the store ...; did you mean 'alice'?
        """
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

    def _read_speaker(self, manifest, name, entry):
        root_fp = manifest["ubm"]["fingerprint"]
        fix = f"re-enroll {name!r} (enroll_stats with mode='replace') or remove it"
        if entry["ubm_fingerprint"] != root_fp:
            raise ForeignModelError(
                f"the speaker model of {name!r} in store {self._root} belongs to another UBM (fingerprint "
                f"{entry['ubm_fingerprint'][:12]}..., the store's is {root_fp[:12]}...); it must be re-enrolled: {fix}."
            )
        path = self._root / SPEAKERS_DIR / entry["file"]
        if not path.is_file():
            raise _SpeakerFileMissing(
                f"the statistics file {path} of speaker {name!r} is missing; the store is damaged: {fix}."
            )
        try:
            arrays = read_npz(path)
            stats = SufficientStats.from_arrays(arrays, source=f"statistics file {path}")
        except ValueError as exc:
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
        self._check_stats(stats, manifest, what=f"the statistics file {path} of speaker {name!r}", fix=fix)
        return stats

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

    # --------------------------------------------------------------- writing
    def enroll_stats(self, name, stats, n_utterances=1, mode="add", *, ubm_fingerprint=None):
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
        ValueError
            If ``stats`` hold non-finite values or no frames, or the name is invalid.
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
                f"not the store's UBM {expected_fp[:12]}...; accumulate them with store.ubm."
            )
        what = f"the statistics given for {name!r}"
        self._check_stats(
            stats, seen, what=what, fix="accumulate them with the store's UBM (store.ubm)", invalid=ValueError
        )
        if not stats.n_frames > 0:
            raise ValueError(f"{what} cover no frames; there is nothing to enroll (did the VAD drop every frame?).")

        with self._transaction() as manifest:
            if manifest["ubm"]["fingerprint"] != expected_fp:
                raise ForeignModelError(
                    f"the UBM of store {self._root} was replaced by another process while {name!r} was being "
                    "enrolled; the statistics belong to the old UBM: re-open the store and accumulate them again."
                )
            old = manifest["speakers"].get(name)
            if mode == "add" and old is not None:
                total = self._read_speaker(manifest, name, old) + stats
                n_total = old["n_utterances"] + int(n_utterances)
            else:
                total, n_total = stats.copy(), int(n_utterances)
            generation = manifest["generation"] + 1
            stem = old["file"].rsplit(".g", 1)[0] if old is not None else self._new_stem(name, manifest)
            file_name = f"{stem}.g{generation}.npz"
            arrays = total.to_arrays()
            arrays["speaker_name"] = np.array(name)
            arrays["ubm_fingerprint"] = np.array(expected_fp)
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
        used = {entry["file"].rsplit(".g", 1)[0] for entry in manifest["speakers"].values()}
        for chars in (_HASH_CHARS, 20, 32, 64):
            stem = speaker_file_stem(name, chars)
            if stem not in used:
                return stem
        raise InvalidStoreError(f"no free file name for speaker {name!r}; the manifest is damaged.")  # pragma: no cover

    def _refresh(self, force=False):
        """Re-read the manifest if it changed on disk, check the UBM file; return whether it changed."""
        path = self._root / MANIFEST_NAME
        try:
            if not force and self._signature is not None:
                if _file_signature(os.stat(path)) == self._signature:
                    self._verify_ubm_file(self._manifest["ubm"]["fingerprint"])
                    return False
            with open(path, "rb") as handle:
                signature = _file_signature(os.fstat(handle.fileno()))
                data = handle.read()
        except FileNotFoundError:
            raise NotAStoreError(
                f"{self._root} has no {MANIFEST_NAME} any more: not a speaker store; "
                f"run `speaker-id train-ubm --store {self._root} ...` first."
            ) from None
        manifest = _parse_manifest(data, self._root)
        self._verify_ubm_file(manifest["ubm"]["fingerprint"])
        changed = manifest != self._manifest
        self._manifest, self._signature = manifest, signature
        return changed

    def _current(self):
        self._refresh()
        return self._manifest

    def _verify_ubm_file(self, expected):
        """Check that ubm.npz holds the UBM of fingerprint ``expected`` (hashed again only if the file changed)."""
        path = self._root / UBM_NAME
        try:
            signature = _file_signature(os.stat(path))
        except FileNotFoundError:
            raise self._missing_ubm() from None
        if self._ubm_verified == (signature, expected):
            return
        try:
            found = ubm_fingerprint(path)
        except ValueError as exc:
            raise InvalidStoreError(
                f"the UBM of speaker store {self._root} is unreadable ({exc}); {self._ubm_fix()}."
            ) from None
        if found != expected:
            raise self._replaced_ubm(found, expected)
        self._ubm_verified = (signature, expected)

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
        """Hold the store's lock and yield the manifest as re-read under it."""
        with _locked(self._root, self.lock_timeout):
            self._refresh(force=True)
            yield self._manifest

    def _commit(self, manifest):
        """Write ``manifest`` atomically, adopt it, delete files it no longer refers to (lock held)."""
        _write_bytes_atomic(self._root / MANIFEST_NAME, _manifest_to_json(manifest))
        self._manifest = manifest
        self._signature = _file_signature(os.stat(self._root / MANIFEST_NAME))
        _clean_orphans(self._root, manifest)


@contextmanager
def _locked(root, timeout):
    lock = filelock.FileLock(str(Path(root) / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise StoreLockedError(
            f"speaker store {root} is locked by another process (lock file {Path(root) / LOCK_NAME}) and was "
            f"not released within {timeout:g} s; wait for the other enrollment to finish and try again, "
            "or raise the lock timeout."
        ) from None
    try:
        yield
    finally:
        lock.release()


def _clean_orphans(root, manifest):
    """Delete speaker files the manifest does not list and temporary files of crashed writes (lock held)."""
    root = Path(root)
    referenced = {entry["file"] for entry in manifest["speakers"].values()}
    speakers_dir = root / SPEAKERS_DIR
    candidates = []
    if speakers_dir.is_dir():
        candidates += [
            e for e in os.scandir(speakers_dir)
            if e.name not in referenced and (_SPEAKER_FILE_RE.fullmatch(e.name) or _TEMP_FILE_RE.fullmatch(e.name))
        ]
    candidates += [
        e for e in os.scandir(root)
        if re.fullmatch(rf"\.({re.escape(MANIFEST_NAME)}|{re.escape(UBM_NAME)})\..+\.tmp", e.name)
    ]
    for entry in candidates:
        if entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
