"""The errors a speaker store raises, one class per cause a user can fix."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the speaker store raises on purpose."""


class InvalidStoreError(StoreError, ValueError):
    """The store on disk cannot be used as it is (damaged, foreign or of another version)."""


class NotAStoreError(InvalidStoreError):
    """The path is not a speaker store (missing, not a directory, or no manifest)."""


class StoreExistsError(StoreError, FileExistsError):
    """:meth:`SpeakerStore.create` refused to overwrite an existing store or directory."""


class StoreAccessError(StoreError, OSError):
    """The system refused to read or write a store file (permissions, a full disk, a missing directory).

    The message names the file, what the system said, and the fix; a failed
    write leaves the store as it was.
    """


class StoreLockedError(StoreError, TimeoutError):
    """Another process held the store's lock for longer than the lock timeout."""


class ForeignModelError(StoreError, ValueError):
    """Speaker statistics belong to another UBM than the store's and must be re-enrolled."""


class InvalidSpeakerNameError(StoreError, ValueError):
    """A speaker name is empty, blank, or contains control characters, line separators or undecodable bytes.

    The name is bad input, not a store problem: the command line exits with
    its input code (3).
    """


class UnknownSpeakerError(StoreError, KeyError):
    """No speaker of that name is enrolled; the message lists close matches.

    Attributes
    ----------
    name : str
        The name asked for.
    close_matches : list of str
        Enrolled names that look like it (possibly empty).
    """

    def __init__(self, message, name=None, close_matches=()):
        super().__init__(message)
        self.name = name
        self.close_matches = list(close_matches)

    def __str__(self):  # KeyError would show the repr of the message
        return str(self.args[0])


class _SpeakerFileMissing(InvalidStoreError):
    """A file the manifest refers to is gone (maybe replaced by a concurrent writer)."""
