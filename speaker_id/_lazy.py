"""Names of a package imported on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, namespace: dict, exports: dict):
    """``__getattr__`` and ``__dir__`` for a package whose ``exports`` load on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    namespace : dict
        The package's ``globals()``; a name is cached there once loaded.
    exports : dict
        Name -> relative module it comes from (e.g. ``".streaming"``).

    Returns
    -------
    __getattr__, __dir__ : callable
    """
    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
