"""One ``.npz`` file per model, read without pickle: ``save`` and ``load`` shared by the subspace models, LDA and PLDA.

A class using :class:`NpzModelFile` gives its file kind (``_KIND``), the
members of its file (``file_fields()``, see :class:`streamgmm.io.Field`),
``to_arrays()`` and ``from_arrays(arrays, source=...)``; messages call its
files by ``_WHAT`` or, without one, by the class name.
"""

from __future__ import annotations

from streamgmm.io import read_npz, write_npz_atomic


class NpzModelFile:
    """``save`` and ``load`` through the project's guarded ``.npz`` reader and atomic writer."""

    _KIND = ""
    _WHAT = ""

    def save(self, path):
        """Write the model to one ``.npz`` file (atomically, no pickle)."""
        write_npz_atomic(path, self.to_arrays())

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; only its members are read, each validated."""
        source = f"{cls._WHAT or cls.__name__} file {path}"
        return cls.from_arrays(read_npz(path, cls.file_fields(), kind=cls._KIND, source=source), source=source)
