"""Speaker names: validation (NFC, no control characters) and the file stems they map to."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .errors import InvalidSpeakerNameError

_HASH_CHARS = 12
_SLUG_CHARS = 40


def check_speaker_name(name):
    """Validate a speaker name and return it in Unicode normal form NFC.

    Any text is a valid name (spaces, slashes, dots, any script) except the
    empty or all-blank string and text containing control characters
    (``\\n``, ``\\t``, ``\\x00``, ...), line or paragraph separators, or lone
    surrogates (how Python keeps command-line bytes that are not UTF-8).
    Names are compared after NFC normalisation, so a name typed in
    decomposed form (``"Zoe\\u0308"``) finds the speaker enrolled as ``"Zoë"``.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        The NFC form of ``name``.

    Raises
    ------
    InvalidSpeakerNameError
        If the name is empty, blank or contains a control character, a
        line or paragraph separator or a lone surrogate.
    TypeError
        If ``name`` is not a string.

    Examples
    --------
    >>> check_speaker_name("Zoe\\u0308 / studio A") == "Zoë / studio A"
    True
    >>> check_speaker_name("bad\\nname")
    Traceback (most recent call last):
    ...
    speaker_id.store.errors.InvalidSpeakerNameError: speaker name 'bad\\nname' contains the control character U+000A; use printable text.
    """
    if not isinstance(name, str):
        raise TypeError(f"a speaker name must be a string, got {type(name).__name__}.")
    if not name.strip():
        blank = "empty" if not name else "blank"
        raise InvalidSpeakerNameError(f"speaker name {name!r} is {blank}; give the speaker a name.")
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidSpeakerNameError(
                f"speaker name {name!r} contains the control character U+{ord(char):04X}; use printable text."
            )
        if category == "Cs":
            raise InvalidSpeakerNameError(
                f"speaker name {name!r} contains bytes that are not UTF-8 text (U+{ord(char):04X}); type the "
                "name in UTF-8 (check the terminal's or the script's encoding)."
            )
        if category in ("Zl", "Zp"):
            raise InvalidSpeakerNameError(
                f"speaker name {name!r} contains the {unicodedata.name(char).lower()} U+{ord(char):04X}, which "
                "breaks lines; use printable text on one line."
            )
    return unicodedata.normalize("NFC", name)


def speaker_file_stem(name, hash_chars=_HASH_CHARS):
    """A file-system-safe, collision-resistant stem for a speaker name.

    The stem is a lower-case ASCII slug of the name (at most 40 characters of
    ``[a-z0-9-]``) followed by the first ``hash_chars`` hex digits of the
    SHA-256 of the name's UTF-8 bytes. It never contains a path separator or
    starts with a dot, is the same on case-insensitive file systems, and two
    names differing only in case or punctuation get different stems.

    Parameters
    ----------
    name : str
        A valid speaker name (see :func:`check_speaker_name`).
    hash_chars : int, default 12
        Hex digits of the hash kept (up to 64).

    Returns
    -------
    str

    Examples
    --------
    >>> speaker_file_stem("Zoë / Studio A")[:-12]
    'zoe-studio-a-'
    >>> speaker_file_stem("../../etc/passwd").startswith("etc-passwd-")
    True
    >>> speaker_file_stem("Alice") != speaker_file_stem("alice")
    True
    """
    name = check_speaker_name(name)
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:_SLUG_CHARS].rstrip("-")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:hash_chars]
    return f"{slug or 'speaker'}-{digest}"
