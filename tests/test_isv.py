"""Inter-session variability (ISV): EM, the planted subspace, closed forms, MAP at U = 0, additivity, files, errors.

Most tests draw speakers from the model itself, in the UBM's normalised
space: per speaker z ~ N(0, I) (K, D), per session x ~ N(0, I) (R), counts
n_k from a multinomial over the UBM weights, and f_k = n_k (U_k x + d z_k) +
sqrt(n_k) noise (the sum of n_k unit-variance frames around the session's
offset). They are converted to SufficientStats in raw feature space about a
random shift, so the model's own centring and whitening is on the path.
Expected values are computed here with dense supervector algebra (the joint
Gaussian posterior of all the latents of a speaker, solved as one linear
system; log-densities by scipy) from the generated normalised statistics,
never taken from the model.
"""


import numpy as np
import pytest
from conftest import fit_ubm
from scipy.linalg import subspace_angles
from scipy.stats import multivariate_normal

from speaker_id.models.adaptation import map_adapt
from speaker_id.models.isv import ISV, ISVStats
from streamgmm import NotFittedError, OnlineGMM, SufficientStats, accumulate

K, D, R = 8, 3, 2
RELEVANCE = 4.0
DSCALE = 1.0 / np.sqrt(RELEVANCE)


@pytest.fixture(scope="module")
def ubm():
    return fit_ubm(K, D, seed=0)


@pytest.fixture(scope="module")
def planted():
    """The true U (normalised space), with a per-direction scale so the two directions do not tie."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(K, D, R)) * np.array([1.0, 0.6])


def raw_stats(ubm, n, f, rng):
    """SufficientStats in feature space about a random shift whose normalised statistics are (n, f)."""
    std = np.sqrt(ubm.covariances_)
    shift = ubm.shift_ + rng.normal(size=ubm.means_.shape[1])
    # x = m_k + std_k y  =>  sum_t r_tk (x_t - shift) = std_k f_k + n_k (m_k - shift)
    first = std * f + n[:, None] * (ubm.means_ - shift)
    second = n[:, None] * (ubm.covariances_ + (ubm.means_ - shift) ** 2)
    return SufficientStats(n, first, second, shift, 0.0, n.sum())


def generate(ubm, U, n_speakers, n_sessions, seed, frames=(40, 80), d=DSCALE):
    """Speakers drawn from the model.

    Returns ``{speaker: [SufficientStats]}`` and, per speaker, the counts
    (H, K), normalised first order (H, K, D), session factors (H, R) and
    speaker factor (K, D).
    """
    rng = np.random.default_rng(seed)
    stats, truth = {}, {}
    for s in range(n_speakers):
        z = rng.standard_normal(U.shape[:2])
        sessions, counts, firsts, xs = [], [], [], []
        for _ in range(n_sessions):
            n = rng.multinomial(rng.integers(*frames), ubm.weights_).astype(float)
            x = rng.standard_normal(U.shape[2])
            f = n[:, None] * (U @ x + d * z) + np.sqrt(n)[:, None] * rng.standard_normal(U.shape[:2])
            sessions.append(raw_stats(ubm, n, f, rng))
            counts.append(n)
            firsts.append(f)
            xs.append(x)
        stats[f"s{s:03d}"] = sessions
        truth[f"s{s:03d}"] = (np.array(counts), np.array(firsts), np.array(xs), z)
    return stats, truth


@pytest.fixture(scope="module")
def data(ubm, planted):
    return generate(ubm, planted, n_speakers=60, n_sessions=5, seed=2)


@pytest.fixture(scope="module")
def fitted(ubm, data):
    return ISV(rank=R, relevance_factor=RELEVANCE, max_iter=15, random_state=0).fit(ubm, data[0])


# ----------------------------------------------------------- dense algebra
def dense_joint(U, d, counts, firsts):
    """Joint posterior of (x_1..x_H, z) of one speaker by one dense solve.

    Returns the means (x (H, R), z (K, D)) and the supervector matrices.
    """
    k, dim, r = U.shape
    h = len(counts)
    Usup = U.reshape(k * dim, r)
    size = h * r + k * dim
    precision = np.eye(size)
    linear = np.zeros(size)
    for i in range(h):
        J = np.zeros((k * dim, size))  # o_h = J v
        J[:, i * r:(i + 1) * r] = Usup
        J[:, h * r:] = d * np.eye(k * dim)
        N = np.diag(np.repeat(counts[i], dim))
        precision += J.T @ N @ J
        linear += J.T @ firsts[i].reshape(-1)
    mean = np.linalg.solve(precision, linear)
    return mean[:h * r].reshape(h, r), mean[h * r:].reshape(k, dim)


def dense_objective(U, d, counts, firsts, z):
    """log p(f | z, U) + log N(z; 0, I) plus the terms the model's objective leaves out (see ISV.accumulate)."""
    k, dim, r = U.shape
    total = multivariate_normal(np.zeros(k * dim), np.eye(k * dim)).logpdf(z.reshape(-1)) + 0.5 * k * dim * np.log(2 * np.pi)
    for n, f in zip(counts, firsts):
        seen = n > 0
        Us = U[seen].reshape(-1, r)
        nrep = np.repeat(n[seen], dim)
        F = f[seen].reshape(-1)
        mean = nrep * (d * z[seen].reshape(-1))
        cov = np.diag(nrep) + (nrep[:, None] * Us) @ (nrep[:, None] * Us).T
        total += multivariate_normal(mean, cov).logpdf(F)
        total += 0.5 * F @ (F / nrep) + 0.5 * np.log(nrep).sum() + 0.5 * nrep.size * np.log(2 * np.pi)
    return total


