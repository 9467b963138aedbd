"""Conversion to and from ``sklearn.mixture.GaussianMixture``.

Only settings dicts and parameter arrays cross this module: it does not know
:class:`~streamgmm.OnlineGMM`, whose ``from_sklearn`` and ``to_sklearn``
build their objects from what the functions here return.
"""

from __future__ import annotations

import numpy as np


_SHARED = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
    "random_state", "warm_start", "verbose", "verbose_interval",
)


def gaussian_mixture_to_arrays(gaussian_mixture):
    """The settings, parameters and fit results of a fitted ``GaussianMixture``.

    Parameters
    ----------
    gaussian_mixture : sklearn.mixture.GaussianMixture, fitted

    Returns
    -------
    settings : dict
        The constructor parameters ``GaussianMixture`` shares with
        ``OnlineGMM``; a ``random_state`` that is neither None nor an int
        becomes None.
    weights : ndarray of shape (n_components,)
        As stored (float64), not renormalised.
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        Shape per ``covariance_type``: (n_components, n_features, n_features)
        for ``"full"``, (n_features, n_features) for ``"tied"``,
        (n_components, n_features) for ``"diag"``, (n_components,) for
        ``"spherical"``.
    fit_results : dict
        ``converged_``, ``n_iter_``, ``lower_bound_`` and ``lower_bounds_``
        (True, 0, NaN and [] where the mixture lacks them).

    Raises
    ------
    ValueError
        If the mixture is not fitted.
    """
    if not hasattr(gaussian_mixture, "means_"):
        raise ValueError("the GaussianMixture is not fitted; fit it before converting.")
    settings = {name: getattr(gaussian_mixture, name) for name in _SHARED}
    if not (settings["random_state"] is None or isinstance(settings["random_state"], int)):
        settings["random_state"] = None
    fit_results = {
        "converged_": bool(getattr(gaussian_mixture, "converged_", True)),
        "n_iter_": int(getattr(gaussian_mixture, "n_iter_", 0)),
        "lower_bound_": float(getattr(gaussian_mixture, "lower_bound_", np.nan)),
        "lower_bounds_": list(getattr(gaussian_mixture, "lower_bounds_", [])),
    }
    return (
        settings,
        np.asarray(gaussian_mixture.weights_, dtype=np.float64),
        np.asarray(gaussian_mixture.means_, dtype=np.float64),
        np.asarray(gaussian_mixture.covariances_, dtype=np.float64),
        fit_results,
    )


def arrays_to_gaussian_mixture(settings, weights, means, covariances, precisions_cholesky, precisions, fit_results):
    """A fitted ``GaussianMixture`` holding copies of the given parameters.

    Parameters
    ----------
    settings : dict
        Constructor parameters; those ``GaussianMixture`` shares with
        ``OnlineGMM`` (``n_components``, ``covariance_type``, ``tol``, ...)
        are used, the others ignored.
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances, precisions_cholesky, precisions : ndarray
        Shapes per ``covariance_type``, as scikit-learn's.
    fit_results : dict
        ``converged_``, ``n_iter_``, ``lower_bound_`` and optionally
        ``lower_bounds_`` (default: empty).

    Returns
    -------
    sklearn.mixture.GaussianMixture
    """
    from sklearn.mixture import GaussianMixture  # here: it adds 0.2 s to the import, and only conversions need it
    gm = GaussianMixture(**{name: settings[name] for name in _SHARED})
    gm.weights_ = weights.copy()
    gm.means_ = means.copy()
    gm.covariances_ = covariances.copy()
    gm.precisions_cholesky_ = precisions_cholesky.copy()
    gm.precisions_ = precisions.copy()
    gm.converged_ = fit_results["converged_"]
    gm.n_iter_ = fit_results["n_iter_"]
    gm.lower_bound_ = fit_results["lower_bound_"]
    gm.lower_bounds_ = list(fit_results.get("lower_bounds_", []))
    gm.n_features_in_ = means.shape[1]
    return gm
