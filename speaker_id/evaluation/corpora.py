"""Finding utterances on disk: audio folders, FSDD, Kaldi data dirs, LibriSpeech.

Every loader returns a list of :class:`Utterance` (utterance id, speaker id,
audio path), sorted, so that training and evaluation runs see the files in a
reproducible order. Nothing here decodes audio; that is
:func:`speaker_id.frontend.audio.load_audio`'s job.

No loader ever runs a command: Kaldi ``wav.scp`` entries that are command
pipes (``sox ... |``) or archive offsets (``file.ark:123``) are refused with
an error that says how to convert them to plain files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

from ..frontend.audio import AUDIO_EXTENSIONS, PathLike, is_audio_file
from ..frontend.paths import describe_os_error, display_path, open_regular_file

__all__ = [
    "DatasetError",
    "Utterance",
    "find_dataset_root",
    "load_fsdd",
    "load_librispeech_dir",
    "read_kaldi_dir",
    "read_utt2spk",
    "read_wav_scp",
    "scan_audio",
]

#: Environment variable naming the folder that holds the shared corpora.
DATASETS_ENV = "SPEAKER_ID_DATASETS"


class DatasetError(ValueError):
    """A dataset path or listing is missing, empty or malformed.

    The message names the path (and line, for list files) and the fix.
    """


@dataclass(frozen=True)
class Utterance:
    """One recording of one speaker.

    Parameters
    ----------
    utt_id : str
        Unique utterance identifier (e.g. ``"3_george_7"``).
    speaker : str
        Speaker identifier (e.g. ``"george"``).
    path : pathlib.Path
        Audio file; a ``str`` is converted to a Path.

    Examples
    --------
    >>> u = Utterance("3_george_7", "george", "recordings/3_george_7.wav")
    >>> u.speaker, u.path.name
    ('george', '3_george_7.wav')
    """

    utt_id: str
    speaker: str
    path: Path

    def __post_init__(self) -> None:
        if not isinstance(self.utt_id, str) or not self.utt_id:
            raise ValueError(f"utt_id must be a non-empty string, got {self.utt_id!r}")
        if not isinstance(self.speaker, str) or not self.speaker:
            raise ValueError(f"speaker must be a non-empty string, got {self.speaker!r}")
        object.__setattr__(self, "path", Path(self.path))


# ---------------------------------------------------------------------------
# Plain folders of audio


def _as_path_list(paths: Union[PathLike, Iterable[PathLike]]) -> list:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def scan_audio(paths: Union[PathLike, Iterable[PathLike]]) -> list:
    """Audio files named by files and directories (searched recursively).

    A directory contributes every file below it whose extension is one of
    :data:`speaker_id.frontend.audio.AUDIO_EXTENSIONS`, in any letter case
    (``.wav``, ``.WAV``, ``.Flac``...). Hidden files and folders (names
    starting with ``.``, such as macOS ``._x.wav`` side files) are skipped.
    A file given by name must itself have an audio extension.

    Parameters
    ----------
    paths : str, os.PathLike or iterable of them
        Files and/or directories.

    Returns
    -------
    list of pathlib.Path
        Sorted, without duplicates.

    Raises
    ------
    DatasetError
        If a path does not exist, a named file is not an audio file, a
        directory holds no audio file, or `paths` is empty.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["b.WAV", "sub/a.flac", "notes.txt"]:
    ...     (d / name).parent.mkdir(exist_ok=True)
    ...     _ = (d / name).write_bytes(b"")
    >>> [p.relative_to(d).as_posix() for p in scan_audio(d)]
    ['b.WAV', 'sub/a.flac']
    """
    roots = _as_path_list(paths)
    if not roots:
        raise DatasetError("no audio paths given; pass at least one file or directory")
    found = set()
    for root in roots:
        if root.is_dir():
            n_before = len(found)
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_refuse_unreadable_directory):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if not name.startswith(".") and is_audio_file(name):
                        found.add(Path(dirpath) / name)
            if len(found) == n_before:
                raise DatasetError(
                    f"{display_path(root)}: directory holds no audio files (looked recursively for "
                    f"{', '.join('.' + e for e in sorted(AUDIO_EXTENSIONS))}, any case); "
                    f"check the path or convert the audio"
                )
        elif os.path.lexists(root) and not root.is_file():
            open_regular_file(root, "audio file", DatasetError).close()  # says what it is instead
            raise DatasetError(f"{display_path(root)}: not an audio file; check the path")  # pragma: no cover
        elif root.is_file():
            if not is_audio_file(root):
                raise DatasetError(
                    f"{display_path(root)}: not an audio file by its extension (expected one of "
                    f"{', '.join('.' + e for e in sorted(AUDIO_EXTENSIONS))}); rename or convert it"
                )
            found.add(root)
        else:
            raise DatasetError(f"{display_path(root)}: no such file or directory; check the path")
    return sorted(found)


def _refuse_unreadable_directory(exc: OSError) -> None:
    """``os.walk``'s error handler: a directory that cannot be listed is an error, not an empty one."""
    raise DatasetError(f"{display_path(exc.filename)}: cannot list the directory: {describe_os_error(exc)}") from None


