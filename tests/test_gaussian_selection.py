"""Gaussian selection: ``DensityPlan.top_components`` against a sort of the whole log joint density."""

import numba
import numpy as np
import pytest

from streamgmm import OnlineGMM
from streamgmm.estep import DensityPlan


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4)) * 2 + rng.integers(0, 3, size=(3000, 1))
    return OnlineGMM(16, covariance_type="diag", random_state=0, max_iter=200, tol=1e-2).fit(X)


def plan_of(model, **options):
    return DensityPlan(model.weights_, model.means_, model.precisions_cholesky_, model.covariance_type,
                       model.shift_, **options)


def expected_top(joint, n_top):
    # a stable sort of the negated densities: highest first, a tie keeps the lower index first
    return np.argsort(-joint, axis=1, kind="stable")[:, :n_top]


@pytest.mark.parametrize("n_top", [1, 3, 16])
@pytest.mark.parametrize("block_size", [None, 7])
def test_top_components_are_the_highest_densities(model, n_top, block_size):
    # block_size 7: 2,000 frames are many blocks, and (with 2 threads) split over threads
    X = np.random.default_rng(4).normal(size=(2000, 4)) * 3
    plan = plan_of(model, block_size=block_size)
    index = plan.top_components(X, n_top)
    assert index.shape == (2000, n_top) and index.dtype == np.int64
    np.testing.assert_array_equal(index, expected_top(plan.log_joint(X), n_top))


def test_top_components_split_over_threads_equal_one_part(model, monkeypatch):
    if numba.get_num_threads() < 2:
        pytest.skip("one Numba thread: nothing is split")
    X = np.random.default_rng(5).normal(size=(1500, 4))
    plan = plan_of(model, block_size=8)
    calls = []
    original = plan._top_rows
    monkeypatch.setattr(plan, "_top_rows", lambda part, kernels, offset=0, **kw: calls.append(len(part))
                        or original(part, kernels, offset, **kw))
    index = plan.top_components(X, 4)
    assert len(calls) == numba.get_num_threads() and sum(calls) == 1500
    np.testing.assert_array_equal(index, expected_top(plan.log_joint(X), 4))


def test_ties_keep_the_lower_index_first():
    # components 1 and 2 are the same Gaussian: every frame ties them
    means = np.array([[5.0], [0.0], [0.0], [-5.0]])
    plan = DensityPlan(np.full(4, 0.25), means, np.ones((4, 1)), "diag", np.zeros(1))
    X = np.array([[0.1], [-0.3], [4.0]])
    np.testing.assert_array_equal(plan.top_components(X, 2), [[1, 2], [1, 2], [0, 1]])


def test_float32_plan_selects_like_float64_away_from_ties(model):
    X = np.random.default_rng(6).normal(size=(500, 4)).astype(np.float32)
    joint = plan_of(model).log_joint(X)
    ordered = np.sort(joint, axis=1)[:, ::-1]
    clear = ordered[:, 2] - ordered[:, 3] > 1e-3  # no near tie for the 3rd place
    single = plan_of(model, dtype=np.float32).top_components(X, 3)
    np.testing.assert_array_equal(np.sort(single[clear], axis=1), np.sort(expected_top(joint, 3)[clear], axis=1))
    assert clear.mean() > 0.9


@pytest.mark.parametrize("n_top", [0, 17, -1])
def test_n_top_out_of_range(model, n_top):
    with pytest.raises(ValueError, match="n_top must be between 1 and n_components=16"):
        plan_of(model).top_components(np.zeros((3, 4)), n_top)


def test_over_ranges_parts_cover_the_items_in_order():
    from streamgmm.estep import over_ranges

    assert over_ranges(lambda a, b, serial: (a, b, serial), 10, 8) == [(0, 10, False)]  # too few to split
    parts = over_ranges(lambda a, b, serial: (a, b, serial), 1000, 8)
    assert len(parts) == numba.get_num_threads()
    assert [p[0] for p in parts] == [0] + [p[1] for p in parts[:-1]] and parts[-1][1] == 1000
    assert all(serial == (len(parts) > 1) for _, _, serial in parts)

    def fail(a, b, serial):
        raise ValueError(f"items {a}-{b}")

    with pytest.raises(ValueError, match="items"):
        over_ranges(fail, 1000, 8)