# ------------------------------------------------------------------- EM
@pytest.mark.parametrize("min_divergence", [True, False])
def test_em_raises_the_objective_every_iteration(ubm, data, min_divergence):
    isv = ISV(rank=R, relevance_factor=RELEVANCE, max_iter=10, min_divergence=min_divergence, random_state=3)
    isv.fit(ubm, data[0])
    objective = np.array(isv.objective_)
    assert isv.n_iter_ == 10 and objective.shape == (10,)
    # EM with the speaker factors at their maximum never lowers sum_s max_z J_s; the inner solve stops at a
    # relative residual of 1e-8, whose error in J is second order: allow rounding only
    steps = np.diff(objective)
    assert np.all(steps >= -1e-9 * np.abs(objective[1:])), steps
    assert objective[-1] - objective[0] > 10000.0  # it learnt (about 12,800 -> 36,000 nats)


def test_objective_is_the_marginal_log_density_at_the_best_speaker_factor(fitted, data):
    name = "s007"
    counts, firsts, _, _ = data[1][name]
    objective = fitted.accumulate({name: data[0][name]}).objective
    _, z = dense_joint(fitted.U_, DSCALE, counts, firsts)
    expected = dense_objective(fitted.U_, DSCALE, counts, firsts, z)
    assert objective == pytest.approx(expected, rel=1e-9, abs=1e-7)
    # and z is the maximiser: moving it lowers the dense objective
    bump = np.random.default_rng(0).normal(scale=1e-2, size=z.shape)
    assert dense_objective(fitted.U_, DSCALE, counts, firsts, z + bump) < expected


