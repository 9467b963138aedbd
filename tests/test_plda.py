"""The i-vector back end: length normalisation, LDA, PLDA, cosine scoring, files, bad input.

Expected values come from independent computations: the PLDA likelihoods and
scores from the full joint Gaussian of a speaker's i-vectors built with
numpy and evaluated with scipy, LDA's eigenvalues from scipy's generalised
eigensolver, planted parameters from the generating process.
"""

import warnings

import numpy as np
import pytest
from scipy.linalg import eigh as scipy_eigh
from scipy.stats import multivariate_normal
from sklearn.covariance import ledoit_wolf_shrinkage

from speaker_id.evaluation import metrics
from speaker_id.models.plda import LDA, PLDA, cosine_scores, length_normalize
from streamgmm import ConvergenceWarning, NotFittedError
from streamgmm.io import FORMAT_VERSION


# ------------------------------------------------------------------ helpers
def random_cov(rng, d, low, high):
    """A random non-diagonal SPD matrix with eigenvalues spread over [low, high]."""
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (Q * np.linspace(low, high, d)) @ Q.T


def planted(seed=0, d=6, n_speakers=300, counts=(5, 16), rank=None):
    """I-vectors from a known two-covariance model, unequal counts per speaker."""
    rng = np.random.default_rng(seed)
    if rank is None:
        B = random_cov(rng, d, 1.0, 4.0)
    else:
        V = 1.5 * rng.normal(size=(d, rank))
        B = V @ V.T
    W = random_cov(rng, d, 0.5, 2.0)
    m = rng.normal(size=d)
    n = rng.integers(counts[0], counts[1], size=n_speakers)
    y = np.repeat(np.arange(n_speakers), n)
    speakers = rng.multivariate_normal(np.zeros(d), B, size=n_speakers, method="eigh")
    X = m + speakers[y] + rng.multivariate_normal(np.zeros(d), W, size=len(y))
    return X, y, m, B, W, n


def implied(plda):
    """W and B from the stored A and psi, computed here: A^-1 A^-T and A^-1 diag(psi) A^-T."""
    A_inv = np.linalg.inv(plda.transform_)
    return A_inv @ np.diag(plda.psi_) @ A_inv.T, A_inv @ A_inv.T


def joint_logpdf(vectors, mean, B, W):
    """log N of i-vectors of one speaker, stacked: covariance I_n (x) W + 1 1^T (x) B."""
    vectors = np.atleast_2d(vectors)
    n = len(vectors)
    cov = np.kron(np.eye(n), W) + np.kron(np.ones((n, n)), B)
    return multivariate_normal(np.tile(mean, n), cov).logpdf(vectors.ravel())


def direct_llr(plda, enroll, test):
    """log N([enroll, test]; same speaker) - log N(enroll) - log N(test), from full joint covariances."""
    B, W = implied(plda)
    m = plda.mean_
    return (
        joint_logpdf(np.vstack([enroll, test]), m, B, W)
        - joint_logpdf(enroll, m, B, W)
        - joint_logpdf(test, m, B, W)
    )


def direct_log_likelihood(mean, B, W, X, y):
    """Marginal log-likelihood per i-vector, speaker by speaker, from the joint Gaussians."""
    return sum(joint_logpdf(X[y == s], mean, B, W) for s in np.unique(y)) / len(X)


def fit_quiet(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def assert_one_line_error(func, *match):
    with pytest.raises(ValueError) as info:
        func()
    text = str(info.value)
    assert "\n" not in text
    for fragment in match:
        assert fragment in text, text
    return text


@pytest.fixture(scope="module")
def full():
    X, y, m, B, W, n = planted(seed=0)
    return fit_quiet(PLDA(max_iter=100, tol=1e-10), X, y), (X, y, m, B, W, n)


@pytest.fixture(scope="module")
def reduced():
    X, y, m, B, W, n = planted(seed=1, rank=2)
    return fit_quiet(PLDA(max_iter=300, tol=1e-10, n_components=2), X, y), (X, y, m, B, W, n)


# ----------------------------------------------------------- length_normalize
def test_length_normalize_gives_norm_sqrt_dim_and_keeps_direction():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 7)) * rng.uniform(0.01, 100, size=(50, 1))
    Z = length_normalize(X)
    np.testing.assert_allclose(np.sum(Z**2, axis=1), 7.0, rtol=1e-12)
    cos = np.sum(Z * X, axis=1) / (np.linalg.norm(Z, axis=1) * np.linalg.norm(X, axis=1))
    np.testing.assert_allclose(cos, 1.0, rtol=1e-12)


