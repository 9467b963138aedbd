"""The store's on-disk format: file names, the manifest JSON and the UBM fingerprint.

``manifest.json`` is the source of truth of a store (format version, feature
configuration, MAP settings, UBM fingerprint, the enrolled speakers); this
module writes it as bytes and parses it back, validating every field.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
from pathlib import Path

import numpy as np

from streamgmm import OnlineGMM
from streamgmm import load as load_model
from streamgmm.io import parse_json

from ..frontend.config import FeatureConfig
from ..models.adaptation import ADAPTABLE
from .errors import InvalidStoreError
from .names import check_speaker_name

FORMAT_VERSION = 1
STORE_KIND = "speaker_id.SpeakerStore"
MANIFEST_NAME = "manifest.json"
UBM_NAME = "ubm.npz"
BACKEND_NAME = "backend.npz"  # the i-vector back end of a store whose backend is "ivector"
BACKENDS = ("gmm", "ivector")
# A manifest nests 4 levels (document, speakers, a speaker, its settings)
MAX_MANIFEST_DEPTH = 16
SPEAKERS_DIR = "speakers"
LOCK_NAME = ".lock"

#: The largest store-wide write counter (``generation``); speaker file names carry it in decimal,
#: and a manifest beyond it is refused, so every name the writer makes is one the reader accepts.
MAX_GENERATION = 10**18 - 1

_FINGERPRINT_TAG = b"speaker_id.ubm-fingerprint.v1\0"
# <slug>-<hex hash>.g<write counter>.npz ; the only names a manifest may refer to
_SPEAKER_FILE_RE = re.compile(rf"([a-z0-9][a-z0-9-]{{0,120}})\.g([0-9]{{1,{len(str(MAX_GENERATION))}}})\.npz")
# temporary files of write_npz_atomic and _write_bytes_atomic: .<name>.<random>.tmp
_TEMP_FILE_RE = re.compile(r"\..+\.tmp")


def speaker_file_name(stem, generation):
    """The name of a speaker's statistics file written at write counter ``generation``.

    The one definition of speaker file names: the writer names files with it
    and the reader accepts exactly the names it can return
    (:func:`is_speaker_file_name`).

    Parameters
    ----------
    stem : str
        From :func:`~speaker_id.store.names.speaker_file_stem`.
    generation : int
        The store's write counter after this write, at most :data:`MAX_GENERATION`.

    Returns
    -------
    str
        ``<stem>.g<generation>.npz``.

    Raises
    ------
    InvalidStoreError
        If the write counter is beyond :data:`MAX_GENERATION` (the store
        must be rebuilt).

    Examples
    --------
    >>> speaker_file_name("alice-0123456789ab", 7)
    'alice-0123456789ab.g7.npz'
    >>> is_speaker_file_name(speaker_file_name("alice-0123456789ab", MAX_GENERATION))
    True
    """
    if isinstance(generation, bool) or not isinstance(generation, int) or not 0 <= generation <= MAX_GENERATION:
        raise InvalidStoreError(
            f"the store's write counter would reach {generation}, beyond the {MAX_GENERATION} its file names "
            "can carry; rebuild the store (speaker-id train-ubm --overwrite) and re-enroll the speakers."
        )
    name = f"{stem}.g{generation}.npz"
    if not is_speaker_file_name(name):
        raise ValueError(f"{stem!r} is not a speaker file stem (see speaker_file_stem).")
    return name


def is_speaker_file_name(name):
    """Whether ``name`` is one :func:`speaker_file_name` can return (no path, no other file)."""
    return isinstance(name, str) and _SPEAKER_FILE_RE.fullmatch(name) is not None


def speaker_file_name_stem(name):
    """The stem of a speaker file name (``alice-0123456789ab`` of ``alice-0123456789ab.g7.npz``)."""
    return _SPEAKER_FILE_RE.fullmatch(name).group(1)


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
        ubm = load_model(ubm)  # every member checked before it is read
    if not isinstance(ubm, OnlineGMM):
        raise TypeError(
            f"expected a streamgmm.OnlineGMM or a model file path, got {type(ubm).__name__} "
            "(convert a scikit-learn GaussianMixture with OnlineGMM.from_sklearn)."
        )
    if getattr(ubm, "weights_", None) is None:
        raise ValueError("the UBM is not fitted; fit it before storing or fingerprinting it.")
    return _fingerprint_arrays(ubm.covariance_type, ubm.weights_, ubm.means_, ubm.covariances_)


def read_ubm_description(path):
    """What a UBM file holds, as a manifest records it: fingerprint, components, features, covariance type.

    Parameters
    ----------
    path : str or Path
        A model file written by ``OnlineGMM.save``.

    Returns
    -------
    dict
        ``fingerprint`` (see :func:`ubm_fingerprint`), ``n_components``,
        ``n_features`` and ``covariance_type``.

    Raises
    ------
    ValueError
        If the file is not a readable streamgmm model file.
    """
    model = load_model(path)  # every member checked before it is read
    return {"fingerprint": ubm_fingerprint(model), "n_components": int(model.means_.shape[0]),
            "n_features": int(model.means_.shape[1]), "covariance_type": model.covariance_type}


def _check_relevance_factor(value):
    finite = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(min(value, 1e300))
    if not finite or value <= 0 or value > 1e300:
        raise ValueError(f"relevance_factor must be a finite number > 0 (typically 4 to 16), got {_short(value)}.")
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


def new_manifest(feature_config, relevance_factor, adapt, ubm, *, generation, created, updated, speakers,
                 backend="gmm"):
    """The internal form of a manifest (speakers keyed by name), as written and as parsed.

    Parameters
    ----------
    feature_config : FeatureConfig
    relevance_factor : float
    adapt : tuple of str
    ubm : dict
        ``fingerprint``, ``n_components``, ``n_features``, ``covariance_type``.
    generation : int
        The store-wide write counter.
    created, updated : str
        ISO 8601 times.
    speakers : dict of str to dict
        Each speaker's entry (file, n_frames, n_utterances, updated, ubm_fingerprint).
    backend : {"gmm", "ivector"}, default="gmm"
        How speakers are modelled and scored: MAP-adapted GMMs, or the
        i-vector back end kept in ``backend.npz``.

    Returns
    -------
    dict
    """
    return {
        "kind": STORE_KIND,
        "format_version": FORMAT_VERSION,
        "created": created,
        "updated": updated,
        "generation": generation,
        "feature_config": feature_config.to_dict(),
        "map": {"relevance_factor": relevance_factor, "adapt": list(adapt)},
        "ubm": dict(ubm),
        "backend": backend,
        "speakers": speakers,
    }


def _manifest_to_json(manifest):
    document = {key: value for key, value in manifest.items() if key != "speakers"}
    document["speakers"] = [
        dict(name=name, **{k: v for k, v in entry.items() if k != "name"})
        for name, entry in sorted(manifest["speakers"].items())
    ]
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


# frame counts beyond this are no recording (10^15 frames of 10 ms are 300,000 years) and lose precision
_MAX_FRAMES = 1e15


def _short(value, limit=60):
    """``repr(value)``, cut to ``limit`` characters: hostile values are printed in one short line."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _parse_manifest(data, root):
    """Parse and validate manifest bytes; return the internal form (speakers keyed by name)."""
    source = f"manifest {Path(root) / MANIFEST_NAME}"
    fix = (
        f"restore it from a backup, or rebuild the store with `speaker-id train-ubm --store {root} "
        "--overwrite` and re-enroll the speakers"
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidStoreError(f"{source} is not valid JSON ({exc}); the store is damaged: {fix}.") from None
    try:
        document = parse_json(text, source, max_depth=MAX_MANIFEST_DEPTH)
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise InvalidStoreError(f"{source} is not valid JSON (a number in it is thousands of digits long); "
                                    f"the store is damaged: {fix}.") from None
        raise InvalidStoreError(f"{exc} The store is damaged: {fix}.") from None

    def bad(what):
        what = what.rstrip(".") if len(what) <= 300 else what[:297] + "..."
        return InvalidStoreError(f"{source} is invalid: {what}; the store is damaged: {fix}.")

    if not isinstance(document, dict) or document.get("kind") != STORE_KIND:
        raise bad(f"it does not describe a speaker store (kind is not {STORE_KIND!r})")
    version = document.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise bad(f"format_version is {_short(version)}, not an integer")
    if version != FORMAT_VERSION:
        newer = "a newer" if version > FORMAT_VERSION else "an older"
        raise InvalidStoreError(
            f"{source} has format version {_short(version)}; this speaker_id reads version {FORMAT_VERSION}. "
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
        backend = document.get("backend", "gmm")  # stores written before the i-vector back end
    except KeyError as exc:
        raise bad(f"the field {_short(exc.args[0])} is missing") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise bad(str(exc)) from None
    if not (isinstance(fingerprint, str) and re.fullmatch(r"[0-9a-f]{64}", fingerprint)):
        raise bad("the UBM fingerprint is not 64 hexadecimal digits")
    for label, value in (("n_components", n_components), ("n_features", n_features), ("generation", generation)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(f"{label} is {_short(value)}, not a non-negative integer")
    if generation > MAX_GENERATION:
        raise bad(f"the write counter (generation) is {_short(generation)}, beyond the largest a store can reach "
                  f"({MAX_GENERATION})")
    if not (isinstance(created, str) and isinstance(updated, str)):
        raise bad("created or updated is not a date")
    if not isinstance(covariance_type, str) or covariance_type not in ("full", "tied", "diag", "spherical"):
        raise bad(f"covariance_type is {_short(covariance_type)}")
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise bad(f"backend is {_short(backend)}, not one of {BACKENDS}")
    if not isinstance(speakers, list):
        raise bad("speakers is not a list")
    by_name = {}
    for item in speakers:
        if not isinstance(item, dict):
            raise bad(f"a speaker entry is {_short(item)}, not an object")
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
            raise bad(f"a speaker entry has no {_short(exc.args[0])}") from None
        except (TypeError, ValueError) as exc:
            raise bad(f"a speaker entry has an invalid name ({exc})") from None
        if name in by_name:
            raise bad(f"speaker {name!r} is listed twice")
        if not is_speaker_file_name(entry["file"]):
            raise bad(f"speaker {name!r} refers to the file {_short(entry['file'])}, which is not a speaker file name")
        n_frames, n_utterances = entry["n_frames"], entry["n_utterances"]
        if isinstance(n_frames, bool) or not isinstance(n_frames, (int, float)) or not (
            0 <= n_frames <= _MAX_FRAMES
        ):
            raise bad(f"speaker {name!r} has n_frames {_short(n_frames)}")
        if isinstance(n_utterances, bool) or not isinstance(n_utterances, int) or n_utterances < 0:
            raise bad(f"speaker {name!r} has n_utterances {_short(n_utterances)}")
        if not isinstance(entry["ubm_fingerprint"], str) or not isinstance(entry["updated"], str):
            raise bad(f"speaker {name!r} has an invalid ubm_fingerprint or updated field")
        entry["n_frames"] = float(n_frames)
        by_name[name] = entry
    files = [entry["file"] for entry in by_name.values()]
    if len(set(files)) != len(files):
        raise bad("two speakers refer to the same file")
    ubm = {"fingerprint": fingerprint, "n_components": n_components, "n_features": n_features,
           "covariance_type": covariance_type}
    return new_manifest(feature_config, relevance_factor, adapt, ubm, generation=generation,
                        created=created, updated=updated, speakers=by_name, backend=backend)