# ---------------------------------------------------------------------------
# Free Spoken Digit Dataset

_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$", re.IGNORECASE)


def load_fsdd(recordings_dir: PathLike, n_test: int = 5) -> tuple:
    """The Free Spoken Digit Dataset, split into train and test utterances.

    Files are named ``{digit}_{speaker}_{index}.wav``. The official split
    puts indices 0-4 in the test set and 5-49 in the training set. Files
    with other names are ignored.

    Parameters
    ----------
    recordings_dir : str or os.PathLike
        The dataset's ``recordings/`` folder.
    n_test : int, default 5
        Indices below this go to the test set (5 is the official split).

    Returns
    -------
    train, test : list of Utterance
        ``utt_id`` is the file stem (``"7_jackson_32"``), ``speaker`` the
        speaker name; each list is sorted by (speaker, digit, index).

    Raises
    ------
    DatasetError
        If the directory does not exist or holds no FSDD-named file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["0_theo_0.wav", "0_theo_5.wav", "1_theo_12.wav"]:
    ...     _ = (d / name).write_bytes(b"")
    >>> train, test = load_fsdd(d)
    >>> [u.utt_id for u in train], [u.utt_id for u in test]
    (['0_theo_5', '1_theo_12'], ['0_theo_0'])
    """
    root = Path(recordings_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: FSDD recordings directory not found; pass the dataset's recordings/ folder")
    entries = []
    try:
        listing = list(root.iterdir())
    except OSError as exc:
        _refuse_unreadable_directory(exc)
    for path in listing:
        m = _FSDD_NAME.match(path.name)
        if m and path.is_file():
            digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
            entries.append(((speaker, digit, index), Utterance(path.stem, speaker, path)))
    if not entries:
        raise DatasetError(
            f"{root}: no FSDD recordings (files named {{digit}}_{{speaker}}_{{index}}.wav); "
            f"pass the dataset's recordings/ folder"
        )
    entries.sort(key=lambda e: e[0])
    train = [u for key, u in entries if key[2] >= n_test]
    test = [u for key, u in entries if key[2] < n_test]
    return train, test


# ---------------------------------------------------------------------------
# Kaldi data directories

# Kaldi "rxfilename"s that are not plain files: input pipes ("cmd |"),
# standard input ("-"), and archive offsets / ranges ("f.ark:1234", "f:12[3:4]").
_ARK_OFFSET = re.compile(r":\d+(\[[^\]]*\])?$")


def _read_table(path: Path, what: str) -> list:
    """(line number, key, rest) for each non-blank line of a Kaldi table."""
    if not os.path.lexists(path):
        raise DatasetError(f"{display_path(path)}: {what} file not found; a Kaldi data dir needs wav.scp and utt2spk")
    with open_regular_file(path, f"{what} file", DatasetError) as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{display_path(path)}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            f"a {what} file lists '<utt_id> <{what} value>' lines of text: check that this is the right file"
        ) from None
    rows = []
    for lineno, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise DatasetError(f"{display_path(path)}:{lineno}: expected '<utt_id> <{what} value>', got {line!r}")
        rows.append((lineno, parts[0], parts[1].strip()))
    return rows


