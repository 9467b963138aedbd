"""Tests for speaker_id.evaluation.metrics and plots."""

import numpy as np
import pytest

from speaker_id.evaluation.metrics import (
    det_curve,
    eer,
    identification_accuracy,
    min_dcf,
)
from speaker_id.evaluation.plots import plot_det


def _gaussian_trials(rng, n_tar, n_non, d_prime):
    scores = np.r_[rng.normal(d_prime, 1.0, n_tar), rng.normal(0.0, 1.0, n_non)]
    labels = np.r_[np.ones(n_tar, dtype=int), np.zeros(n_non, dtype=int)]
    perm = rng.permutation(scores.size)
    return scores[perm], labels[perm]


# ---------------------------------------------------------------------------
# EER
# ---------------------------------------------------------------------------

def test_eer_perfect_separation_is_zero():
    scores = [0.1, 0.3, 0.2, 2.0, 1.5, 3.0]
    labels = [0, 0, 0, 1, 1, 1]
    for method in ("linear", "rocch"):
        rate, thr = eer(scores, labels, method=method)
        assert rate == 0.0
        # accepting score >= thr makes no error at all
        s, lab = np.asarray(scores), np.asarray(labels)
        assert np.all(s[lab == 1] >= thr) and np.all(s[lab == 0] < thr)


def test_eer_reversed_scores_is_one():
    assert eer([2.0, 3.0, 0.0, 1.0], [0, 0, 1, 1])[0] == 1.0


def test_eer_identical_distributions_is_half():
    rng = np.random.default_rng(1)
    scores, labels = _gaussian_trials(rng, 20000, 20000, d_prime=0.0)
    rate, _ = eer(scores, labels)
    assert abs(rate - 0.5) < 0.01


def test_eer_all_scores_tied_is_half():
    # one threshold: accept all (FAR 1, FRR 0) or nothing (FAR 0, FRR 1);
    # the ROC is the single diagonal segment, crossing at 0.5
    assert eer([1.0] * 7, [1, 0, 0, 1, 0, 0, 0])[0] == pytest.approx(0.5)


def test_eer_hand_computed_example():
    # targets:     0.9  0.7  0.4        non-targets: 0.8  0.5  0.3  0.1
    # sorted by decreasing score: .9T .8N .7T .5N .4T .3N .1N
    # vertices (FAR, FRR) at each threshold (accept score >= t):
    #   t=inf (0, 1)  t=.9 (0, 2/3)  t=.8 (1/4, 2/3)  t=.7 (1/4, 1/3)
    #   t=.5 (2/4, 1/3)  t=.4 (2/4, 0)  t=.3 (3/4, 0)  t=.1 (1, 0)
    # FRR - FAR: 1, 2/3, 5/12, 1/12, -1/6, ...  -> crossing between t=.7
    # and t=.5, on the horizontal segment FRR = 1/3 from FAR 1/4 to 1/2:
    #   FAR = 1/3 there, so EER = 1/3; alpha = (1/12) / (1/12 + 1/6) = 1/3
    #   of the way, threshold = .7 + (1/3)(.5 - .7) = 0.6333...
    scores = [0.9, 0.7, 0.4, 0.8, 0.5, 0.3, 0.1]
    labels = [1, 1, 1, 0, 0, 0, 0]
    rate, thr = eer(scores, labels)
    assert rate == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.7 - 0.2 / 3)
    # ROCCH: the chord from (0, 2/3) to (1/2, 0), FRR = 2/3 - (4/3) FAR,
    # passes through (1/4, 1/3), so the lower hull is (0,1) (0,2/3) (1/2,0)
    # (1,0) and the crossing is 2/3 - (4/3) x = x  ->  x = 2/7
    rate_h, _ = eer(scores, labels, method="rocch")
    assert rate_h == pytest.approx(2 / 7)


def test_eer_ties_between_classes_split_evenly():
    # a target and a non-target tie at 0.5: the ROC has one diagonal segment
    # from (0, 1/2) to (1/2, 0); linear interpolation meets FAR = FRR at 1/4,
    # the expected error of breaking the tie at random.
    scores = [0.9, 0.5, 0.5, 0.1]
    labels = [1, 1, 0, 0]
    assert eer(scores, labels)[0] == pytest.approx(0.25)
    # order of the tied trials must not matter
    assert eer(scores[::-1], labels[::-1])[0] == pytest.approx(0.25)