def test_length_normalize_refuses_zero_rows_nan_and_1d():
    X = np.ones((3, 4))
    X[1] = 0
    assert_one_line_error(lambda: length_normalize(X), "row 1", "zeros")
    X[1, 2] = np.nan
    assert_one_line_error(lambda: length_normalize(X), "NaN")
    assert_one_line_error(lambda: length_normalize(np.ones(4)), "reshape(1, -1)")


# ------------------------------------------------------------ cosine_scores
def test_cosine_scores_match_a_loop():
    rng = np.random.default_rng(1)
    E, T = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    scores = cosine_scores(E, T)
    assert scores.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            expected = float(np.dot(E[i], T[j])) / (np.linalg.norm(E[i]) * np.linalg.norm(T[j]))
            assert abs(scores[i, j] - expected) < 1e-12
    # a sum of enrollment vectors scores like their mean (cosine ignores length)
    np.testing.assert_allclose(
        cosine_scores(E[:2].sum(0, keepdims=True), T), cosine_scores(E[:2].mean(0, keepdims=True), T)
    )


def test_cosine_scores_bad_input():
    assert_one_line_error(lambda: cosine_scores(np.ones((2, 3)), np.ones((2, 4))), "4 features", "3")
    assert_one_line_error(lambda: cosine_scores(np.zeros((1, 3)), np.ones((2, 3))), "enroll row 0")
    assert_one_line_error(lambda: cosine_scores(np.ones((1, 3)), [[1.0, np.inf, 0.0]]), "test", "NaN or inf")