def read_wav_scp(path: PathLike, base_dir: Optional[PathLike] = None) -> dict:
    """Read a Kaldi ``wav.scp`` that lists plain audio files.

    Each line is ``<utt_id> <path>``; the path is the rest of the line and
    may contain spaces. A relative path is resolved against `base_dir`.
    Entries Kaldi would execute or seek into are refused, never run:
    command pipes (``sox a.sph -t wav - |``, or any ``|``), standard input
    (``-``) and archive offsets (``feats.ark:1234``).

    Parameters
    ----------
    path : str or os.PathLike
        The ``wav.scp`` file.
    base_dir : str or os.PathLike, optional
        Directory that relative audio paths are relative to. Defaults to
        the parent of the data directory holding `wav.scp` (so that with
        ``DIR/train/wav.scp`` a relative entry is relative to ``DIR``).

    Returns
    -------
    dict of str to pathlib.Path
        Utterance id to audio path, in file order.

    Raises
    ------
    DatasetError
        For a missing file, a malformed line, a duplicate id, a pipe,
        stdin or archive-offset entry, or an empty list. The message
        names the file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "train").mkdir()
    >>> _ = (d / "train" / "wav.scp").write_text("u1 audio/u1.wav\\n")
    >>> read_wav_scp(d / "train" / "wav.scp")["u1"] == d / "audio" / "u1.wav"
    True
    """
    path = Path(path)
    base = Path(base_dir) if base_dir is not None else path.absolute().parent.parent
    out: dict = {}
    for lineno, utt, target in _read_table(path, "wav.scp"):
        where = f"{path}:{lineno}: utterance {utt!r}"
        if "|" in target or target == "-":
            raise DatasetError(
                f"{where}: {target!r} is a command pipe or stdin, which is never executed here; "
                f"convert the audio to files first (e.g. run the command once to write a .wav) "
                f"and list the file paths in wav.scp"
            )
        if _ARK_OFFSET.search(target):
            raise DatasetError(
                f"{where}: {target!r} is an archive offset or range, which is not supported; "
                f"extract the audio to separate files and list their paths"
            )
        if utt in out:
            raise DatasetError(f"{where}: duplicate utterance id; each utterance must appear once")
        audio = Path(target).expanduser()
        out[utt] = audio if audio.is_absolute() else base / audio
    if not out:
        raise DatasetError(f"{path}: wav.scp lists no utterances")
    return out


def read_utt2spk(path: PathLike) -> dict:
    """Read a Kaldi ``utt2spk`` file (``<utt_id> <speaker_id>`` per line).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str to str
        Utterance id to speaker id, in file order.

    Raises
    ------
    DatasetError
        For a missing file, a malformed line or a duplicate id.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "utt2spk"
    >>> _ = p.write_text("spk1-u1 spk1\\nspk2-u1 spk2\\n")
    >>> read_utt2spk(p)
    {'spk1-u1': 'spk1', 'spk2-u1': 'spk2'}
    """
    path = Path(path)
    out: dict = {}
    for lineno, utt, speaker in _read_table(path, "utt2spk"):
        if len(speaker.split()) != 1:
            raise DatasetError(f"{path}:{lineno}: expected '<utt_id> <speaker_id>', got extra fields {speaker!r}")
        if utt in out:
            raise DatasetError(f"{path}:{lineno}: duplicate utterance id {utt!r}")
        out[utt] = speaker
    return out


