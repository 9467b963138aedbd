"""Conversion to and from ``sklearn.mixture.GaussianMixture`` (scikit-learn is optional)."""

from __future__ import annotations

import numpy as np


def _import_sklearn():
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        raise ImportError(
            "scikit-learn is needed for this conversion: pip install scikit-learn"
        ) from None
    return GaussianMixture


_SHARED = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
    "random_state", "warm_start", "verbose", "verbose_interval",
)


def from_sklearn(gaussian_mixture, **params):
    """Build a fitted ``OnlineGMM`` from a fitted ``GaussianMixture``.

    The statistics' shift is the mixture mean and the variance floor is
    disabled (the training data are unknown); pass ``covariance_floor`` etc.
    in ``params`` to change the settings used for further learning.
    """
    from .estimators import OnlineGMM

    if not hasattr(gaussian_mixture, "means_"):
        raise ValueError("the GaussianMixture is not fitted; fit it before converting.")
    settings = {name: getattr(gaussian_mixture, name) for name in _SHARED}
    if not (settings["random_state"] is None or isinstance(settings["random_state"], int)):
        settings["random_state"] = None
    settings.update(params)
    model = OnlineGMM(**settings)
    weights = np.asarray(gaussian_mixture.weights_, dtype=np.float64)
    means = np.asarray(gaussian_mixture.means_, dtype=np.float64)
    model._set_parameters(
        weights / weights.sum(), means, gaussian_mixture.covariances_,
        shift=weights @ means, variance_floor=np.array(np.nan), source="GaussianMixture",
    )
    model.variance_floor_ = None
    model.converged_ = bool(getattr(gaussian_mixture, "converged_", True))
    model.n_iter_ = int(getattr(gaussian_mixture, "n_iter_", 0))
    model.lower_bound_ = float(getattr(gaussian_mixture, "lower_bound_", np.nan))
    model.lower_bounds_ = list(getattr(gaussian_mixture, "lower_bounds_", []))
    model.n_updates_ = 0
    return model


def to_sklearn(model):
    """A fitted ``GaussianMixture`` holding the parameters of ``model``."""
    GaussianMixture = _import_sklearn()
    model._check_is_fitted()
    settings = {name: getattr(model, name) for name in _SHARED}
    gm = GaussianMixture(**settings)
    gm.weights_ = model.weights_.copy()
    gm.means_ = model.means_.copy()
    gm.covariances_ = model.covariances_.copy()
    gm.precisions_cholesky_ = model.precisions_cholesky_.copy()
    gm.precisions_ = model.precisions_.copy()
    gm.converged_ = model.converged_
    gm.n_iter_ = model.n_iter_
    gm.lower_bound_ = model.lower_bound_
    gm.lower_bounds_ = list(getattr(model, "lower_bounds_", []))
    gm.n_features_in_ = model.n_features_in_
    return gm