def test_recovers_the_planted_subspace(fitted, data, planted):
    # The best estimate one could make from this data: least squares given the TRUE latents (the complete-data
    # M-step), U_k = sum_h (f_hk - n_hk d z_k) x_h^T (sum_h n_hk x_h x_h^T)^{-1}. Its largest principal angle
    # to the planted subspace (4.9 degrees here, 1.5 for the stronger direction) is the sampling noise of 300
    # sessions; EM, which only sees posteriors of the latents, reaches 4.8. It must stay within 1.5 times the
    # oracle plus a degree, while a random 2-D subspace of R^24 lies 80-90 degrees away (checked below on the
    # random initialisation: 87 and 80).
    A = np.zeros((K, R, R))
    C = np.zeros((K, D, R))
    for counts, firsts, xs, z in data[1].values():
        A += np.einsum("hk,hr,hq->krq", counts, xs, xs)
        C += np.einsum("hkd,hr->kdr", firsts - counts[:, :, None] * DSCALE * z, xs)
    oracle = np.linalg.solve(A, C.transpose(0, 2, 1)).transpose(0, 2, 1)
    truth = planted.reshape(-1, R)
    oracle_angle = np.degrees(subspace_angles(truth, oracle.reshape(-1, R))).max()
    angle = np.degrees(subspace_angles(truth, fitted.U_.reshape(-1, R))).max()
    initial = ISV(rank=R, relevance_factor=RELEVANCE, random_state=0).initialise(fitted_ubm(fitted))
    initial_angle = np.degrees(subspace_angles(truth, initial.U_.reshape(-1, R))).max()
    assert oracle_angle < 8.0
    assert angle < 1.5 * oracle_angle + 1.0, (angle, oracle_angle)
    assert initial_angle > 45.0


def fitted_ubm(model):
    """A stand-in OnlineGMM with the model's UBM parameters (for initialise)."""
    ubm = fit_ubm(K, D, seed=0)
    assert np.array_equal(ubm.means_, model.ubm_means_)
    return ubm


