"""DET plots: miss and false-alarm rates on normal-deviate axes, written as a PNG.

Needs matplotlib (``pip install 'streamgmm[plot]'``), imported only when a
plot is drawn.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from .metrics import _check_trials, _crossing, _roc

# Tick positions (probabilities) for the normal-deviate axes, in the order
# they are tried: powers of ten, then 5s, then 2s, then the rest.
_DET_TICKS = (
    0.0001, 0.001, 0.01, 0.1,
    0.5, 0.0005, 0.005, 0.05, 0.9,
    0.2, 0.0002, 0.002, 0.02, 0.8,
    0.3, 0.4, 0.6, 0.7, 0.95, 0.98, 0.99,
)
_LOW_LIMITS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)
_HIGH_LIMITS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _auto_limits(systems):
    """Axis range shared by both DET axes, from trial counts and EERs.

    Low end: the coarser of the two rate resolutions (1 / n_targets,
    1 / n_nontargets) of the best-resolved system, rounded down to a tick
    between 0.01 % and 1 %. High end: at least 40 %, and about twice the
    worst EER so weak systems stay on the plot.
    """
    resolution = min(max(1.0 / nt, 1.0 / nn) for *_, nt, nn in systems)
    lo = max([v for v in _LOW_LIMITS if v <= resolution], default=_LOW_LIMITS[0])
    worst = max(rate for _, _, rate, _, _ in systems)
    hi = next((v for v in _HIGH_LIMITS if v >= 2.0 * worst), _HIGH_LIMITS[-1])
    return lo, hi


def _det_ticks(lo, hi):
    """Tick probabilities in [lo, hi], thinned so labels do not collide.

    Candidates are tried in the order of `_DET_TICKS` (powers of ten first)
    and kept when at least a fixed fraction of the axis (in normal deviates)
    away from every tick already kept.
    """
    from scipy.stats import norm

    min_gap = 0.07 * (norm.ppf(hi) - norm.ppf(lo))
    chosen: list[float] = []
    for t in _DET_TICKS:
        if not lo <= t <= hi:
            continue
        z = norm.ppf(t)
        if all(abs(z - norm.ppf(c)) >= min_gap for c in chosen):
            chosen.append(t)
    return sorted(chosen)


def _pct_label(p):
    pct = 100.0 * p
    text = f"{pct:.2f}".rstrip("0").rstrip(".")
    return text


def plot_det(curves: Mapping[str, tuple], path, *, title="DET curve",
             limits=None, dpi=120):
    """Write a DET plot of one or more systems as a PNG file.

    Both axes are on the normal-deviate (probit) scale,
    ``scipy.stats.norm.ppf(rate)``, on which the error trade-off of two
    Gaussian score distributions is a straight line; ticks are labelled in
    percent. Each system's EER (linear interpolation, see `eer`) is marked on
    its curve and given in the legend. Points at a rate of exactly 0 or 1,
    which lie at infinity on this scale, are drawn on the plot border.

    The figure is drawn with matplotlib's Agg canvas directly (no pyplot, the
    global backend is left alone) and written atomically: the PNG appears
    complete or not at all.

    Parameters
    ----------
    curves : mapping of str to (scores, labels)
        System name -> its trial scores and 0/1 labels, as for `det_curve`.
    path : str or os.PathLike
        Output file; written as PNG whatever its suffix.
    title : str, default="DET curve"
        Figure title.
    limits : (float, float), optional
        Lowest and highest error rate shown on both axes, as fractions
        (e.g. ``(0.001, 0.5)``). By default the low end follows the number
        of trials (a rate below 1 / n_trials cannot be measured), between
        0.01 % and 1 %, and the high end is 40 % or more, about twice the
        worst EER.
    dpi : int, default=120
        Resolution of the PNG.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install streamgmm[plot]``).
    ValueError
        If `curves` is empty, `limits` are not in (0, 1), or any system's
        trials are invalid (see `det_curve`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> scores = np.r_[rng.normal(2, 1, 500), rng.normal(0, 1, 5000)]
    >>> labels = np.r_[np.ones(500), np.zeros(5000)]
    >>> out = os.path.join(tempfile.mkdtemp(), "det.png")
    >>> plot_det({"gmm-ubm": (scores, labels)}, out).name
    'det.png'
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(
            "plot_det needs matplotlib, which is not installed; install it "
            "with `pip install streamgmm[plot]`"
        ) from exc
    from scipy.stats import norm

    if not curves:
        raise ValueError("curves is empty: pass {name: (scores, labels)}")
    computed = {}
    for name, pair in curves.items():
        try:
            scores, labels = pair
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"curves[{name!r}] must be a (scores, labels) pair"
            ) from exc
        try:
            s, lab = _check_trials(scores, labels)
        except ValueError as exc:
            raise ValueError(f"system {name!r}: {exc}") from exc
        far, frr, _ = _roc(s, lab)
        rate, _ = _crossing(far, frr, np.zeros_like(far))
        computed[name] = (far, frr, rate, int(lab.sum()), int((~lab).sum()))

    if limits is None:
        limits = _auto_limits(computed.values())
    lo, hi = (float(v) for v in limits)
    if not (0.0 < lo < hi < 1.0):
        raise ValueError(f"limits must satisfy 0 < low < high < 1, got {limits}")

    # draw values just beyond the limits so points at 0 / 1 sit on the border
    z_lo, z_hi = norm.ppf(lo), norm.ppf(hi)
    pad = 0.02 * (z_hi - z_lo)

    def probit(p):
        with np.errstate(divide="ignore"):
            z = norm.ppf(p)
        return np.clip(z, z_lo - pad, z_hi + pad)

    fig = Figure(figsize=(6.0, 6.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = [f"C{i % 10}" for i in range(len(computed))]
    for color, (name, (far, frr, rate, nt, nn)) in zip(colors, computed.items()):
        ax.plot(probit(far), probit(frr), color=color, lw=1.8,
                label=f"{name} (EER {100 * rate:.2f}%)", drawstyle="default",
                clip_on=True)
        ax.plot(probit(rate), probit(rate), "o", color=color, ms=7,
                mec="black", mew=0.8, zorder=5, clip_on=False)

    ticks = _det_ticks(lo, hi)
    zt = norm.ppf(ticks)
    labels = [_pct_label(t) for t in ticks]
    ax.set_xticks(zt)
    ax.set_xticklabels(labels)
    ax.set_yticks(zt)
    ax.set_yticklabels(labels)
    ax.set_xlim(z_lo - pad, z_hi + pad)
    ax.set_ylim(z_lo - pad, z_hi + pad)
    ax.set_aspect("equal")
    ax.plot([z_lo - pad, z_hi + pad], [z_lo - pad, z_hi + pad], ls=":",
            color="0.6", lw=1.0, label="FAR = FRR")
    ax.grid(True, color="0.85", lw=0.8)
    ax.set_xlabel("False acceptance rate (%)")
    ax.set_ylabel("False rejection rate (%)")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    fig.tight_layout()

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