# ---------------------------------------------------------------------- LDA
def lda_data(seed=2, n_classes=20, per_class=50, d=8, informative=(2, 5)):
    """Class means differ only in the `informative` dims; axis-aligned noise of distinct scales everywhere."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, d))
    centres[:, list(informative)] = 3.0 * rng.normal(size=(n_classes, len(informative)))
    y = np.repeat(np.arange(n_classes), per_class)
    stds = np.linspace(0.5, 2.0, d)
    X = 10.0 + centres[y] + rng.normal(size=(len(y), d)) * stds
    return X, y


def scatter_matrices(X, y):
    """Within and between covariances (divided by N), written out class by class."""
    mean = X.mean(0)
    d = X.shape[1]
    Sw, Sb = np.zeros((d, d)), np.zeros((d, d))
    for c in np.unique(y):
        Xc = X[y == c]
        mc = Xc.mean(0)
        Sw += (Xc - mc).T @ (Xc - mc)
        Sb += len(Xc) * np.outer(mc - mean, mc - mean)
    return Sw / len(X), Sb / len(X)


def test_lda_keeps_the_planted_discriminative_subspace():
    X, y = lda_data(per_class=200)
    lda = LDA(n_components=2).fit(X, y)
    assert lda.components_.shape == (2, 8)
    # The population LDA directions are W^-1 (mean differences), which for
    # axis-aligned W lie in span(e2, e5). Measured in the planted whitened
    # coordinates (x = diag(stds) w), where every direction has unit noise,
    # the largest principal angle between the learned row space and that span
    # comes from sampling noise in W's off-diagonal entries and in the class
    # means: about sqrt(6 / (N - C)) = 0.04 here; allow 3 times that.
    stds = np.linspace(0.5, 2.0, 8)
    basis, _ = np.linalg.qr((lda.components_ * stds).T)
    outside = np.delete(basis, [2, 5], axis=0)
    sin_max = np.linalg.norm(outside, 2)
    assert sin_max < 0.12, sin_max
    # the 2 kept directions hold (nearly) all of the Fisher ratio tr(W^-1 B)
    Sw, Sb = scatter_matrices(X, y)
    total = np.trace(np.linalg.solve(Sw, Sb))
    assert lda.eigenvalues_.sum() > 0.99 * total
    # eigenvalues equal scipy's generalised symmetric eigenproblem B v = l W v
    expected = scipy_eigh(Sb, Sw, eigvals_only=True)[::-1][:2]
    np.testing.assert_allclose(lda.eigenvalues_, expected, rtol=1e-10)
    # separability: nearest class mean in LDA's 2-D space classifies about as
    # well as in the oracle space (the informative dims over their noise stds)
    def accuracy(Z):
        centres = np.array([Z[y == c].mean(0) for c in range(20)])
        return np.mean(np.argmin(((Z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1) == y)

    oracle = accuracy(X[:, [2, 5]] / stds[[2, 5]])
    learned = accuracy(lda.transform(X))
    assert learned > oracle - 0.02 and oracle > 0.3, (learned, oracle)  # 20 classes: chance is 0.05


def test_lda_output_has_identity_within_and_diagonal_between_covariance():
    X, y = lda_data(seed=3)
    lda = LDA(n_components=2).fit(X, y)
    Z = lda.transform(X)
    Sw, Sb = scatter_matrices(Z, y)
    np.testing.assert_allclose(Sw, np.eye(2), atol=1e-8)
    np.testing.assert_allclose(Sb, np.diag(lda.eigenvalues_), atol=1e-8)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-10)  # centred with the training mean
    assert lda.eigenvalues_[0] >= lda.eigenvalues_[1]


def test_lda_centre_moves_only_the_point_subtracted():
    X, y = lda_data(seed=4)
    plain = LDA(n_components=2).fit(X, y)
    centre = X[y == 0].mean(axis=0)  # e.g. the mean of the unaugmented part
    moved = LDA(n_components=2).fit(X, y, centre=centre)
    np.testing.assert_array_equal(moved.components_, plain.components_)
    np.testing.assert_allclose(moved.transform(X), plain.transform(X) - plain.components_ @ (centre - X.mean(0)),
                               atol=1e-10)
    np.testing.assert_allclose(moved.transform(X[y == 0]).mean(0), 0.0, atol=1e-10)
    assert_one_line_error(lambda: LDA().fit(X, y, centre=centre[:-1]), "centre", "features")
    assert_one_line_error(lambda: LDA().fit(X, y, centre=np.stack([centre, centre])), "one vector")
    assert_one_line_error(lambda: LDA().fit(X, y, centre=np.full_like(centre, np.nan)), "centre", "non-finite")


def test_lda_default_dimension_and_singleton_classes():
    X, y = lda_data(n_classes=5, per_class=10, d=6, informative=(0, 1))
    X = np.vstack([X, [[1.0] * 6]])  # a class with one vector only
    y = np.append(y, 99)
    lda = LDA().fit(X, y)
    assert lda.components_.shape == (5, 6)  # min(n_classes - 1, n_features) = min(5, 6)


def test_lda_can_keep_every_direction_discriminants_first():
    X, y = lda_data(n_classes=4, per_class=30, d=8)
    few = LDA().fit(X, y)
    every = LDA(n_components=8).fit(X, y)
    Z = every.transform(X)
    Sw, Sb = scatter_matrices(Z, y)
    np.testing.assert_allclose(Sw, np.eye(8), atol=1e-8)          # every direction within-class whitened
    np.testing.assert_allclose(Sb, np.diag(every.eigenvalues_), atol=1e-8)
    np.testing.assert_allclose(every.components_[:3], few.components_, atol=1e-8)
    # 4 classes span 3 directions: the other 5 carry no between-class variance
    np.testing.assert_allclose(every.eigenvalues_[3:], 0.0, atol=1e-10)
    assert every.eigenvalues_[2] > 1e-3  # the third discriminant, from sampling alone, is still well above 0


def test_lda_bad_input():
    X, y = lda_data(n_classes=4, per_class=5, d=8)
    assert_one_line_error(lambda: LDA(n_components=4).fit(X, y), "n_components=4", "min(3, 8) = 3",
                          "n_features = 8 for every direction")
    assert_one_line_error(lambda: LDA(n_components=9).fit(X, y), "n_components=9")
    assert_one_line_error(lambda: LDA(n_components=0).fit(X, y), "n_components")
    assert_one_line_error(lambda: LDA().fit(X, np.zeros(len(X))), "at least 2 classes")
    three_each = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(3)])  # 9 < 8 + 3
    assert_one_line_error(lambda: LDA().fit(X[three_each], y[three_each]), "8 + 3 = 11", "got 9")
    bad = X.copy()
    bad[3, 1] = np.nan
    assert_one_line_error(lambda: LDA().fit(bad, y), "row 3, column 1")
    assert_one_line_error(lambda: LDA().fit(X, y[:-1]), "one label per i-vector")
    constant = X.copy()
    constant[:, 4] = 1.0
    assert_one_line_error(lambda: LDA().fit(constant, y), "singular")
    lda = LDA(n_components=2).fit(X, y)
    assert_one_line_error(lambda: lda.transform(X[:, :7]), "7 features", "fitted on 8")
    with pytest.raises(NotFittedError):
        LDA().transform(X)


# ---------------------------------------------------------------------- PLDA
def standard_errors(cov, n_samples):
    """Sampling standard error of each entry of a covariance estimated from n_samples Gaussian vectors."""
    var = np.diag(cov)
    return np.sqrt((np.outer(var, var) + cov**2) / n_samples)


def test_plda_recovers_planted_covariances(full):
    plda, (X, _, m, B, W, n) = full
    B_hat, W_hat = implied(plda)
    S, N = len(n), len(X)
    # B is learned from S speaker means, each with covariance about B + W/n_s;
    # W from N - S within-speaker degrees of freedom. Every entry must be
    # within 4 standard errors of the planted value.
    se_B = standard_errors(B + W * np.mean(1.0 / n), S)
    se_W = standard_errors(W, N - S)
    z_B = np.abs(B_hat - B) / se_B
    z_W = np.abs(W_hat - W) / se_W
    z_m = np.abs(plda.mean_ - m) / np.sqrt(np.diag(B + W * np.mean(1.0 / n)) / S)
    assert z_B.max() < 4, z_B.max()
    assert z_W.max() < 4, z_W.max()
    assert z_m.max() < 4, z_m.max()
    # the stored attributes are the same matrices
    np.testing.assert_allclose(plda.between_covariance_, B_hat, atol=1e-10)
    np.testing.assert_allclose(plda.within_covariance_, W_hat, atol=1e-10)
    A = plda.transform_
    np.testing.assert_allclose(A @ plda.within_covariance_ @ A.T, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(A @ plda.between_covariance_ @ A.T, np.diag(plda.psi_), atol=1e-10)
    assert np.all(np.diff(plda.psi_) <= 0) and np.all(plda.psi_ > 0)


def test_plda_log_likelihood_is_exact_and_never_decreases(full):
    plda, (X, y, *_ ) = full
    bounds = plda.lower_bounds_
    assert len(bounds) == plda.n_iter_ + 1 and plda.converged_
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[:-1]))
    assert bounds[-1] > bounds[0]  # EM moved away from the moment estimate: counts differ
    B_hat, W_hat = implied(plda)
    expected = direct_log_likelihood(plda.mean_, B_hat, W_hat, X, y)
    assert abs(bounds[-1] - expected) < 1e-9 * abs(expected)


def test_plda_em_reaches_a_maximum_of_the_likelihood():
    """Moving the fitted m, B or W a little either way lowers the directly computed likelihood."""
    X, y, *_ = planted(seed=4, d=3, n_speakers=40, counts=(1, 9))
    plda = fit_quiet(PLDA(max_iter=500, tol=0.0), X, y)
    B, W = implied(plda)
    m = plda.mean_
    best = direct_log_likelihood(m, B, W, X, y)
    rng = np.random.default_rng(5)
    eps = 1e-3
    for _ in range(3):
        D = rng.normal(size=(3, 3))
        D = D + D.T
        dm = rng.normal(size=3)
        for sign in (1, -1):
            for params in ((m + sign * eps * dm, B, W), (m, B + sign * eps * D, W), (m, B, W + sign * eps * D)):
                assert direct_log_likelihood(*params, X, y) < best + 1e-12


def test_plda_reduced_rank(reduced):
    plda, (X, y, _, B, W, n) = reduced
    assert np.count_nonzero(plda.psi_) == 2 and np.all(plda.psi_[2:] == 0)
    B_hat, W_hat = implied(plda)
    assert np.linalg.matrix_rank(B_hat, tol=1e-8) == 2
    S, N = len(n), len(X)
    z_B = np.abs(B_hat - B) / standard_errors(B + W * np.mean(1.0 / n), S)
    z_W = np.abs(W_hat - W) / standard_errors(W, N - S)
    assert z_B.max() < 4, z_B.max()
    assert z_W.max() < 4, z_W.max()
    bounds = plda.lower_bounds_
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[:-1]))
    expected = direct_log_likelihood(plda.mean_, B_hat, W_hat, X, y)
    assert abs(bounds[-1] - expected) < 1e-9 * abs(expected)


def test_shrinkage_moves_psi_towards_its_mean_and_keeps_its_sum():
    X, y, *_ = planted(seed=4, d=5, n_speakers=40)
    plain = fit_quiet(PLDA(), X, y)
    shrunk = fit_quiet(PLDA(shrinkage=0.4), X, y)
    np.testing.assert_array_equal(shrunk.transform_, plain.transform_)   # EM itself is unchanged
    np.testing.assert_array_equal(shrunk.lower_bounds_, plain.lower_bounds_)
    np.testing.assert_allclose(shrunk.psi_, 0.6 * plain.psi_ + 0.4 * plain.psi_.mean())
    np.testing.assert_allclose(shrunk.psi_.sum(), plain.psi_.sum())     # same total between-speaker variance
    assert plain.shrinkage_ == 0.0 and shrunk.shrinkage_ == 0.4
    # full shrinkage: B becomes a multiple of W
    B, W = implied(fit_quiet(PLDA(shrinkage=1.0), X, y))
    np.testing.assert_allclose(B, plain.psi_.mean() * W, rtol=1e-10, atol=1e-12)


def test_shrinkage_of_a_reduced_rank_model_keeps_its_rank(reduced):
    _, (X, y, *_ ) = reduced
    plain = fit_quiet(PLDA(max_iter=20, n_components=2), X, y)
    shrunk = fit_quiet(PLDA(max_iter=20, n_components=2, shrinkage=0.5), X, y)
    assert (shrunk.psi_ > 0).sum() == 2
    np.testing.assert_allclose(shrunk.psi_[:2], 0.5 * plain.psi_[:2] + 0.5 * plain.psi_[:2].mean())


def test_shrinkage_fills_the_directions_too_few_speakers_do_not_span():
    # 5 speakers in 6 dimensions span 4 directions: EM learns B at rank 4, the
    # shrinkage over all 6 dimensions gives the other 2 the variance a mean(psi).
    X, y, *_ = planted(seed=8, d=6, n_speakers=5, counts=(30, 31))
    spanned = fit_quiet(PLDA(n_components=4), X, y)  # the same EM, by definition
    for setting in (0.3, "auto"):
        shrunk = fit_quiet(PLDA(shrinkage=setting), X, y)
        np.testing.assert_allclose(shrunk.transform_, spanned.transform_, atol=1e-10)
        a = shrunk.shrinkage_
        if setting == "auto":  # Ledoit-Wolf of the diagonalised speaker means, in all 6 dimensions
            means = np.array([X[y == s].mean(0) for s in range(5)])
            a_expected = ledoit_wolf_shrinkage((means - spanned.mean_) @ spanned.transform_.T)
            assert a == pytest.approx(a_expected, rel=1e-10) and 0 < a < 1
        np.testing.assert_allclose(shrunk.psi_, (1 - a) * spanned.psi_ + a * spanned.psi_.mean(), rtol=1e-10)
        assert np.all(shrunk.psi_ > 0) and spanned.psi_[4:].max() == 0.0


def test_shrunk_full_rank_scores_speakers_that_differ_outside_the_training_span():
    # Speakers vary isotropically in 12 dimensions, but only 6 are there to train
    # on: their 5-direction span misses most of how new speakers differ. The
    # discriminants alone (LDA to 5, unshrunk PLDA) cannot see those directions;
    # every direction with the shrunk full-rank PLDA can.
    rng = np.random.default_rng(3)
    d, per = 12, 20

    def speakers(n):
        y = np.repeat(np.arange(n), per)
        return 2.0 * rng.normal(size=(n, d))[y] + rng.normal(size=(n * per, d)), y

    X, y = speakers(6)
    E, ye = speakers(40)   # 40 new speakers: 10 vectors to enroll, 10 to test each
    enroll, test = (np.arange(len(E)) % per) < 10, (np.arange(len(E)) % per) >= 10

    def eer(lda, plda):
        Ze, Zt = lda.transform(E[enroll]), lda.transform(E[test])
        sums = np.array([Ze[ye[enroll] == s].sum(0) for s in range(40)])
        scores = plda.score(sums, 10, Zt)                       # (40 speakers, 400 tests)
        same = ye[test][None, :] == np.arange(40)[:, None]
        return metrics.eer(scores.ravel(), same.ravel().astype(int))[0]

    lda_few = LDA().fit(X, y)
    narrow = eer(lda_few, fit_quiet(PLDA(), lda_few.transform(X), y))
    lda_all = LDA(n_components=d).fit(X, y)
    wide = eer(lda_all, fit_quiet(PLDA(shrinkage="auto"), lda_all.transform(X), y))
    assert wide < 0.5 * narrow, (wide, narrow)


def test_auto_shrinkage_is_large_with_few_speakers_and_small_with_many():
    # Ledoit-Wolf: the intensity falls as speakers add up, and tends to 1 when B is truly a multiple of W.
    def intensity(n_speakers, seed, isotropic=False):
        rng = np.random.default_rng(seed)
        d = 8
        B = np.eye(d) * 4.0 if isotropic else np.diag(np.geomspace(16.0, 0.05, d))
        y = np.repeat(np.arange(n_speakers), 6)
        speakers = rng.multivariate_normal(np.zeros(d), B, size=n_speakers)
        X = speakers[y] + rng.normal(size=(len(y), d))
        return fit_quiet(PLDA(shrinkage="auto"), X, y).shrinkage_

    few = np.mean([intensity(12, seed) for seed in range(5)])
    many = np.mean([intensity(2000, seed) for seed in range(5)])
    assert 0.0 <= many < 0.05 < few <= 1.0
    isotropic = intensity(200, 0, isotropic=True)
    assert isotropic > 0.5 and isotropic > 5 * intensity(200, 0)


def test_plda_warns_when_em_stops_early():
    X, y, *_ = planted(seed=6, n_speakers=50, rank=2)
    with pytest.warns(ConvergenceWarning, match="did not converge in 1 iterations"):
        PLDA(max_iter=1, tol=0.0, n_components=2).fit(X, y)


# ------------------------------------------------------------------ scoring
@pytest.mark.parametrize("model", ["full", "reduced"])
@pytest.mark.parametrize("n_enroll", [1, 3])
def test_llr_equals_the_direct_joint_gaussian_ratio(request, model, n_enroll):
    plda, (X, y, *_ ) = request.getfixturevalue(model)
    rng = np.random.default_rng(10 + n_enroll)
    speakers = rng.choice(np.unique(y), size=3, replace=False)
    enroll_sets = [X[y == s][:n_enroll] for s in speakers]
    # tests: another vector of speaker 0, one of a speaker not enrolled, one far off
    tests = np.vstack([X[y == speakers[0]][-1], X[y == np.setdiff1d(y, speakers)[0]][0], X[0] + 5.0])
    scores = plda.score(np.array([E.sum(0) for E in enroll_sets]), n_enroll, tests)
    assert scores.shape == (3, 3)
    for i, E in enumerate(enroll_sets):
        for j, t in enumerate(tests):
            assert abs(scores[i, j] - direct_llr(plda, E, t)) < 1e-8
    assert scores[0, 0] > 0  # a true trial of well-separated speakers
    pairs = plda.score_pairs(np.array([E.sum(0) for E in enroll_sets]), n_enroll, tests)
    for i, E in enumerate(enroll_sets):
        assert abs(pairs[i] - direct_llr(plda, E, tests[i])) < 1e-8


def test_enrollment_is_additive_and_order_free(full):
    plda, (X, y, *_ ) = full
    five = X[y == 7][:5]
    tests = X[(y == 7) | (y == 8)][5:12]
    at_once = plda.score(five.sum(0, keepdims=True), 5, tests)
    # direct: the 5 vectors at once, in two orders
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        expected = [direct_llr(plda, five[order], t) for t in tests]
        np.testing.assert_allclose(at_once[0], expected, atol=1e-8)
    # enrolled in two parts, summed later (counts 2 + 3), and in another order
    later = plda.score((five[:2].sum(0) + five[2:].sum(0))[None], np.array([2 + 3]), tests)
    reversed_sum = plda.score(five[::-1].sum(0, keepdims=True), 5, tests)
    np.testing.assert_allclose(later, at_once, atol=1e-10)
    np.testing.assert_allclose(reversed_sum, at_once, atol=1e-10)
    # per-speaker counts broadcast: two speakers with different counts in one call
    both = plda.score(np.vstack([five.sum(0), five[:2].sum(0)]), [5, 2], tests)
    np.testing.assert_allclose(both[0], at_once[0], atol=1e-10)
    np.testing.assert_allclose(both[1], plda.score(five[:2].sum(0, keepdims=True), 2, tests)[0], atol=1e-10)


def test_scoring_bad_input(full):
    plda, (X, *_ ) = full
    E, T = X[:2], X[2:5]
    assert_one_line_error(lambda: plda.score(E, 0, T), "n_enroll[0] = 0", "no i-vector")
    assert_one_line_error(lambda: plda.score(E, [1, 0], T), "n_enroll[1] = 0")
    assert_one_line_error(lambda: plda.score(E, [1, 2, 3], T), "shape (2,)")
    assert_one_line_error(lambda: plda.score(E, 1.5, T), "whole numbers")
    assert_one_line_error(lambda: plda.score(E, 1, T[:, :5]), "X_test has 5 features", "fitted on 6")
    assert_one_line_error(lambda: plda.score(E[:, :4], 1, T), "enroll_sum has 4 features")
    assert_one_line_error(lambda: plda.score(E[0], 1, T), "reshape(1, -1)")
    bad = T.copy()
    bad[1, 2] = np.inf
    assert_one_line_error(lambda: plda.score(E, 1, bad), "X_test", "row 1, column 2")
    assert_one_line_error(lambda: plda.score_pairs(E, 1, T), "2 enrollments and 3 tests")
    assert_one_line_error(lambda: plda.transform(X[:, :3]), "3 features")
    with pytest.raises(NotFittedError):
        PLDA().score(E, 1, T)


def test_plda_training_bad_input():
    X, y, *_ = planted(seed=8, d=6, n_speakers=30, counts=(3, 6))
    assert_one_line_error(lambda: PLDA().fit(X, np.zeros(len(X))), "at least 2 speakers")
    bad = X.copy()
    bad[4, 0] = np.nan
    assert_one_line_error(lambda: PLDA().fit(bad, y), "row 4, column 0")
    # too few i-vectors for the within-speaker covariance: 4 speakers x 2 = 8 < 6 + 4
    few = np.isin(y, [0, 1, 2, 3])
    idx = np.concatenate([np.flatnonzero(y == s)[:2] for s in range(4)])
    assert few.sum() >= 8
    assert_one_line_error(lambda: PLDA().fit(X[idx], y[idx]), "6 + 4 = 10", "got 8", "LDA")
    # full-rank B in 6 dims needs more than 6 speakers; rank 2 does not
    idx = np.flatnonzero(y < 5)
    assert_one_line_error(lambda: PLDA().fit(X[idx], y[idx]), "more than 6 speakers", "n_components < 5",
                          "shrinkage='auto'")
    assert_one_line_error(lambda: PLDA(n_components=5, shrinkage="auto").fit(X[idx], y[idx]), "more than 5 speakers")
    fit_quiet(PLDA(n_components=2), X[idx], y[idx])
    assert_one_line_error(lambda: PLDA(n_components=7).fit(X, y), "n_components=7", "n_features=6")
    assert_one_line_error(lambda: PLDA(max_iter=0).fit(X, y), "max_iter")
    assert_one_line_error(lambda: PLDA(tol=-1.0).fit(X, y), "tol")
    assert_one_line_error(lambda: PLDA(shrinkage=1.5).fit(X, y), "shrinkage", "[0, 1]")
    assert_one_line_error(lambda: PLDA(shrinkage="ledoit").fit(X, y), "shrinkage", "'auto'")
    assert_one_line_error(lambda: PLDA().fit(X[:, :1].ravel(), y), "2-D")


def test_speakers_with_one_vector_are_used():
    X, y, *_ = planted(seed=9, d=3, n_speakers=60, counts=(1, 4))
    assert np.any(np.bincount(y) == 1)
    plda = fit_quiet(PLDA(max_iter=50), X, y)
    B, W = implied(plda)
    expected = direct_log_likelihood(plda.mean_, B, W, X, y)
    assert abs(plda.lower_bounds_[-1] - expected) < 1e-9 * abs(expected)


# --------------------------------------------------------------------- files
def test_plda_round_trip(full, reduced, tmp_path):
    for plda, (X, *_ ) in (full, reduced):
        arrays = plda.to_arrays()
        assert str(arrays["kind"]) == "speaker_id.PLDA" and int(arrays["format_version"]) == FORMAT_VERSION
        assert all(np.asarray(v).dtype.kind in "iufU" for v in arrays.values())
        again = PLDA.from_arrays(arrays, source="test")
        assert again.get_params() == plda.get_params()
        np.testing.assert_array_equal(again.score(X[:3], 1, X[3:8]), plda.score(X[:3], 1, X[3:8]))
        path = tmp_path / "plda.npz"
        plda.save(path)
        loaded = PLDA.load(path)
        np.testing.assert_array_equal(loaded.transform_, plda.transform_)
        np.testing.assert_array_equal(loaded.psi_, plda.psi_)
        np.testing.assert_array_equal(loaded.mean_, plda.mean_)


def test_plda_files_keep_the_shrinkage_setting_and_read_files_without_it():
    X, y, *_ = planted(seed=5, d=4, n_speakers=30)
    for setting in ("auto", 0.25, None):
        plda = fit_quiet(PLDA(shrinkage=setting), X, y)
        again = PLDA.from_arrays(plda.to_arrays(), source="test")
        assert again.shrinkage == setting
        np.testing.assert_array_equal(again.psi_, plda.psi_)
    older = {k: v for k, v in fit_quiet(PLDA(), X, y).to_arrays().items() if k != "shrinkage"}
    assert PLDA.from_arrays(older, source="test").shrinkage is None


def test_lda_round_trip(tmp_path):
    X, y = lda_data(seed=11)
    lda = LDA(n_components=2).fit(X, y)
    again = LDA.from_arrays(lda.to_arrays(), source="test")
    np.testing.assert_array_equal(again.transform(X), lda.transform(X))
    lda.save(tmp_path / "lda.npz")
    np.testing.assert_array_equal(LDA.load(tmp_path / "lda.npz").transform(X), lda.transform(X))
    assert str(lda.to_arrays()["kind"]) == "speaker_id.LDA"


def corrupted(arrays, **changes):
    out = dict(arrays)
    for name, value in changes.items():
        if value is None:
            del out[name]
        else:
            out[name] = value
    return out


def test_corrupt_plda_arrays_are_refused(full):
    plda, _ = full
    good = plda.to_arrays()
    d = len(plda.mean_)
    cases = {
        "holds a 'speaker_id.LDA'": corrupted(good, kind=np.array("speaker_id.LDA")),
        "format version 99": corrupted(good, format_version=np.array(99)),
        "missing the field 'psi'": corrupted(good, psi=None),
        "'transform' has shape": corrupted(good, transform=good["transform"][:, :-1]),
        "'psi' has shape": corrupted(good, psi=good["psi"][:-1]),
        "'psi' has negative": corrupted(good, psi=good["psi"] - good["psi"].max() - 1),
        "'mean' holds NaN": corrupted(good, mean=np.full(d, np.nan)),
        "'transform' is singular": corrupted(good, transform=np.zeros((d, d))),
        "'mean' has dtype": corrupted(good, mean=np.array(["a"] * d)),
        "'n_components' is 0": corrupted(good, n_components=np.array(0)),
        "positive psi entries but n_components=2": corrupted(good, n_components=np.array(2)),
        "'max_iter' must be": corrupted(good, max_iter=np.array(1.5)),
        "'shrinkage' must be": corrupted(good, shrinkage=np.array("ledoit")),
        "'shrinkage' must be 'none'": corrupted(good, shrinkage=np.array("1.5")),
    }
    for fragment, arrays in cases.items():
        load = lambda arrays=arrays: PLDA.from_arrays(arrays, source="model file x.npz")
        text = assert_one_line_error(load, fragment)
        assert text.startswith("model file x.npz"), text


def test_corrupt_lda_arrays_are_refused():
    X, y = lda_data(seed=12)
    good = LDA(n_components=2).fit(X, y).to_arrays()
    cases = {
        "holds a 'speaker_id.PLDA'": corrupted(good, kind=np.array("speaker_id.PLDA")),
        "missing the field 'components'": corrupted(good, components=None),
        "'components' has shape": corrupted(good, components=good["components"][:, :3]),
        "'eigenvalues' has shape": corrupted(good, eigenvalues=good["eigenvalues"][:1]),
        "'eigenvalues' has negative": corrupted(good, eigenvalues=-good["eigenvalues"]),
        "'components' holds NaN": corrupted(good, components=good["components"] * np.nan),
        "linearly dependent": corrupted(good, components=np.vstack([good["components"][0]] * 2)),
    }
    for fragment, arrays in cases.items():
        text = assert_one_line_error(lambda arrays=arrays: LDA.from_arrays(arrays, source="lda file"), fragment)
        assert text.startswith("lda file"), text


def test_load_refuses_pickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, kind=np.array("speaker_id.PLDA"), format_version=np.array(FORMAT_VERSION),
             mean=np.array([{"a": 1}], dtype=object))
    assert_one_line_error(lambda: PLDA.load(path), "pickle")


# ------------------------------------------------------------ conventions
def test_estimator_conventions():
    plda = PLDA(max_iter=5, n_components=3)
    assert plda.get_params() == {"max_iter": 5, "n_components": 3, "tol": 1e-4, "shrinkage": None}
    assert repr(plda) == "PLDA(max_iter=5, n_components=3)"
    assert plda.set_params(tol=1e-3).tol == 1e-3
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        plda.set_params(alpha=1)
    sklearn_base = pytest.importorskip("sklearn.base")
    assert sklearn_base.clone(LDA(n_components=2)).get_params() == {"n_components": 2}
    assert sklearn_base.clone(plda).get_params() == plda.get_params()