def test_accumulate_equals_dense_posterior_sums(fitted, data):
    names = ["s001", "s002", "s003"]
    acc = fitted.accumulate({name: data[0][name] for name in names})
    U = fitted.U_
    second = np.zeros((K, R, R))
    cross = np.zeros((K, D, R))
    scatter = np.zeros((R, R))
    for name in names:
        counts, firsts, _, _ = data[1][name]
        x, z = dense_joint(U, DSCALE, counts, firsts)
        for n, f, xh in zip(counts, firsts, x):
            # the session factor's posterior given z: covariance (I + sum_k n_k U_k^T U_k)^{-1}
            cov = np.linalg.inv(np.eye(R) + np.einsum("k,kdr,kdq->rq", n, U, U))
            second += n[:, None, None] * (cov + np.outer(xh, xh))
            cross += (f - n[:, None] * DSCALE * z)[:, :, None] * xh[None, None, :]
            scatter += cov + np.outer(xh, xh)
    rows, cols = np.tril_indices(R)
    np.testing.assert_allclose(acc.second, second[:, rows, cols], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(acc.cross, cross, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(acc.session_scatter, scatter, rtol=1e-7, atol=1e-8)
    assert acc.n_sessions == 15 and acc.n_speakers == 3


def test_accumulators_add(fitted, data):
    items = list(data[0].items())
    whole = fitted.accumulate(items[:10])
    parts = fitted.accumulate(items[:4]) + fitted.accumulate(items[4:10])
    for name in ISVStats._ARRAYS:
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-12, atol=1e-10)
    assert parts.objective == pytest.approx(whole.objective, rel=1e-12)
    assert sum([fitted.accumulate(items[:4]), fitted.accumulate(items[4:10])]).n_sessions == whole.n_sessions


def test_fit_with_a_dict_a_list_or_a_callable_is_the_same(ubm, data):
    speakers = dict(list(data[0].items())[:20])
    kwargs = {"rank": R, "relevance_factor": RELEVANCE, "max_iter": 3, "random_state": 5}
    a = ISV(**kwargs).fit(ubm, speakers)
    b = ISV(**kwargs).fit(ubm, list(speakers.items()))
    c = ISV(**kwargs).fit(ubm, lambda: ((name, list(v)) for name, v in speakers.items()))
    np.testing.assert_array_equal(a.U_, b.U_)
    np.testing.assert_array_equal(a.U_, c.U_)
    assert a.objective_ == c.objective_


def test_single_session_speakers_are_skipped_and_counted(ubm, data):
    speakers = dict(list(data[0].items())[:20])
    kwargs = {"rank": R, "relevance_factor": RELEVANCE, "max_iter": 3, "random_state": 5}
    plain = ISV(**kwargs).fit(ubm, speakers)
    extra = {**speakers, "solo1": [data[0]["s050"][0]], "solo2": data[0]["s051"][:1]}
    mixed = ISV(**kwargs).fit(ubm, extra)
    assert mixed.n_skipped_speakers_ == 2 and mixed.n_speakers_ == 20 and mixed.n_sessions_ == 100
    np.testing.assert_array_equal(plain.U_, mixed.U_)


def test_initialisation_is_seeded(ubm):
    a = ISV(rank=R, random_state=7).initialise(ubm)
    b = ISV(rank=R, random_state=7).initialise(ubm)
    c = ISV(rank=R, random_state=8).initialise(ubm)
    np.testing.assert_array_equal(a.U_, b.U_)
    assert not np.array_equal(a.U_, c.U_)


# ----------------------------------------------- enrollment and scoring
def test_enroll_equals_the_dense_joint_posterior_of_one_session(fitted, data):
    counts, firsts, _, _ = data[1]["s010"]
    pooled = sum(data[0]["s010"][1:], data[0]["s010"][0])
    _, z = dense_joint(fitted.U_, DSCALE, counts.sum(axis=0, keepdims=True), firsts.sum(axis=0, keepdims=True))
    np.testing.assert_allclose(fitted.enroll(pooled), DSCALE * z, rtol=1e-9, atol=1e-11)


def test_enroll_sessions_equals_the_dense_joint_posterior(fitted, data):
    counts, firsts, _, _ = data[1]["s011"]
    _, z = dense_joint(fitted.U_, DSCALE, counts, firsts)
    np.testing.assert_allclose(fitted.enroll_sessions(data[0]["s011"]), DSCALE * z, rtol=1e-7, atol=1e-9)


def test_score_equals_the_dense_linear_score(fitted, data):
    names = ["s020", "s021", "s022"]
    offsets = fitted.enroll_many([sum(data[0][n][1:], data[0][n][0]) for n in names])
    tests = [data[0][n][0] for n in ("s020", "s023", "s024", "s021")]
    scores = fitted.score(offsets, tests)
    assert scores.shape == (4, 3)
    Usup = fitted.U_.reshape(K * D, R)
    for t, name in enumerate(("s020", "s023", "s024", "s021")):
        n, f = data[1][name][0][0], data[1][name][1][0].reshape(-1)
        N = np.diag(np.repeat(n, D))
        x = np.linalg.solve(np.eye(R) + Usup.T @ N @ Usup, Usup.T @ f)
        np.testing.assert_allclose(fitted.session_factors([tests[t]])[0], x, rtol=1e-9, atol=1e-12)
        for s in range(3):
            expected = offsets[s].reshape(-1) @ (f - N @ Usup @ x) / n.sum()
            assert scores[t, s] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_integrated_score_equals_the_dense_log_likelihood_ratio(fitted, data):
    names = ["s025", "s026"]
    offsets = fitted.enroll_many([sum(data[0][n][1:], data[0][n][0]) for n in names])
    tests = [data[0][n][0] for n in ("s025", "s027", "s026")]
    scores = fitted.score(offsets, tests, method="integrated")
    for t, name in enumerate(("s025", "s027", "s026")):
        n, f = data[1][name][0][0], data[1][name][1][0]
        seen = n > 0
        Us = fitted.U_[seen].reshape(-1, R)
        nrep = np.repeat(n[seen], D)
        cov = np.diag(nrep) + (nrep[:, None] * Us) @ (nrep[:, None] * Us).T
        F = f[seen].reshape(-1)
        null = multivariate_normal(np.zeros(F.size), cov).logpdf(F)
        for s in range(2):
            target = multivariate_normal(nrep * offsets[s][seen].reshape(-1), cov).logpdf(F)
            assert scores[t, s] == pytest.approx((target - null) / n.sum(), rel=1e-8, abs=1e-10)
    with pytest.raises(ValueError, match="method must be"):
        fitted.score(offsets, tests, method="frames")


def test_scores_do_not_depend_on_the_batch_size(fitted, data):
    tests = [sessions[0] for sessions in data[0].values()][:9]
    offsets = fitted.enroll_many([sessions[1] for sessions in data[0].values()][:5])
    small = ISV.from_arrays(fitted.to_arrays()).set_params(batch_size=2)
    for method in ("linear", "integrated"):
        np.testing.assert_allclose(small.score(offsets, tests, method=method), fitted.score(offsets, tests, method=method),
                                   rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(small.enroll_many([s[1] for s in data[0].values()][:5]), offsets, atol=1e-14)


def test_session_means_are_the_compensated_ubm(fitted, data):
    tests = [data[0]["s030"][0]]
    x = fitted.session_factors(tests)[0]
    expected = fitted.ubm_means_ + np.sqrt(fitted.ubm_variances_) * np.einsum("kdr,r->kd", fitted.U_, x)
    np.testing.assert_allclose(fitted.session_means(tests)[0], expected, rtol=1e-12)


def frames_of(ubm, centre, n, rng):
    return rng.normal(ubm.means_[rng.integers(K, size=n)] + centre, np.sqrt(ubm.covariances_[0]))


@pytest.mark.parametrize("how", ["rank 0", "zeroed U"])
def test_without_session_subspace_enrollment_is_relevance_map(ubm, fitted, how):
    rng = np.random.default_rng(4)
    X = frames_of(ubm, rng.normal(scale=0.5, size=D), 300, rng)
    stats = accumulate(ubm, X)
    if how == "rank 0":
        model = ISV(rank=0, relevance_factor=RELEVANCE).fit(ubm)
    else:
        arrays = fitted.to_arrays()
        arrays["session_variability"] = np.zeros_like(arrays["session_variability"])
        model = ISV.from_arrays(arrays)
    expected = map_adapt(ubm, stats, relevance_factor=RELEVANCE).means_
    np.testing.assert_allclose(model.speaker_means(model.enroll(stats)), expected, rtol=1e-10, atol=1e-10)
    # and the linear score is then the MAP offset against the test's centred, whitened statistics
    test = accumulate(ubm, X[:50])
    f = (test.first + test.zeroth[:, None] * (test.shift - ubm.means_)) / np.sqrt(ubm.covariances_)
    offset = (expected - ubm.means_) / np.sqrt(ubm.covariances_)
    score = model.score(model.enroll(stats)[None], [test])[0, 0]
    assert score == pytest.approx(np.sum(offset * f) / 50.0, rel=1e-10)


def test_enrollment_is_additive(ubm, fitted):
    rng = np.random.default_rng(5)
    centre = rng.normal(scale=0.5, size=D)
    A, B = frames_of(ubm, centre, 200, rng), frames_of(ubm, centre, 150, rng)
    later = fitted.enroll(accumulate(ubm, A) + accumulate(ubm, B))
    at_once = fitted.enroll(accumulate(ubm, np.vstack([A, B])))
    np.testing.assert_allclose(later, at_once, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fitted.enroll_many([accumulate(ubm, A), accumulate(ubm, A) + accumulate(ubm, B)])[1],
                               at_once, rtol=1e-9, atol=1e-12)


def test_compensation_helps_on_data_from_the_model(ubm, planted):
    # strong session variability (U three times the planted one): MAP's linear scores (U = 0) identify 1 of 20
    # held-out speakers, ISV's 12 of 20
    train, _ = generate(ubm, planted * 3.0, n_speakers=40, n_sessions=5, seed=11)
    held, _ = generate(ubm, planted * 3.0, n_speakers=20, n_sessions=4, seed=12)
    isv = ISV(rank=R, relevance_factor=RELEVANCE, max_iter=10, random_state=0).fit(ubm, train)
    plain = ISV(rank=0, relevance_factor=RELEVANCE).fit(ubm)
    enroll = [sum(v[1:3], v[0]) for v in held.values()]
    tests = [v[3] for v in held.values()]

    def margin(model):
        scores = model.score(model.enroll_many(enroll), tests)
        return np.mean(np.diag(scores)) - np.mean(scores[~np.eye(len(tests), dtype=bool)])

    def accuracy(model):
        return np.mean(np.argmax(model.score(model.enroll_many(enroll), tests), axis=1) == np.arange(len(tests)))

    assert accuracy(isv) >= 0.5 and accuracy(plain) <= 0.2
    assert margin(isv) > 0


# ------------------------------------------------------------------ files
def test_arrays_round_trip(fitted, data, tmp_path):
    path = tmp_path / "isv.npz"
    fitted.save(path)
    loaded = ISV.load(path)
    np.testing.assert_array_equal(loaded.U_, fitted.U_)
    assert loaded.relevance_factor == RELEVANCE and loaded.objective_ == fitted.objective_
    assert loaded.n_iter_ == fitted.n_iter_
    offsets = fitted.enroll_many([data[0]["s040"][0]])
    tests = [data[0]["s041"][0]]
    np.testing.assert_array_equal(loaded.score(offsets, tests), fitted.score(offsets, tests))
    loaded.check_ubm(fitted_ubm(fitted))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(kind=np.array("speaker_id.IvectorExtractor")), "not a 'speaker_id.ISV'"),
        (lambda a: a.pop("ubm_variances"), "missing the field 'ubm_variances'"),
        (lambda a: a["session_variability"].__setitem__((0, 0, 0), np.nan), "non-finite"),
        (lambda a: a.update(session_variability=np.zeros((K, D))), "shape (K, D, R)"),
        (lambda a: a.update(ubm_means=np.zeros((K, D + 1))), "ubm_means has shape"),
        (lambda a: a.update(ubm_variances=-np.ones((K, D))), "must be positive"),
        (lambda a: a.update(relevance_factor=np.array(0.0)), "relevance_factor must be positive"),
        (lambda a: a.update(n_iter=np.array(2.5)), "n_iter must be a non-negative integer"),
        (lambda a: a.update(objective=np.zeros((2, 2))), "objective must be 1-D"),
    ],
)
def test_corrupt_arrays_are_refused(fitted, change, message):
    arrays = {name: np.array(value) for name, value in fitted.to_arrays().items()}
    change(arrays)
    with pytest.raises(ValueError, match=None) as info:
        ISV.from_arrays(arrays, source="file x.npz")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_isv_stats_round_trip_and_corruption(fitted, data):
    acc = fitted.accumulate(dict(list(data[0].items())[:3]))
    back = ISVStats.from_arrays(acc.to_arrays())
    for name in ISVStats._ARRAYS + ISVStats._SCALARS:
        np.testing.assert_array_equal(getattr(back, name), getattr(acc, name))
    arrays = acc.to_arrays()
    arrays["cross"] = arrays["cross"].copy()
    arrays["cross"][0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        ISVStats.from_arrays(arrays)
    arrays = acc.to_arrays()
    arrays["second"] = np.zeros((K, 5))
    with pytest.raises(ValueError, match="inconsistent ISV statistics"):
        ISVStats.from_arrays(arrays)


# ----------------------------------------------------------------- errors
def test_no_speaker_with_two_sessions(ubm, data):
    solo = {name: sessions[:1] for name, sessions in data[0].items()}
    with pytest.raises(ValueError, match=r"no training speaker has 2 or more sessions \(60 single-session"):
        ISV(rank=R, max_iter=1).fit(ubm, solo)


def test_rank_larger_than_the_sessions_support(ubm, data):
    few = dict(list(data[0].items())[:2])  # 10 sessions of 2 speakers: 8 within-speaker degrees of freedom
    with pytest.raises(ValueError, match="rank 9 needs at least"):
        ISV(rank=9, max_iter=1).fit(ubm, few)
    with pytest.raises(ValueError, match="larger than the supervector dimension"):
        ISV(rank=K * D + 1, max_iter=1).fit(ubm, data[0])


def test_statistics_of_another_ubm_are_refused(fitted, ubm, data):
    other = fit_ubm(K + 1, D, seed=3)
    foreign = accumulate(other, other.sample(50)[0])
    with pytest.raises(ValueError, match="belong to another UBM"):
        fitted.enroll(foreign)
    with pytest.raises(ValueError, match="belong to another UBM"):
        fitted.score(fitted.enroll_many([data[0]["s000"][0]]), [foreign])
    with pytest.raises(ValueError, match="speaker 's000' session 1: the statistics have 9 components"):
        fitted.accumulate({"s000": [data[0]["s000"][0], foreign]})
    with pytest.raises(ValueError, match="belongs to another UBM"):
        fitted.check_ubm(other)
    with pytest.raises(ValueError, match="speaker offsets must have shape"):
        fitted.score(np.zeros((2, K + 1, D)), [data[0]["s000"][0]])


def test_nan_statistics_are_refused(fitted, data):
    bad = data[0]["s000"][0].copy()
    bad.first[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted.enroll(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted.accumulate({"s000": [bad, data[0]["s000"][1]]})
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted.score(np.full((1, K, D), np.nan), [data[0]["s000"][0]])


def test_bad_inputs(ubm, fitted, data):
    sessions = data[0]["s000"]
    with pytest.raises(ValueError, match="one-shot iterator"):
        ISV(rank=R).fit(ubm, iter(data[0].items()))
    with pytest.raises(ValueError, match="got one SufficientStats"):
        ISV(rank=R).fit(ubm, sessions[0])
    with pytest.raises(ValueError, match="expected a list of SufficientStats"):
        fitted.accumulate({"s000": sessions[0]})
    for params, message in [({"rank": -1}, "rank must be"), ({"relevance_factor": 0.0}, "relevance_factor"),
                            ({"relevance_factor": np.inf}, "relevance_factor"), ({"inner_tol": 0}, "inner_tol"),
                            ({"max_inner_iter": 0}, "max_inner_iter"), ({"min_divergence": "yes"}, "min_divergence"),
                            ({"random_state": "x"}, "random_state")]:
        with pytest.raises(ValueError, match=message):
            ISV(**params).fit(ubm, data[0])
    with pytest.raises(NotFittedError):
        ISV().enroll(sessions[0])
    with pytest.raises(TypeError):
        fitted.enroll([sessions[0]])
    empty = SufficientStats.zeros(K, D)
    with pytest.raises(ValueError, match="no frames"):
        fitted.score(fitted.enroll_many([sessions[0]]), [empty])
    with pytest.raises(ValueError, match="no enrollment sessions"):
        fitted.enroll_sessions([])
    with pytest.raises(ValueError, match="diagonal-covariance"):
        full = OnlineGMM(2, covariance_type="full", random_state=0).fit(np.random.default_rng(0).normal(size=(300, 2)))
        ISV(rank=1).initialise(full)


def test_sklearn_clone_and_params():
    from sklearn.base import clone

    isv = ISV(rank=3, relevance_factor=8.0, max_iter=2)
    copy = clone(isv)
    assert copy.get_params() == isv.get_params() and copy is not isv
    assert "rank=3" in repr(isv) and "relevance_factor=8.0" in repr(isv)
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        isv.set_params(speed=1)
