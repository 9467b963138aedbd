"""Files: one ``.npz`` per object, with a kind and a format version, never pickled.

Loading a file from an untrusted source must never run code, so everything
is read with ``allow_pickle=False``; strings are stored as numpy unicode
arrays and nested settings as a JSON string.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .stats import FORMAT_VERSION, STATS_KIND, SufficientStats

MODEL_KIND = "streamgmm.OnlineGMM"


def write_npz_atomic(path, arrays):
    """Write ``arrays`` to ``path`` as ``.npz`` through a temporary file and a rename.

    A crash mid-write leaves the previous file (if any) untouched.

    Parameters
    ----------
    path : str or Path
        Destination. Unlike ``np.savez`` no ``.npz`` suffix is appended.
    arrays : dict of str to array-like
        Must not contain object arrays.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"cannot write {path}: directory {directory} does not exist; create it first.")
    for name, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"field {name!r} is an object array; only plain arrays are written.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_npz(path):
    """Read every array of an ``.npz`` file into a dict, refusing pickled content.

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive, truncated, or holds
        object (pickled) arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; check the path.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a readable streamgmm .npz file (not a zip archive); "
            "it is truncated or of another format."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(
            f"{path} is not a readable streamgmm .npz file ({exc}); it is truncated or of another format."
        ) from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(
                f"{path} holds pickled objects, which are never loaded (they could run code); "
                "it was not written by streamgmm."
            ) from None
        raise ValueError(f"{path} could not be read as .npz: {exc}") from None


def check_header(arrays, kind, source):
    """Check that ``arrays`` carry the expected ``kind`` and a known format version."""
    if "kind" not in arrays or "format_version" not in arrays:
        raise ValueError(f"{source} has no streamgmm header (kind, format_version); it is not a streamgmm file.")
    found = str(arrays["kind"])
    if found != kind:
        raise ValueError(f"{source} holds a {found!r}, not a {kind!r}.")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{source} has format version {version}; this streamgmm reads version {FORMAT_VERSION}. "
            "Re-save it with the streamgmm version that wrote it, or upgrade streamgmm."
        )


def save_model(model, path):
    """Write a fitted :class:`~streamgmm.OnlineGMM` (parameters, settings, running statistics)."""
    model._check_is_fitted()
    arrays = {
        "kind": np.array(MODEL_KIND),
        "format_version": np.array(FORMAT_VERSION),
        "params_json": np.array(json.dumps(model._json_params())),
        "weights": model.weights_,
        "means": model.means_,
        "covariances": model.covariances_,
        "shift": model.shift_,
        # a 0-d NaN stands for "no floor" (None cannot be stored without pickle)
        "variance_floor": np.array(np.nan) if model.variance_floor_ is None else model.variance_floor_,
        "n_updates": np.array(getattr(model, "n_updates_", 0)),
        "converged": np.array(bool(getattr(model, "converged_", False))),
        "n_iter": np.array(getattr(model, "n_iter_", 0)),
        "lower_bound": np.array(getattr(model, "lower_bound_", np.nan)),
    }
    if model._running_stats is not None:
        for name, value in model._running_stats.to_arrays().items():
            if name not in ("kind", "format_version"):
                arrays["stats_" + name] = value
    write_npz_atomic(path, arrays)


def load(path):
    """Read a model written by ``OnlineGMM.save``; never unpickles.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    OnlineGMM
        Fitted, ready to score or to go on learning with ``partial_fit``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from streamgmm import OnlineGMM, load
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> gmm = OnlineGMM(n_components=2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> gmm.save(path)
    >>> bool(np.allclose(load(path).score_samples(X), gmm.score_samples(X)))
    True
    """
    from .estimators import OnlineGMM

    source = f"model file {path}"
    arrays = read_npz(path)
    check_header(arrays, MODEL_KIND, source)
    try:
        params = json.loads(str(arrays["params_json"]))
        model = OnlineGMM(**params)
        weights, means, covariances = arrays["weights"], arrays["means"], arrays["covariances"]
        shift, floor = arrays["shift"], arrays["variance_floor"]
        n_updates, converged = int(arrays["n_updates"]), bool(arrays["converged"])
        n_iter, lower_bound = int(arrays["n_iter"]), float(arrays["lower_bound"])
    except KeyError as exc:
        raise ValueError(f"{source} is missing the field {exc.args[0]!r}; it is truncated or foreign.") from None
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source} has invalid settings ({exc}); the file is corrupt.") from None
    model._set_parameters(weights, means, covariances, shift=shift, variance_floor=floor, source=source)
    model.n_updates_, model.converged_, model.n_iter_, model.lower_bound_ = n_updates, converged, n_iter, lower_bound
    if "stats_zeroth" in arrays:
        stats_arrays = {k[len("stats_"):]: v for k, v in arrays.items() if k.startswith("stats_")}
        stats_arrays["kind"] = np.array(STATS_KIND)
        stats_arrays["format_version"] = arrays["format_version"]
        model._running_stats = SufficientStats.from_arrays(stats_arrays, source=source)
        if model._running_stats.second.shape[0] != model.n_components:
            raise ValueError(f"{source} holds statistics of another shape than its model; the file is corrupt.")
    return model