def _sklearn_eer(scores, labels):
    roc_curve = pytest.importorskip("sklearn.metrics").roc_curve
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fnr - fpr
    i = np.flatnonzero(d > 0)[-1]
    a = d[i] / (d[i] - d[i + 1])
    return fpr[i] + a * (fpr[i + 1] - fpr[i])


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_sklearn_roc(seed):
    rng = np.random.default_rng(seed)
    n_tar, n_non = rng.integers(5, 300, size=2)
    scores, labels = _gaussian_trials(rng, n_tar, n_non, d_prime=rng.uniform(0, 3))
    if seed % 2:  # quantised scores: many ties within and across classes
        scores = np.round(scores, 1)
    rate, _ = eer(scores, labels)
    assert rate == pytest.approx(_sklearn_eer(scores, labels), abs=1e-12)
    # the convex-hull EER never exceeds the linear one
    assert eer(scores, labels, method="rocch")[0] <= rate + 1e-12


def test_eer_threshold_is_operating_point():
    rng = np.random.default_rng(7)
    scores, labels = _gaussian_trials(rng, 2000, 2000, d_prime=2.0)
    rate, thr = eer(scores, labels)
    far = np.mean(scores[labels == 0] >= thr)
    frr = np.mean(scores[labels == 1] < thr)
    assert abs(far - rate) < 2e-3 and abs(frr - rate) < 2e-3


def test_eer_accepts_bool_labels_and_lists():
    assert eer([1, 2, 3, 4], [False, False, True, True]) == (0.0, 3.0)


# ---------------------------------------------------------------------------
# det_curve
# ---------------------------------------------------------------------------

def test_det_curve_shapes_and_monotonicity():
    rng = np.random.default_rng(3)
    scores, labels = _gaussian_trials(rng, 50, 200, d_prime=1.0)
    scores = np.round(scores, 1)
    far, frr, thr = det_curve(scores, labels)
    assert far.shape == frr.shape == thr.shape == (np.unique(scores).size + 1,)
    assert (far[0], frr[0], thr[0]) == (0.0, 1.0, np.inf)
    assert (far[-1], frr[-1]) == (1.0, 0.0)
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(frr) <= 0)
    assert np.all(np.diff(thr) < 0)
    # each vertex is what the threshold rule gives
    for f, m, t in zip(far[1:], frr[1:], thr[1:]):
        assert f == np.mean(scores[labels == 0] >= t)
        assert m == np.mean(scores[labels == 1] < t)


# ---------------------------------------------------------------------------
# minDCF
# ---------------------------------------------------------------------------

