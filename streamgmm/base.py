"""scikit-learn's parameter conventions without scikit-learn: ``get_params``, ``set_params``, ``repr``.

An estimator's constructor parameters are the names of its ``__init__``
signature, stored unchanged as attributes of the same name, so that
``sklearn.base.clone`` and grid searches work on it.
"""

from __future__ import annotations

import inspect

import numpy as np


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` read from the ``__init__`` signature.

    Examples
    --------
    >>> class Model(ParamsMixin):
    ...     def __init__(self, rank=10, *, tol=1e-3):
    ...         self.rank, self.tol = rank, tol
    >>> Model(rank=4)
    Model(rank=4)
    >>> Model().set_params(tol=0.1).get_params()
    {'rank': 10, 'tol': 0.1}
    """

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        """Constructor parameters as a dict (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters; unknown names raise ``ValueError``."""
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid ones: {sorted(valid)}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        changed = [
            f"{name}={value!r}" for name, value in self.get_params().items()
            if not isinstance(value, np.ndarray) and value != defaults[name]
        ]
        return f"{type(self).__name__}({', '.join(changed)})"
