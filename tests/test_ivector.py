"""The total-variability (i-vector) extractor: EM, the planted subspace, closed forms, additivity, files, errors.

Most tests draw utterances from the model itself, in the UBM's normalised
space (counts n_k from a multinomial over the UBM weights; f_k = n_k T_k w +
sqrt(n_k) noise, the sum of n_k unit-variance frames around T_k w), then
convert them to SufficientStats in raw feature space about a random shift, so
the extractor's own centring and whitening is on the path. Expected values
are computed here with dense supervector algebra from the generated
normalised statistics, never taken from the extractor.
"""


import numpy as np
import pytest
from conftest import fit_ubm
from scipy.linalg import subspace_angles
from scipy.stats import multivariate_normal

from speaker_id.models.ivector import (
    IvectorExtractor,
    IvectorStats,
    estimate_total_variability,
)
from streamgmm import NotFittedError, OnlineGMM, SufficientStats, accumulate

K, D, R = 12, 4, 3
N_UTTERANCES = 300


@pytest.fixture(scope="module")
def ubm():
    return fit_ubm(K, D, seed=0)


@pytest.fixture(scope="module")
def planted():
    """The true T (normalised space), with a per-dimension scale so no two directions tie."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(K, D, R)) * np.array([0.8, 0.6, 0.4])


def generate(ubm, T, n_utterances, seed, frames=(30, 60)):
    """Utterances drawn from the model.

    Returns the SufficientStats (raw space), the counts (U, K), the normalised
    first-order statistics (U, K, D) and the latents w (U, R).
    """
    rng = np.random.default_rng(seed)
    std = np.sqrt(ubm.covariances_)
    stats, counts, firsts, ws = [], [], [], []
    for _ in range(n_utterances):
        n = rng.multinomial(rng.integers(*frames), ubm.weights_).astype(float)
        w = rng.standard_normal(T.shape[2])
        f = n[:, None] * (T @ w) + np.sqrt(n)[:, None] * rng.standard_normal(T.shape[:2])
        shift = ubm.shift_ + rng.normal(size=ubm.means_.shape[1])
        # x = m_k + std_k z  =>  sum_t r_tk (x_t - shift) = std_k f_k + n_k (m_k - shift)
        first = std * f + n[:, None] * (ubm.means_ - shift)
        second = n[:, None] * (ubm.covariances_ + (ubm.means_ - shift) ** 2)
        stats.append(SufficientStats(n, first, second, shift, 0.0, n.sum()))
        counts.append(n)
        firsts.append(f)
        ws.append(w)
    return stats, np.array(counts), np.array(firsts), np.array(ws)


@pytest.fixture(scope="module")
def data(ubm, planted):
    return generate(ubm, planted, N_UTTERANCES, seed=2)


@pytest.fixture(scope="module")
def fitted(ubm, data):
    return IvectorExtractor(rank=R, max_iter=20, random_state=0).fit(ubm, data[0])


def dense_posterior(T, n, f):
    """(I + T^T N T)^{-1} T^T F and its covariance, with the (K*D, R) supervector matrix."""
    k, d, r = T.shape
    Tsup = T.reshape(k * d, r)
    N = np.diag(np.repeat(n, d))
    precision = np.eye(r) + Tsup.T @ N @ Tsup
    covariance = np.linalg.inv(precision)
    return covariance @ Tsup.T @ f.reshape(-1), covariance


def dense_objective(T, n, f):
    """log N(F; 0, N + N T T^T N) + 0.5 F^T N^{-1} F + 0.5 log|N| + (dim/2) log 2 pi over components with counts."""
    seen = n > 0
    k, d, r = T[seen].shape
    Tsup = T[seen].reshape(k * d, r)
    nrep = np.repeat(n[seen], d)
    F = f[seen].reshape(-1)
    cov = np.diag(nrep) + (nrep[:, None] * Tsup) @ (nrep[:, None] * Tsup).T
    log_pdf = multivariate_normal(np.zeros(k * d), cov).logpdf(F)
    return log_pdf + 0.5 * F @ (F / nrep) + 0.5 * np.log(nrep).sum() + 0.5 * k * d * np.log(2 * np.pi)


# ------------------------------------------------------------------ EM
@pytest.mark.parametrize("min_divergence", [True, False])
def test_em_raises_the_objective_every_iteration(ubm, data, min_divergence):
    extractor = IvectorExtractor(rank=R, max_iter=12, min_divergence=min_divergence, random_state=3)
    extractor.fit(ubm, data[0])
    objective = np.array(extractor.objective_)
    assert extractor.n_iter_ == 12 and objective.shape == (12,)
    # EM guarantees a non-decreasing marginal likelihood; allow rounding only
    steps = np.diff(objective)
    assert np.all(steps >= -1e-9 * np.abs(objective[1:])), steps
    assert objective[-1] - objective[0] > 1000.0  # it learnt: from about 1,700 to 20,000 nats


def test_min_divergence_converges_faster(ubm, data):
    runs = {
        md: IvectorExtractor(rank=R, max_iter=6, min_divergence=md, random_state=3).fit(ubm, data[0]).objective_[-1]
        for md in (True, False)
    }
    assert runs[True] > runs[False]


def test_recovers_the_planted_subspace(fitted, planted):
    # Each entry of T is estimated from about 300 utterances * 45 frames / 12
    # components ~ 1,100 unit-variance frames: a standard error of ~0.03. The
    # weakest planted direction has entries of scale 0.4, so its angle to the
    # estimated span should be about 0.03 / 0.4 ~ 0.075 rad (measured: 0.088,
    # 0.055 and 0.047 for the three). 0.2 rad (11 degrees) leaves a margin of
    # 2x, while a random 3-D subspace of R^48 (the initial T, next test) has
    # angles above 1.2 rad.
    k, d, r = planted.shape
    angles = subspace_angles(planted.reshape(k * d, r), fitted.T_.reshape(k * d, r))
    assert angles.max() < 0.2, angles


def test_initial_subspace_is_far_from_the_planted_one(ubm, planted):
    k, d, r = planted.shape
    start = IvectorExtractor(rank=R, random_state=0).initialise(ubm)
    assert subspace_angles(planted.reshape(k * d, r), start.T_.reshape(k * d, r)).max() > 1.0


def test_min_divergence_keeps_the_prior_standard(fitted, data):
    # at the fixed point of EM the average posterior second moment is the prior's, I
    # (the objective has stopped moving after 20 iterations: the last steps are < 1e-8 nats)
    assert abs(fitted.objective_[-1] - fitted.objective_[-2]) < 1e-6
    acc = fitted.accumulate(data[0])
    average = acc.ivector_scatter / acc.n_utterances
    assert np.abs(average - np.eye(R)).max() < 1e-6, average


def test_ivectors_track_the_planted_latents(fitted, data, planted):
    # the i-vectors equal the true w up to the rotation that relates the two
    # parametrisations (T_est ~ T_true Q); regress one on the other
    ivectors, w = fitted.transform(data[0]), data[3]
    Q, *_ = np.linalg.lstsq(w, ivectors, rcond=None)
    residual = ivectors - w @ Q
    assert (residual**2).sum() / (ivectors**2).sum() < 0.05


# ----------------------------------------------------------- closed forms
def test_extract_equals_the_dense_posterior_mean(fitted, data):
    stats, counts, firsts, _ = data
    for i in (0, 7, 123):
        expected, _ = dense_posterior(np.asarray(fitted.T_), counts[i], firsts[i])
        np.testing.assert_allclose(fitted.extract(stats[i]), expected, rtol=0, atol=1e-10)


def test_posterior_covariance_equals_the_dense_one(fitted, data):
    stats, counts, firsts, _ = data
    expected_mean, expected_cov = dense_posterior(np.asarray(fitted.T_), counts[5], firsts[5])
    mean, cov = fitted.posterior(stats[5])
    np.testing.assert_allclose(mean, expected_mean, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cov, expected_cov, rtol=0, atol=1e-12)


def test_transform_does_not_depend_on_the_batch_size(fitted, data):
    one = IvectorExtractor.from_arrays(fitted.to_arrays()).set_params(batch_size=1)
    np.testing.assert_allclose(one.transform(data[0][:70]), fitted.transform(data[0][:70]), rtol=0, atol=1e-12)


def test_accumulate_equals_dense_posterior_sums(fitted, data):
    stats, counts, firsts, _ = data
    T = np.asarray(fitted.T_)
    pick = [3, 40, 41, 200]
    second = np.zeros((K, R, R))
    cross = np.zeros((K, D, R))
    scatter = np.zeros((R, R))
    objective = 0.0
    for i in pick:
        mean, cov = dense_posterior(T, counts[i], firsts[i])
        moment = cov + np.outer(mean, mean)
        second += counts[i][:, None, None] * moment
        cross += firsts[i][:, :, None] * mean
        scatter += moment
        objective += dense_objective(T, counts[i], firsts[i])
    acc = fitted.accumulate([stats[i] for i in pick])
    assert acc.n_utterances == len(pick)
    np.testing.assert_allclose(acc.zeroth, counts[pick].sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(acc.second_full(), second, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(acc.cross, cross, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(acc.ivector_scatter, scatter, rtol=1e-10, atol=1e-12)
    # the objective is the marginal log-likelihood of F up to the stated T-free terms
    np.testing.assert_allclose(acc.objective, objective, rtol=1e-9)


def test_m_step_solves_the_normal_equations(fitted, data):
    acc = fitted.accumulate(data[0])
    T = estimate_total_variability(acc, fitted.T_, min_divergence=False)
    A = acc.second_full()
    # T_k A_k = C_k for every component
    np.testing.assert_allclose(np.matmul(T, A), acc.cross, rtol=1e-9, atol=1e-9 * np.abs(acc.cross).max())
    # min-divergence: T G with G G^T the average second moment, i.e. the same
    # supervector covariance T S T^T as the plain estimate with prior N(0, S)
    S = acc.ivector_scatter / acc.n_utterances
    T_md = estimate_total_variability(acc, fitted.T_, min_divergence=True)
    flat, flat_md = T.reshape(K * D, R), T_md.reshape(K * D, R)
    np.testing.assert_allclose(flat_md @ flat_md.T, flat @ S @ flat.T, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------ additivity
def test_extraction_from_added_statistics_equals_the_concatenation():
    real_ubm = fit_ubm(8, 3, seed=5)
    A = real_ubm.sample(120)[0] + 0.3
    B = real_ubm.sample(80)[0] + 0.3
    extractor = IvectorExtractor(rank=2, random_state=0).initialise(real_ubm)
    together = extractor.extract(accumulate(real_ubm, np.concatenate([A, B])))
    added = extractor.extract(accumulate(real_ubm, A) + accumulate(real_ubm, B))
    assert np.abs(together).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(added, together, rtol=1e-9, atol=1e-12)


def test_accumulators_add(fitted, data):
    stats = data[0]
    whole = fitted.accumulate(stats)
    halves = fitted.accumulate(stats[:137]) + fitted.accumulate(stats[137:])
    summed = sum([fitted.accumulate(stats[:50]), fitted.accumulate(stats[50:])])
    for other in (halves, summed):
        for name in ("zeroth", "second", "cross", "ivector_sum", "ivector_scatter"):
            np.testing.assert_allclose(getattr(other, name), getattr(whole, name), rtol=1e-12, atol=1e-10)
        assert other.n_utterances == whole.n_utterances == N_UTTERANCES
        assert other.n_frames == pytest.approx(whole.n_frames, rel=1e-14)
        assert other.objective == pytest.approx(whole.objective, rel=1e-12)
    empty = IvectorStats.zeros(K, D, R)
    np.testing.assert_array_equal((empty + whole).cross, whole.cross)


def test_components_without_counts_keep_their_block(fitted, data):
    empty_first = []
    for stats in data[0][:40]:
        stats = stats.copy()
        stats.zeroth[0] = 0.0
        stats.first[0] = 0.0
        empty_first.append(stats)
    acc = fitted.accumulate(empty_first)
    assert acc.zeroth[0] == 0.0
    T = estimate_total_variability(acc, fitted.T_, min_divergence=False)
    np.testing.assert_array_equal(T[0], fitted.T_[0])
    assert np.abs(T[1:] - fitted.T_[1:]).max() > 1e-3


def test_fit_with_a_list_equals_fit_with_a_callable(ubm, data):
    stats = data[0]
    from_list = IvectorExtractor(rank=R, max_iter=4, random_state=7).fit(ubm, stats)
    passes = []

    def fresh():
        passes.append(1)
        return (s for s in stats)  # a generator: read once per pass

    from_callable = IvectorExtractor(rank=R, max_iter=4, random_state=7).fit(ubm, fresh)
    assert len(passes) == 4
    np.testing.assert_allclose(from_callable.T_, from_list.T_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(from_callable.objective_, from_list.objective_, rtol=1e-12)


def test_initialisation_is_seeded(ubm):
    a = IvectorExtractor(rank=R, random_state=11).initialise(ubm).T_
    b = IvectorExtractor(rank=R, random_state=11).initialise(ubm).T_
    c = IvectorExtractor(rank=R, random_state=12).initialise(ubm).T_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sklearn_clone_and_params():
    from sklearn.base import clone

    extractor = IvectorExtractor(rank=5, max_iter=3, min_divergence=False, random_state=1)
    copy = clone(extractor)
    assert copy.get_params() == extractor.get_params()
    assert repr(copy) == "IvectorExtractor(max_iter=3, min_divergence=False, random_state=1, rank=5)"
    with pytest.raises(ValueError, match="(?i)invalid parameter 'n_components'"):
        extractor.set_params(n_components=3)


# ------------------------------------------------------------------ files
def test_arrays_round_trip(fitted, data, tmp_path):
    arrays = fitted.to_arrays()
    assert str(arrays["kind"]) == "speaker_id.IvectorExtractor" and arrays["format_version"].dtype.kind == "i"
    for value in arrays.values():
        assert value.dtype != object
    back = IvectorExtractor.from_arrays(arrays, source="test")
    np.testing.assert_array_equal(back.T_, fitted.T_)
    np.testing.assert_array_equal(back.transform(data[0][:10]), fitted.transform(data[0][:10]))
    assert back.objective_ == fitted.objective_ and back.n_iter_ == fitted.n_iter_
    fitted.save(tmp_path / "extractor.npz")
    loaded = IvectorExtractor.load(tmp_path / "extractor.npz")
    np.testing.assert_array_equal(loaded.T_, fitted.T_)
    np.testing.assert_array_equal(loaded.ubm_variances_, fitted.ubm_variances_)


def corrupt(arrays, **changes):
    out = dict(arrays)
    for name, value in changes.items():
        if value is None:
            del out[name]
        else:
            out[name] = value
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: {"total_variability": a["total_variability"][:, :, :, None]}, "shape"),
        (lambda a: {"ubm_means": a["ubm_means"][:-1]}, "ubm_means has shape"),
        (lambda a: {"ubm_variances": -a["ubm_variances"]}, "positive"),
        (lambda a: {"total_variability": np.where(a["total_variability"] > 0.5, np.nan, a["total_variability"])},
         "non-finite"),
        (lambda a: {"kind": np.array("streamgmm.OnlineGMM")}, "holds a 'streamgmm.OnlineGMM'"),
        (lambda a: {"format_version": np.array(99)}, "format version 99"),
        (lambda a: {"ubm_means": None}, "missing the field 'ubm_means'"),
        (lambda a: {"n_iter": np.array(2.5)}, "n_iter"),
    ],
)
def test_corrupt_arrays_are_refused(fitted, change, message):
    arrays = fitted.to_arrays()
    with pytest.raises(ValueError, match=message) as info:
        IvectorExtractor.from_arrays(corrupt(arrays, **change(arrays)), source="extractor file x.npz")
    assert "extractor file x.npz" in str(info.value)


def test_ivector_stats_round_trip_and_corruption(fitted, data):
    acc = fitted.accumulate(data[0][:20])
    back = IvectorStats.from_arrays(acc.to_arrays())
    np.testing.assert_array_equal(back.second, acc.second)
    assert back.objective == acc.objective
    bad = acc.to_arrays()
    bad["cross"] = bad["cross"][:, :, :-1]
    with pytest.raises(ValueError, match="inconsistent"):
        IvectorStats.from_arrays(bad, source="acc file")


# ----------------------------------------------------------------- errors
def test_rank_larger_than_the_data_supports(ubm, data):
    few = data[0][:5]
    with pytest.raises(ValueError, match=r"rank 6 is larger than the number of training utterances \(5\)"):
        IvectorExtractor(rank=6).fit(ubm, few)
    with pytest.raises(ValueError, match=r"number of training utterances \(5\)"):
        IvectorExtractor(rank=6).fit(ubm, lambda: iter(few))  # found after the first pass
    with pytest.raises(ValueError, match=r"supervector dimension K\*D = 12\*4 = 48"):
        IvectorExtractor(rank=49).fit(ubm, data[0])


def test_statistics_of_another_ubm_are_refused(fitted, ubm):
    other = fit_ubm(5, D, seed=9)
    stats = accumulate(other, other.sample(50)[0])
    with pytest.raises(ValueError, match="belong to another UBM") as info:
        fitted.extract(stats)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="utterance 1: .*another UBM"):
        IvectorExtractor(rank=2, max_iter=1).fit(ubm, [accumulate(ubm, ubm.sample(30)[0]), stats, stats])
    with pytest.raises(ValueError, match="the extractor belongs to another UBM; retrain it"):
        fitted.check_ubm(other)
    fitted.check_ubm(ubm)


def test_nan_statistics_are_refused(fitted, data):
    bad = data[0][0].copy()
    bad.first[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.extract(bad)
    with pytest.raises(ValueError, match="utterance 3: .*NaN"):
        fitted.transform(data[0][:3] + [bad])


def test_bad_inputs(ubm, data):
    with pytest.raises(ValueError, match="one-shot iterator"):
        IvectorExtractor(rank=2).fit(ubm, iter(data[0]))
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        IvectorExtractor(rank=0).fit(ubm, data[0])
    with pytest.raises(NotFittedError):
        IvectorExtractor(rank=2).transform(data[0][:2])
    full = OnlineGMM(2, covariance_type="full", random_state=0).fit(np.random.default_rng(0).normal(size=(200, 2)))
    with pytest.raises(ValueError, match="diagonal-covariance UBM"):
        IvectorExtractor(rank=2).fit(full, data[0])
