"""Tests for speaker_id.evaluation.corpora: folder scans, FSDD, Kaldi dirs, LibriSpeech."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speaker_id.evaluation.corpora import (
    DatasetError,
    Utterance,
    find_dataset_root,
    load_fsdd,
    load_librispeech_dir,
    read_kaldi_dir,
    read_utt2spk,
    read_wav_scp,
    scan_audio,
)
from speaker_id.frontend.audio import load_audio

DATA = find_dataset_root()
needs_data = pytest.mark.skipif(DATA is None, reason="shared datasets not found: set SPEAKER_ID_DATASETS or place them in ../shared/datasets")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _write_tone(path: Path, sr=16000, seconds=0.2, freq=300.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr)
    return path


# --- Utterance -------------------------------------------------------------


def test_utterance_is_frozen_and_converts_path():
    u = Utterance("u1", "spk", "a/b.wav")
    assert isinstance(u.path, Path)
    with pytest.raises(Exception):
        u.speaker = "other"
    with pytest.raises(ValueError, match="speaker"):
        Utterance("u1", "", "a.wav")


# --- scan_audio ------------------------------------------------------------


def test_scan_audio_recursive_any_case_sorted(tmp_path):
    for name in ["z.WAV", "a/b.Flac", "a/deep/c.ogg", "a/notes.txt", "a/d.wav.bak", ".hidden/x.wav", "a/._y.wav"]:
        _touch(tmp_path / name)
    found = scan_audio(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/b.Flac", "a/deep/c.ogg", "z.WAV"]


def test_scan_audio_mixes_files_and_dirs_without_duplicates(tmp_path):
    a = _touch(tmp_path / "d" / "a.wav")
    b = _touch(tmp_path / "e" / "B.AIFF")
    assert scan_audio([tmp_path / "d", a, b]) == sorted([a, b])
    assert scan_audio(str(b)) == [b]


def test_scan_audio_errors(tmp_path):
    with pytest.raises(DatasetError, match="nope.*no such file or directory"):
        scan_audio([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(DatasetError, match="empty.*no audio files"):
        scan_audio(tmp_path / "empty")
    with pytest.raises(DatasetError, match="readme.txt.*not an audio file"):
        scan_audio(tmp_path / "empty" / "readme.txt")
    with pytest.raises(DatasetError, match="no audio paths"):
        scan_audio([])


# --- FSDD ------------------------------------------------------------------


def test_load_fsdd_split_on_generated_names(tmp_path):
    for speaker in ["ann", "bob"]:
        for digit in [0, 7]:
            for index in [0, 4, 5, 10, 49]:
                _touch(tmp_path / f"{digit}_{speaker}_{index}.wav")
    _touch(tmp_path / "README.md")
    _touch(tmp_path / "7_bob.wav")  # not an FSDD name
    train, test = load_fsdd(tmp_path)
    assert len(train) == 2 * 2 * 3 and len(test) == 2 * 2 * 2
    assert all(int(u.utt_id.split("_")[2]) >= 5 for u in train)
    assert all(int(u.utt_id.split("_")[2]) <= 4 for u in test)
    assert [u.utt_id for u in test[:4]] == ["0_ann_0", "0_ann_4", "7_ann_0", "7_ann_4"]
    assert [u.utt_id for u in train[:3]] == ["0_ann_5", "0_ann_10", "0_ann_49"]  # numeric order
    assert {u.speaker for u in train} == {"ann", "bob"}


def test_load_fsdd_refuses_dir_without_recordings(tmp_path):
    _touch(tmp_path / "hello.wav")
    with pytest.raises(DatasetError, match=r"no FSDD recordings .*\{digit\}_\{speaker\}_\{index\}\.wav"):
        load_fsdd(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_fsdd(tmp_path / "missing")


@needs_data
def test_load_fsdd_real_official_split():
    train, test = load_fsdd(DATA / "fsdd" / "recordings")
    assert (len(train), len(test)) == (2700, 300)
    speakers = {u.speaker for u in train}
    assert speakers == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert {u.speaker for u in test} == speakers
    assert not {u.utt_id for u in train} & {u.utt_id for u in test}
    assert all(u.path.is_file() for u in test)


# --- Kaldi data dirs -------------------------------------------------------


def test_read_wav_scp_relative_paths_resolve_against_parent_of_data_dir(tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    (data / "wav.scp").write_text("u1 audio/u1.wav\n\nu2   /abs/path/with space.flac  \n")
    scp = read_wav_scp(data / "wav.scp")
    assert list(scp) == ["u1", "u2"]
    assert scp["u1"] == tmp_path / "audio" / "u1.wav"
    assert scp["u2"] == Path("/abs/path/with space.flac")
    other = tmp_path / "elsewhere"
    assert read_wav_scp(data / "wav.scp", base_dir=other)["u1"] == other / "audio" / "u1.wav"


@pytest.mark.parametrize(
    "entry,msg",
    [
        ("sox a.sph -t wav - |", "command pipe"),
        ("flac -c -d a.flac|", "command pipe"),
        ("| cat a.wav", "command pipe"),
        ("cat a.wav | sox - b.wav", "command pipe"),
        ("-", "stdin"),
        ("raw/feats.ark:1234", "archive offset"),
        ("raw/wav.ark:12[0:400]", "archive offset"),
    ],
)
def test_wav_scp_pipes_and_offsets_are_refused(tmp_path, entry, msg):
    scp = tmp_path / "wav.scp"
    scp.write_text(f"ok audio/ok.wav\nbad {entry}\n")
    with pytest.raises(DatasetError, match=rf"wav.scp:2: utterance 'bad'.*{msg}"):
        read_wav_scp(scp)


def test_wav_scp_pipe_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    data = tmp_path / "train"
    data.mkdir()
    (data / "wav.scp").write_text(f"u1 touch {marker} |\n")
    (data / "utt2spk").write_text("u1 s1\n")
    with pytest.raises(DatasetError, match="never executed"):
        read_kaldi_dir(data)
    assert not marker.exists()


def test_wav_scp_malformed_and_duplicate_lines(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text("u1 a.wav\nlonely\n")
    with pytest.raises(DatasetError, match="wav.scp:2: expected"):
        read_wav_scp(scp)
    scp.write_text("u1 a.wav\nu1 b.wav\n")
    with pytest.raises(DatasetError, match="wav.scp:2.*duplicate"):
        read_wav_scp(scp)
    scp.write_text("\n\n")
    with pytest.raises(DatasetError, match="lists no utterances"):
        read_wav_scp(scp)
    with pytest.raises(DatasetError, match="not found"):
        read_wav_scp(tmp_path / "missing.scp")


def test_read_utt2spk(tmp_path):
    p = tmp_path / "utt2spk"
    p.write_text("a-1 a\nb-1 b\n")
    assert read_utt2spk(p) == {"a-1": "a", "b-1": "b"}
    p.write_text("a-1 a extra\n")
    with pytest.raises(DatasetError, match="utt2spk:1"):
        read_utt2spk(p)


def _kaldi_dir(tmp_path, utts):
    """DIR/train with wav.scp (relative paths into DIR/wavs) and utt2spk."""
    data = tmp_path / "train"
    data.mkdir()
    for i, (utt, spk) in enumerate(utts):
        _write_tone(tmp_path / "wavs" / f"{utt}.wav", freq=200 + 100 * i)
    (data / "wav.scp").write_text("".join(f"{u} wavs/{u}.wav\n" for u, _ in utts))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utts))
    return data


def test_read_kaldi_dir_with_generated_audio(tmp_path):
    data = _kaldi_dir(tmp_path, [("s2-u1", "s2"), ("s1-u2", "s1"), ("s1-u1", "s1")])
    utts = read_kaldi_dir(data)
    assert [(u.utt_id, u.speaker) for u in utts] == [("s1-u1", "s1"), ("s1-u2", "s1"), ("s2-u1", "s2")]
    assert utts[0].path == tmp_path / "wavs" / "s1-u1.wav"
    assert load_audio(utts[0].path).shape == (3200,)


def test_read_kaldi_dir_missing_utt2spk_entry(tmp_path):
    data = _kaldi_dir(tmp_path, [("u1", "s1"), ("u2", "s2")])
    (data / "utt2spk").write_text("u1 s1\n")
    with pytest.raises(DatasetError, match=r"utt2spk: no speaker for 1 utterance\(s\) of wav.scp \(u2\)"):
        read_kaldi_dir(data)
    (data / "utt2spk").write_text("u1 s1\nu2 s2\nu3 s3\n")
    with pytest.raises(DatasetError, match=r"no audio for 1 utterance\(s\) of utt2spk \(u3\)"):
        read_kaldi_dir(data)
    (data / "utt2spk").unlink()
    with pytest.raises(DatasetError, match="utt2spk file not found"):
        read_kaldi_dir(data)


def test_read_kaldi_dir_missing_audio_file(tmp_path):
    data = _kaldi_dir(tmp_path, [("u1", "s1"), ("u2", "s2")])
    (tmp_path / "wavs" / "u2.wav").unlink()
    with pytest.raises(DatasetError, match=r"1 listed audio file\(s\) not found: u2 .*base_dir"):
        read_kaldi_dir(data)
    assert len(read_kaldi_dir(data, check_files=False)) == 2
    with pytest.raises(DatasetError, match="not found"):
        read_kaldi_dir(tmp_path / "no-such-dir")


@needs_data
def test_read_kaldi_dir_pointing_at_real_fsdd_files(tmp_path):
    rec = DATA / "fsdd" / "recordings"
    names = ["0_george_0", "1_jackson_3", "2_theo_7"]
    data = tmp_path / "test"
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"{n} {rec / (n + '.wav')}\n" for n in names))
    (data / "utt2spk").write_text("".join(f"{n} {n.split('_')[1]}\n" for n in names))
    utts = read_kaldi_dir(data)
    assert [u.speaker for u in utts] == ["george", "jackson", "theo"]
    assert all(load_audio(u.path, sr=8000).size > 1000 for u in utts)


# --- LibriSpeech -----------------------------------------------------------


def test_load_librispeech_dir_nested_layout(tmp_path):
    for name in ["19/198/19-198-0001.flac", "19/198/19-198-0000.flac", "103/1240/103-1240-0000.FLAC", "19/198/19-198.trans.txt"]:
        _touch(tmp_path / name)
    utts = load_librispeech_dir(tmp_path)
    assert [(u.utt_id, u.speaker) for u in utts] == [("19-198-0000", "19"), ("19-198-0001", "19"), ("103-1240-0000", "103")]


def test_load_librispeech_dir_errors(tmp_path):
    _touch(tmp_path / "a" / "not-libri.flac")
    with pytest.raises(DatasetError, match=r"no LibriSpeech files"):
        load_librispeech_dir(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_librispeech_dir(tmp_path / "missing")
    _touch(tmp_path / "x" / "1-2-0003.flac")
    _touch(tmp_path / "y" / "1-2-0003.flac")
    with pytest.raises(DatasetError, match="more than one place"):
        load_librispeech_dir(tmp_path)


@needs_data
def test_load_librispeech_real_test_other():
    utts = load_librispeech_dir(DATA / "librispeech-mini" / "test-other")
    assert len(utts) == 100
    speakers = {u.speaker for u in utts}
    assert len(speakers) == 10
    # The layout is test-other/<speaker>/<files>: the parsed id matches the folder.
    assert all(u.path.parent.name == u.speaker for u in utts)
    train = load_librispeech_dir(DATA / "librispeech-mini" / "train-clean-100")
    assert len(train) == 251 and len({u.speaker for u in train}) == 251


# --- dataset root ----------------------------------------------------------


def test_find_dataset_root_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAKER_ID_DATASETS", str(tmp_path))
    assert find_dataset_root() == tmp_path
    monkeypatch.setenv("SPEAKER_ID_DATASETS", str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="SPEAKER_ID_DATASETS.*not a directory"):
        find_dataset_root()


def test_find_dataset_root_default_is_beside_the_repo(monkeypatch):
    monkeypatch.delenv("SPEAKER_ID_DATASETS", raising=False)
    expected = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    root = find_dataset_root()
    if expected.is_dir():
        assert root == expected
    else:
        assert root is None