def _brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa):
    """Independent check: try every midpoint between sorted scores."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    tar = scores[labels == 1]
    non = scores[labels == 0]
    u = np.unique(scores)
    cands = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2.0, u[-1] + 1.0]
    best = np.inf
    for t in cands:
        p_miss = np.sum(tar < t) / tar.size
        p_fa = np.sum(non >= t) / non.size
        best = min(best, c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa)
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


@pytest.mark.parametrize(
    "p_target,c_miss,c_fa",
    [(0.01, 1.0, 1.0), (0.01, 10.0, 1.0), (0.5, 1.0, 1.0), (0.001, 1.0, 1.0), (0.3, 1.0, 5.0)],
)
def test_min_dcf_matches_brute_force(p_target, c_miss, c_fa):
    rng = np.random.default_rng(11)
    scores, labels = _gaussian_trials(rng, 120, 900, d_prime=2.0)
    scores = np.round(scores, 2)  # some ties
    got, thr = min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    want = _brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    # the returned threshold achieves it
    p_miss = np.mean(scores[labels == 1] < thr)
    p_fa = np.mean(scores[labels == 0] >= thr)
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    norm = min(c_miss * p_target, c_fa * (1 - p_target))
    assert cost / norm == pytest.approx(got)


def test_min_dcf_bounds_and_unnormalized():
    rng = np.random.default_rng(5)
    scores, labels = _gaussian_trials(rng, 100, 100, d_prime=0.0)
    dcf, _ = min_dcf(scores, labels)
    assert 0.0 <= dcf <= 1.0
    perfect, _ = min_dcf([0, 1, 5, 6], [0, 0, 1, 1])
    assert perfect == 0.0
    raw, _ = min_dcf(scores, labels, p_target=0.2, c_miss=2.0, normalize=False)
    normed, _ = min_dcf(scores, labels, p_target=0.2, c_miss=2.0)
    assert raw == pytest.approx(normed * min(2.0 * 0.2, 0.8))


@pytest.mark.parametrize("kwargs", [{"p_target": 0.0}, {"p_target": 1.0}, {"c_miss": 0.0}, {"c_fa": -1.0}])
def test_min_dcf_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        min_dcf([0, 1], [0, 1], **kwargs)


# ---------------------------------------------------------------------------
# input errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("func", [eer, min_dcf, det_curve])
@pytest.mark.parametrize(
    "scores,labels,match",
    [
        ([0.1, 0.2, 0.3], [0, 0, 0], "no target"),
        ([0.1, 0.2, 0.3], [1, 1, 1], "no non-target"),
        ([0.1, 0.2, 0.3], [0, 1], "differ in length"),
        ([0.1, np.nan, 0.3], [0, 1, 1], "NaN"),
        ([0.1, np.inf, 0.3], [0, 1, 1], "inf"),
        ([0.1, 0.2, 0.3], [0, 1, 2], "1 \\(target\\) or 0"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
        ([], [], "no target"),
    ],
)
def test_bad_trials_raise(func, scores, labels, match):
    with pytest.raises(ValueError, match=match):
        func(scores, labels)


def test_eer_unknown_method():
    with pytest.raises(ValueError, match="method"):
        eer([0, 1], [0, 1], method="cubic")


# ---------------------------------------------------------------------------
# identification accuracy
# ---------------------------------------------------------------------------

def test_identification_accuracy_closed_set():
    assert identification_accuracy(["a", "b", "c", "a"], ["a", "b", "c", "b"]) == 0.75
    assert identification_accuracy([1, 2], [1, 2]) == 1.0


def test_identification_accuracy_open_set():
    pred = ["a", "unknown", "unknown", "b", "a"]
    truth = ["a", "b", "x", "y", "unknown"]
    # a: correct; b rejected: wrong; x not enrolled, rejected: correct;
    # y not enrolled but accepted as b: wrong; "unknown" is not enrolled
    # either, predicted "a": wrong
    assert identification_accuracy(pred, truth, enrolled=["a", "b"]) == pytest.approx(2 / 5)
    # closed-set rule: only the first one is right
    assert identification_accuracy(pred, truth) == pytest.approx(1 / 5)
    # custom rejection symbol
    assert identification_accuracy([None, "a"], ["z", "a"], enrolled={"a"}, unknown=None) == 1.0


def test_identification_accuracy_errors():
    with pytest.raises(ValueError, match="length"):
        identification_accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        identification_accuracy([], [])


# ---------------------------------------------------------------------------
# DET plot
# ---------------------------------------------------------------------------

def test_plot_det_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    curves = {
        "good": _gaussian_trials(rng, 200, 2000, d_prime=3.0),
        "weak": _gaussian_trials(rng, 200, 2000, d_prime=1.0),
        "perfect": ([5.0, 6.0, 0.0, 1.0], [1, 1, 0, 0]),
    }
    out = plot_det(curves, tmp_path / "det.png", title="test")
    assert out == tmp_path / "det.png"
    data = out.read_bytes()
    assert len(data) > 0
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing but the PNG left behind (the temporary file was renamed)
    assert [p.name for p in tmp_path.iterdir()] == ["det.png"]


def test_plot_det_errors(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="empty"):
        plot_det({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'bad'.*no target"):
        plot_det({"bad": ([0.0, 1.0], [0, 0])}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="limits"):
        plot_det({"ok": ([0.0, 1.0], [0, 1])}, tmp_path / "x.png", limits=(0.5, 0.1))
    assert not any(tmp_path.iterdir())


def test_plot_det_missing_matplotlib(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install streamgmm\[plot\]"):
        plot_det({"x": ([0.0, 1.0], [0, 1])}, tmp_path / "x.png")