def _some(names: Iterable[str], k: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def read_kaldi_dir(
    data_dir: PathLike,
    base_dir: Optional[PathLike] = None,
    check_files: bool = True,
) -> list:
    """Utterances of a Kaldi-style data directory (``wav.scp`` + ``utt2spk``).

    Parameters
    ----------
    data_dir : str or os.PathLike
        Folder holding ``wav.scp`` and ``utt2spk`` (e.g. ``DIR/train``).
    base_dir : str or os.PathLike, optional
        Directory relative audio paths in ``wav.scp`` are relative to;
        defaults to the parent of `data_dir` (``DIR``), see
        :func:`read_wav_scp`.
    check_files : bool, default True
        Raise if a listed audio file does not exist.

    Returns
    -------
    list of Utterance
        Sorted by utterance id.

    Raises
    ------
    DatasetError
        For what :func:`read_wav_scp` and :func:`read_utt2spk` refuse, an
        utterance of ``wav.scp`` missing from ``utt2spk`` or the other way
        round, or (with `check_files`) a missing audio file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "train").mkdir()
    >>> _ = (d / "train" / "wav.scp").write_text("a-1 wavs/a1.wav\\nb-1 wavs/b1.wav\\n")
    >>> _ = (d / "train" / "utt2spk").write_text("a-1 a\\nb-1 b\\n")
    >>> [(u.utt_id, u.speaker) for u in read_kaldi_dir(d / "train", check_files=False)]
    [('a-1', 'a'), ('b-1', 'b')]
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: Kaldi data directory not found; it must hold wav.scp and utt2spk")
    if base_dir is None:
        base_dir = data_dir.absolute().parent
    wavs = read_wav_scp(data_dir / "wav.scp", base_dir=base_dir)
    spk = read_utt2spk(data_dir / "utt2spk")
    no_speaker = wavs.keys() - spk.keys()
    if no_speaker:
        raise DatasetError(
            f"{data_dir / 'utt2spk'}: no speaker for {len(no_speaker)} utterance(s) of wav.scp "
            f"({_some(no_speaker)}); add '<utt_id> <speaker_id>' lines for them"
        )
    no_audio = spk.keys() - wavs.keys()
    if no_audio:
        raise DatasetError(
            f"{data_dir / 'wav.scp'}: no audio for {len(no_audio)} utterance(s) of utt2spk "
            f"({_some(no_audio)}); add them to wav.scp or remove them from utt2spk"
        )
    if check_files:
        unusable = {u: p for u, p in wavs.items() if not p.is_file()}
        missing = [f"{u} ({display_path(p)})" for u, p in unusable.items() if not p.exists()]
        if missing:
            raise DatasetError(
                f"{data_dir / 'wav.scp'}: {len(missing)} listed audio file(s) not found: "
                f"{_some(missing, 3)}; relative paths are resolved against {Path(base_dir)} "
                f"(pass base_dir to change that)"
            )
        if unusable:
            others = [f"{u} ({display_path(p)})" for u, p in unusable.items()]
            raise DatasetError(
                f"{data_dir / 'wav.scp'}: {len(others)} listed audio path(s) are not regular files (directories, "
                f"FIFOs or devices): {_some(others, 3)}; list audio files"
            )
    return [Utterance(utt, spk[utt], wavs[utt]) for utt in sorted(wavs)]


def labelled_audio_paths(items: Iterable[PathLike]) -> tuple:
    """Audio files named on a command line, each with its speaker.

    Parameters
    ----------
    items : iterable of str or os.PathLike
        Kaldi ``wav.scp`` files (the speakers come from the ``utt2spk``
        beside them), audio files or directories (the speaker of a file is
        the name of the folder holding it, as in ``corpus/alice/1.wav``).

    Returns
    -------
    paths : list of path-like
    speakers : list of str

    Raises
    ------
    DatasetError
        As :func:`audio_paths` and :func:`read_kaldi_dir`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["alice/1.wav", "alice/2.wav", "bob/1.wav"]:
    ...     (d / name).parent.mkdir(exist_ok=True)
    ...     _ = (d / name).write_bytes(b"")
    >>> labelled_audio_paths([d])[1]
    ['alice', 'alice', 'bob']
    """
    paths, speakers = [], []
    for item in items:
        if Path(item).name == "wav.scp" or str(item).endswith(".scp"):
            utts = read_kaldi_dir(Path(item).parent)
            paths += [u.path for u in utts]
            speakers += [u.speaker for u in utts]
        else:
            found = scan_audio([item])
            paths += found
            speakers += [Path(p).parent.name for p in found]
    return paths, speakers


def audio_paths(items: Iterable[PathLike]) -> list:
    """Audio files named on a command line: files, directories, Kaldi ``wav.scp`` lists.

    Parameters
    ----------
    items : iterable of str or os.PathLike
        Each an audio file, a directory (searched as by :func:`scan_audio`), or
        a file named ``wav.scp`` or ending in ``.scp`` (its paths, as by
        :func:`read_wav_scp`).

    Returns
    -------
    list of path-like
        In the order of ``items``; a directory's files sorted.

    Raises
    ------
    DatasetError
        As :func:`scan_audio` and :func:`read_wav_scp`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.wav").write_bytes(b"")
    >>> _ = (d / "wav.scp").write_text(f"utt1 {d / 'a.wav'}\\n")
    >>> [pathlib.Path(p).name for p in audio_paths([d / "wav.scp", d])]
    ['a.wav', 'a.wav']
    """
    paths = []
    for item in items:
        if Path(item).name == "wav.scp" or str(item).endswith(".scp"):
            paths.extend(read_wav_scp(item).values())
        else:
            paths.extend(scan_audio([item]))
    return paths


# ---------------------------------------------------------------------------
# LibriSpeech

_LIBRI_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)\.flac$", re.IGNORECASE)


def load_librispeech_dir(directory: PathLike) -> list:
    """Utterances of a LibriSpeech-style folder of ``{speaker}-{chapter}-{utt}.flac``.

    The folder is searched recursively, so both the original layout
    (``speaker/chapter/*.flac``) and flat folders work. Other files
    (transcripts, ``SPEAKERS.TXT``) are ignored.

    Parameters
    ----------
    directory : str or os.PathLike

    Returns
    -------
    list of Utterance
        ``utt_id`` is the file stem (``"1688-142285-0000"``), ``speaker`` the
        leading number as a string; sorted by utterance id.

    Raises
    ------
    DatasetError
        If the directory does not exist or holds no matching file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "19" / "198").mkdir(parents=True)
    >>> _ = (d / "19" / "198" / "19-198-0001.flac").write_bytes(b"")
    >>> [(u.utt_id, u.speaker) for u in load_librispeech_dir(d)]
    [('19-198-0001', '19')]
    """
    root = Path(directory)
    if not root.is_dir():
        raise DatasetError(f"{root}: LibriSpeech directory not found; check the path")
    utts = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_refuse_unreadable_directory):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            m = _LIBRI_NAME.match(name)
            if m:
                path = Path(dirpath) / name
                utts.append(Utterance(path.stem, m.group(1), path))
    if not utts:
        raise DatasetError(
            f"{root}: no LibriSpeech files (named {{speaker}}-{{chapter}}-{{utt}}.flac) found "
            f"recursively; check the path"
        )
    utts.sort(key=lambda u: tuple(int(x) for x in u.utt_id.split("-")))
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DatasetError(f"{root}: the same utterance appears in more than one place ({_some(dup)}); remove the copies")
    return utts


# ---------------------------------------------------------------------------
# Where the shared corpora live


def find_dataset_root() -> Optional[Path]:
    """The folder holding the shared corpora (``fsdd/``, ``librispeech-mini/``).

    Looks, in order, at the ``SPEAKER_ID_DATASETS`` environment variable,
    then at ``shared/datasets`` beside the repository (``<repo>/../shared/
    datasets``).

    Returns
    -------
    pathlib.Path or None
        The folder, or ``None`` when the variable is unset and there is no
        such folder beside the repository.

    Raises
    ------
    DatasetError
        If ``SPEAKER_ID_DATASETS`` is set to something that is not a
        directory.

    Examples
    --------
    >>> root = find_dataset_root()
    >>> root is None or (root / "fsdd").exists() or root.is_dir()
    True
    """
    env = os.environ.get(DATASETS_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DatasetError(f"{DATASETS_ENV}={env!r} is not a directory; point it at the folder holding fsdd/ and librispeech-mini/, or unset it")
        return root
    repo = Path(__file__).resolve().parents[2]  # speaker_id/evaluation/corpora.py -> the checkout
    candidate = repo.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


def write_kaldi_dir(utterances: Iterable[Utterance], directory: PathLike, base_dir: Optional[PathLike] = None) -> int:
    """Write ``wav.scp``, ``utt2spk`` and ``spk2utt`` for ``utterances`` into ``directory``.

    Parameters
    ----------
    utterances : iterable of Utterance
    directory : path-like
        Created if needed.
    base_dir : path-like, optional
        Audio paths are written relative to it (what :func:`read_kaldi_dir`
        resolves them against); absolute when None.

    Returns
    -------
    int
        Number of utterances written.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> write_kaldi_dir([Utterance("a-1", "a", d / "a1.wav")], d / "data", base_dir=d)
    1
    >>> (d / "data" / "wav.scp").read_text()
    'a-1 a1.wav\\n'
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    utterances = sorted(utterances, key=lambda u: u.utt_id)
    base = None if base_dir is None else Path(base_dir).resolve()
    by_speaker: dict = {}
    scp_lines, u2s_lines = [], []
    for utt in utterances:
        path = Path(utt.path).resolve()
        shown = os.path.relpath(path, base) if base is not None else str(path)
        scp_lines.append(f"{utt.utt_id} {shown}\n")
        u2s_lines.append(f"{utt.utt_id} {utt.speaker}\n")
        by_speaker.setdefault(utt.speaker, []).append(utt.utt_id)
    (directory / "wav.scp").write_text("".join(scp_lines), encoding="utf-8")
    (directory / "utt2spk").write_text("".join(u2s_lines), encoding="utf-8")
    (directory / "spk2utt").write_text(
        "".join(f"{s} {' '.join(ids)}\n" for s, ids in sorted(by_speaker.items())), encoding="utf-8"
    )
    return len(utterances)
