"""Additive sufficient statistics of a Gaussian mixture.

Everything the estimators do reduces to these per-component sums over a
block of frames ``x_t`` with responsibilities ``r_tk``::

    zeroth[k] = sum_t r_tk
    first[k]  = sum_t r_tk (x_t - shift)
    second[k] = sum_t r_tk (x_t - shift)(x_t - shift)^T   (only the diagonal
                                                            for diagonal layouts)

plus the block's total log-likelihood and frame count. Statistics of two
blocks add, so out-of-core EM, online EM, MAP adaptation and distributed
training are all loops around ``accumulate`` and ``+``.

The sums are kept about a fixed ``shift`` (a point near the data, usually the
global mean seen at initialisation) and in float64, so second moments of data
with a large offset do not cancel when variances are formed.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .io import STATS_KIND, array, check_arrays, check_header, header, one_of, read_npz, scalar, write_npz_atomic

LAYOUTS = ("diag", "full")


def file_fields(layout=None):
    """The members of a statistics file (see :class:`streamgmm.io.Field`).

    Parameters
    ----------
    layout : {"diag", "full"}, optional
        The layout of ``second``; either when not given.

    Returns
    -------
    dict of str to Field
        With the dimensions ``K`` (components) and ``D`` (features).
    """
    second = {"diag": [("K", "D")], "full": [("K", "D", "D")], None: [("K", "D"), ("K", "D", "D")]}[layout]
    return {
        "zeroth": array("real", "K"),
        "first": array("real", "K", "D"),
        "second": one_of("real", *second),
        "shift": array("real", "D"),
        "log_likelihood": scalar("real"),
        "n_frames": scalar("real"),
    }


@dataclass
class SufficientStats:
    """Zeroth, first and second order statistics of a mixture over some frames.

    Parameters
    ----------
    zeroth : ndarray of shape (n_components,)
        Soft counts per component.
    first : ndarray of shape (n_components, n_features)
        Responsibility-weighted sums of ``x - shift``.
    second : ndarray of shape (n_components, n_features) or (n_components, n_features, n_features)
        Responsibility-weighted sums of ``(x - shift)**2`` (``layout="diag"``)
        or of the outer products ``(x - shift)(x - shift)^T`` (``layout="full"``).
    shift : ndarray of shape (n_features,)
        The point the first and second order sums are taken about.
    log_likelihood : float
        Sum of the per-frame log-likelihoods under the model that produced the
        responsibilities.
    n_frames : float
        Number of frames summed (fractional after scaling by a decay).

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM, accumulate
    >>> X = np.random.default_rng(0).normal(size=(1000, 2))
    >>> gmm = OnlineGMM(n_components=2, covariance_type="diag", random_state=0).fit(X)
    >>> total = accumulate(gmm, X[:500]) + accumulate(gmm, X[500:])
    >>> bool(np.isclose(total.n_frames, 1000.0))
    True
    """

    zeroth: np.ndarray
    first: np.ndarray
    second: np.ndarray
    shift: np.ndarray
    log_likelihood: float = 0.0
    n_frames: float = 0.0

    def __post_init__(self):
        self.zeroth = np.asarray(self.zeroth, dtype=np.float64)
        self.first = np.asarray(self.first, dtype=np.float64)
        self.second = np.asarray(self.second, dtype=np.float64)
        self.shift = np.asarray(self.shift, dtype=np.float64)
        self.log_likelihood = float(self.log_likelihood)
        self.n_frames = float(self.n_frames)
        k, d = self.first.shape if self.first.ndim == 2 else (-1, -1)
        if self.zeroth.shape != (k,) or self.shift.shape != (d,):
            raise ValueError(
                "inconsistent statistics shapes: zeroth "
                f"{self.zeroth.shape}, first {self.first.shape}, shift {self.shift.shape}; "
                "expected (K,), (K, D), (D,)."
            )
        if self.second.shape not in ((k, d), (k, d, d)):
            raise ValueError(
                f"second-order statistics have shape {self.second.shape}; expected "
                f"({k}, {d}) for a diagonal layout or ({k}, {d}, {d}) for a full one."
            )

    # ------------------------------------------------------------------ shape
    @property
    def layout(self):
        """``"diag"`` or ``"full"``: which second moments are kept."""
        return "diag" if self.second.ndim == 2 else "full"

    @property
    def n_components(self):
        return self.zeroth.shape[0]

    @property
    def n_features(self):
        return self.shift.shape[0]

    @classmethod
    def zeros(cls, n_components, n_features, layout="diag", shift=None):
        """Empty statistics (the identity of ``+``).

        Parameters
        ----------
        n_components, n_features : int
        layout : {"diag", "full"}
        shift : ndarray of shape (n_features,), optional
            Defaults to the origin.
        """
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
        k, d = n_components, n_features
        second = np.zeros((k, d) if layout == "diag" else (k, d, d))
        shift = np.zeros(d) if shift is None else shift
        return cls(np.zeros(k), np.zeros((k, d)), second, shift)

    def copy(self):
        return SufficientStats(
            self.zeroth.copy(), self.first.copy(), self.second.copy(), self.shift.copy(),
            self.log_likelihood, self.n_frames,
        )

    # ------------------------------------------------------------- algebra
    def recentred(self, shift):
        """The same statistics taken about another point ``shift`` (exact algebra).

        Parameters
        ----------
        shift : ndarray of shape (n_features,)

        Returns
        -------
        SufficientStats
        """
        shift = np.asarray(shift, dtype=np.float64)
        if shift.shape != self.shift.shape:
            raise ValueError(f"shift must have shape {self.shift.shape}, got {shift.shape}.")
        if np.array_equal(shift, self.shift):
            return self.copy()
        delta = self.shift - shift  # x - new = (x - old) + delta
        n, f = self.zeroth, self.first
        first = f + n[:, None] * delta
        if self.layout == "diag":
            second = self.second + 2.0 * f * delta + n[:, None] * delta**2
        else:
            cross = f[:, :, None] * delta[None, None, :]
            second = (
                self.second + cross + cross.transpose(0, 2, 1)
                + n[:, None, None] * np.outer(delta, delta)[None]
            )
        return SufficientStats(n.copy(), first, second, shift.copy(), self.log_likelihood, self.n_frames)

    def _check_compatible(self, other):
        if not isinstance(other, SufficientStats):
            raise TypeError(f"can only add SufficientStats, not {type(other).__name__}.")
        if other.second.shape != self.second.shape:
            raise ValueError(
                "cannot add statistics of different shapes: "
                f"{self.second.shape} and {other.second.shape} (n_components, n_features "
                "and the covariance layout must match)."
            )

    def __add__(self, other):
        self._check_compatible(other)
        result = self.copy()
        result += other
        return result

    def __iadd__(self, other):
        self._check_compatible(other)
        if not np.array_equal(other.shift, self.shift):
            other = other.recentred(self.shift)
        self.zeroth += other.zeroth
        self.first += other.first
        self.second += other.second
        self.log_likelihood += other.log_likelihood
        self.n_frames += other.n_frames
        return self

    def __radd__(self, other):
        # lets ``sum(list_of_stats)`` work: sum starts from the integer 0.
        if isinstance(other, numbers.Number) and other == 0:
            return self.copy()
        return NotImplemented

    def __mul__(self, factor):
        if not isinstance(factor, numbers.Real) or isinstance(factor, bool):
            return NotImplemented
        factor = float(factor)
        if not np.isfinite(factor) or factor < 0:
            raise ValueError(f"statistics can only be scaled by a finite factor >= 0, got {factor}.")
        return SufficientStats(
            self.zeroth * factor, self.first * factor, self.second * factor, self.shift.copy(),
            self.log_likelihood * factor, self.n_frames * factor,
        )

    __rmul__ = __mul__

    def scale(self, factor):
        """Return the statistics multiplied by ``factor`` (e.g. a decay ``1 - g``)."""
        return self * factor

    def non_finite_fields(self):
        """Names of the fields holding NaN or inf, in field order (empty when all are finite).

        Returns
        -------
        list of str
            Drawn from ``zeroth``, ``first``, ``second``, ``shift``,
            ``log_likelihood``, ``n_frames``.
        """
        fields = ("zeroth", "first", "second", "shift", "log_likelihood", "n_frames")
        return [name for name in fields if not np.isfinite(getattr(self, name)).all()]

    # -------------------------------------------------------- derived moments
    def means(self):
        """Per-component means ``first / zeroth + shift``, shape (n_components, n_features).

        Components with no mass get the shift point (their mean is undefined).
        """
        safe = np.where(self.zeroth > 0, self.zeroth, 1.0)
        return self.first / safe[:, None] + self.shift

    def covariances(self):
        """Per-component centred covariances (maximum likelihood, no regularisation).

        Returns
        -------
        ndarray of shape (n_components, n_features) or (n_components, n_features, n_features)
        """
        safe = np.where(self.zeroth > 0, self.zeroth, 1.0)
        mean = self.first / safe[:, None]
        if self.layout == "diag":
            return self.second / safe[:, None] - mean**2
        return self.second / safe[:, None, None] - mean[:, :, None] * mean[:, None, :]

    # ----------------------------------------------------------------- files
    def to_arrays(self):
        """The statistics as a dict of plain arrays (for ``np.savez``)."""
        return {
            **header(STATS_KIND),
            "zeroth": self.zeroth,
            "first": self.first,
            "second": self.second,
            "shift": self.shift,
            "log_likelihood": np.array(self.log_likelihood),
            "n_frames": np.array(self.n_frames),
        }

    @classmethod
    def from_arrays(cls, arrays, *, source="statistics"):
        """Rebuild statistics from :meth:`to_arrays` output; validate everything.

        Parameters
        ----------
        arrays : mapping of str to ndarray
            The header, ``zeroth``, ``first``, ``second``, ``shift``,
            ``log_likelihood`` and ``n_frames`` (others are ignored).
        source : str
            What the arrays came from, for the messages.

        Raises
        ------
        ValueError
            Naming ``source`` if the header is wrong, a field is missing, of
            the wrong dtype or shape (a scalar stored as a vector, shapes
            that do not fit together), or not finite.
        """
        check_header(arrays, STATS_KIND, source)
        check_arrays(arrays, file_fields(), source)
        stats = cls(
            arrays["zeroth"], arrays["first"], arrays["second"], arrays["shift"],
            float(arrays["log_likelihood"]), float(arrays["n_frames"]),
        )
        bad = stats.non_finite_fields()
        if bad:
            raise ValueError(f"{source} holds non-finite values in {bad[0]!r}; the file is corrupt.")
        return stats

    def save(self, path):
        """Write the statistics to one ``.npz`` file (atomically)."""
        write_npz_atomic(path, self.to_arrays())

    @classmethod
    def load(cls, path):
        """Read statistics written by :meth:`save` (no pickle).

        Only the expected members are read, each checked (dtype, shape,
        size) before its data; see :mod:`streamgmm.io`.

        Raises
        ------
        ValueError
            If the file is missing, damaged, of another kind, or malformed.
        """
        source = f"statistics file {path}"
        return cls.from_arrays(read_npz(path, file_fields(), kind=STATS_KIND, source=source), source=source)
