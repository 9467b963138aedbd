"""Hostile input to the speaker-id command: each a clear one-line error with its documented exit code.

Audio headers and options that ask for absurd amounts of memory, paths that
are not regular files, names that are not UTF-8, undecodable lists, and
fuzzed WAV headers and manifests (hypothesis).
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_voices
from speaker_id.cli import EXIT_INPUT, EXIT_STORE, EXIT_USAGE, main
from speaker_id.frontend.audio import AudioError, load_audio
from speaker_id.frontend.limits import MAX_CHANNELS, MAX_SAMPLE_RATE, MAX_UPSAMPLING, MIN_SAMPLE_RATE
from speaker_id.store import SpeakerStore, StoreError

SR = 16000


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """WAV files of 6 synthetic speakers, 2 utterances each."""
    root = tmp_path_factory.mktemp("voices")
    return root, write_voices(root, 6, 2, 1.5, sr=SR, seed=5)


@pytest.fixture(scope="module")
def store(voices, tmp_path_factory):
    """A small store (8 components) with 'spk000' enrolled; spk002..spk005 trained the UBM."""
    root, by_speaker = voices
    path = tmp_path_factory.mktemp("stores") / "store"
    assert main(["train-ubm", "--store", str(path), "--components", "8", "--max-iter", "5", "--jobs", "1",
                 "--quiet", *[str(root / f"spk{i:03d}") for i in range(2, 6)]]) == 0
    assert main(["enroll", "--store", str(path), "spk000", str(by_speaker["spk000"][0])]) == 0
    return path


@pytest.fixture
def wav(voices):
    return str(voices[1]["spk000"][1])


def one_line_error(capsys, argv, code, *needles):
    """Run the command; it must exit with ``code`` and print one line naming each needle, no traceback."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("speaker-id: error: "), err
    assert "Traceback" not in err and "[Errno" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def usage_error(capsys, argv, *needles):
    """The command must be refused by the parser (exit 2) with a message naming each needle."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def riff_wav(samples, rate, channels=1, bits=16, *, data_size=None, riff_size=None, byte_rate=None,
             block_align=None, fmt_size=16, audio_format=1):
    """A RIFF/WAVE file whose header fields can each be set to anything (defaults: a valid PCM file)."""
    data = np.asarray(samples, dtype="<i2").tobytes()
    block_align = (channels * bits // 8 if block_align is None else block_align) & 0xFFFF
    byte_rate = (rate * block_align if byte_rate is None else byte_rate) & 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", audio_format, channels, rate, byte_rate, block_align, bits)
    fmt = (fmt + b"\0" * 64)[:fmt_size]  # a size beyond the padding claims more than the file holds
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt
            + b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def speech_samples(voices, n=8000):
    y, _ = sf.read(voices[1]["spk000"][1], dtype="float32")
    return np.round(y[:n] * 32767).astype(np.int16)


class _Hang(BaseException):
    """Raised by the alarm of :func:`no_hang`; a BaseException so that no handler swallows it."""


@contextlib.contextmanager
def no_hang(seconds=30):
    """Fail instead of hanging the suite: what used to block forever must return within ``seconds``."""
    def alarm(signum, frame):
        raise _Hang(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def peak_traced_bytes(function, *args):
    """Peak memory numpy and Python allocated while ``function(*args)`` ran (it may raise)."""
    tracemalloc.start()
    try:
        try:
            function(*args)
        except AudioError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------- headers that ask for too much
@pytest.mark.parametrize("rate, channels, needle", [
    (1, 1, "sample rate in the file's header is 1 Hz"),
    (MIN_SAMPLE_RATE - 1, 1, "at least 1000 Hz"),
    (MAX_SAMPLE_RATE + 1, 1, "at most 384000 Hz"),
    (1_000_000_000, 1, "sample rate in the file's header is 1e+09 Hz"),
    (16000, MAX_CHANNELS + 1, f"channel count in the file's header is {MAX_CHANNELS + 1}"),
])
def test_audio_headers_out_of_bounds_are_refused_before_reading(store, voices, tmp_path, capsys, rate, channels,
                                                               needle):
    samples = speech_samples(voices, 4000 * channels)
    path = tmp_path / "header.wav"
    path.write_bytes(riff_wav(samples, rate, channels))
    assert peak_traced_bytes(load_audio, path, SR) < 4 * 2**20  # refused before any signal is built
    for command in (["verify", "--store", str(store), "spk000"], ["identify", "--store", str(store)],
                    ["enroll", "--store", str(store), "newcomer"]):
        one_line_error(capsys, command + [str(path)], EXIT_INPUT, "header.wav", needle)
    one_line_error(capsys, ["stream", "--store", str(store), str(path)], EXIT_INPUT, "header.wav", needle)
    assert "newcomer" not in SpeakerStore.open(store)


def test_resampling_up_more_than_the_bound_is_refused(store, tmp_path, capsys):
    slow = MIN_SAMPLE_RATE * 2  # 2 kHz: 8x up to 16 kHz is allowed
    ok = tmp_path / "2k.wav"
    sf.write(ok, 0.3 * np.random.default_rng(0).standard_normal(slow), slow)
    assert load_audio(ok, SR).size == SR
    too_slow = tmp_path / "1k.wav"
    sf.write(too_slow, 0.3 * np.random.default_rng(0).standard_normal(1000), 1000)
    assert SR > MAX_UPSAMPLING * 1000
    one_line_error(capsys, ["verify", "--store", str(store), "spk000", str(too_slow)], EXIT_INPUT,
                   "1k.wav", "resampled 16x up to 16000 Hz")


def test_huge_float_samples_give_one_error_and_no_runtime_warnings(store, tmp_path, capsys):
    y = np.zeros(SR, np.float32)
    y[::7] = 1e30
    path = tmp_path / "huge.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow) would fail the test
        err = one_line_error(capsys, ["verify", "--store", str(store), "spk000", str(path)], EXIT_INPUT,
                             "huge.wav", "samples reach 1e+30")
    assert "inf dB" not in err and "silent" not in err


def test_stream_of_huge_floats_counts_them_and_scores_the_rest(store, voices, monkeypatch, capsys):
    import io
    import sys

    audio = speech_samples(voices, SR).astype(np.float32) / 32768
    audio[:100] = 1e30

    class Stdin:
        buffer = io.BytesIO(audio.astype("<f4").tobytes())

    monkeypatch.setattr(sys, "stdin", Stdin())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["stream", "--store", str(store), "-", "--format", "f32le", "--json", "--threshold=-inf"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert np.isfinite(summary["total"][0]["score"])
    assert "100 samples far beyond full scale" in captured.err


# ------------------------------------------------------------ option bounds
@pytest.mark.parametrize("extra, needle", [
    (["--rate", "1000000000000"], "--rate"),
    (["--rate", "999"], "--rate"),
    (["--channels", "1000000000"], "--channels"),
    (["--channels", "0"], "--channels"),
    (["--window", "1e9"], "--window"),
    (["--window", "0"], "--window"),
    (["--window", "nan"], "--window"),
    (["--min-speech", "-1"], "--min-speech"),
    (["--top", "0"], "--top"),
    (["--top", "-1"], "--top"),
    (["--top-c", "0"], "--top-c"),
    (["--stall-timeout", "inf"], "--stall-timeout"),
    (["--stall-timeout", "-1"], "--stall-timeout"),
    (["--threshold", "nan"], "--threshold"),
    (["--decision-interval", "0"], "--decision-interval"),
    (["--decision-interval", "inf"], "--decision-interval"),
])
def test_stream_options_out_of_bounds_are_usage_errors(store, capsys, extra, needle):
    usage_error(capsys, ["stream", "--store", str(store), "-", *extra], needle)


@pytest.mark.parametrize("argv, needle", [
    (["train-ubm", "--store", "S", "--jobs", "0", "x.wav"], "--jobs"),
    (["train-ubm", "--store", "S", "--sr", "1", "x.wav"], "--sr"),
    (["evaluate", "--protocol", "fsdd", "D", "--jobs", "0"], "--jobs"),
    (["evaluate", "--protocol", "fsdd", "D", "--sr", "10000000"], "--sr"),
    (["verify", "--store", "S", "a", "x.wav", "--threshold", "nan"], "--threshold"),
    (["identify", "--store", "S", "x.wav", "--top-c", "-1"], "--top-c"),
    (["train-ubm", "--store", "S", "--components", "0", "x.wav"], "--components"),
    (["train-ubm", "--store", "S", "--relevance-factor", "nan", "x.wav"], "--relevance-factor"),
    (["evaluate", "--protocol", "fsdd", "D", "--relevance-factor", "0"], "--relevance-factor"),
    (["evaluate", "--protocol", "fsdd", "D", "--p-target", "0.01", "1"], "--p-target"),
    (["evaluate", "--protocol", "fsdd", "D", "--top-n", "0"], "--top-n"),
])
def test_other_options_out_of_bounds_are_usage_errors(capsys, argv, needle):
    usage_error(capsys, argv, needle)


def test_min_speech_longer_than_the_window_is_a_usage_error(store, capsys):
    assert main(["stream", "--store", str(store), "-", "--window", "1", "--min-speech", "1.5"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--min-speech 1.5 is longer than --window 1" in err


def test_options_at_their_bounds_are_accepted(store, voices, capsys):
    path = str(voices[1]["spk001"][0])
    argv = ["stream", "--store", str(store), path, "--json", "--window", "600", "--min-speech", "600",
            "--top", "1", "--stall-timeout", "0", "--threshold=-inf"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["end"] == "end of stream" and len(summary["total"]) == 1


# ------------------------------------------------------- paths that are not files
@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    return path


def test_fifo_as_audio_is_refused_at_once_by_every_command(store, fifo, tmp_path, capsys):
    s = str(store)
    with no_hang():
        for argv in (["enroll", "--store", s, "x", str(fifo)], ["verify", "--store", s, "spk000", str(fifo)],
                     ["identify", "--store", s, str(fifo)], ["stream", "--store", s, str(fifo)],
                     ["train-ubm", "--store", str(tmp_path / "new"), "--quiet", str(fifo)]):
            one_line_error(capsys, argv, EXIT_INPUT, "pipe.wav", "is a FIFO (named pipe), not an audio file")
    assert not (tmp_path / "new").exists()


def test_fifo_or_device_in_a_corpus_is_refused(tmp_path, capsys):
    data = tmp_path / "corpus"
    for part in ("train", "test"):
        (data / part).mkdir(parents=True)
        os.mkfifo(data / part / "wav.scp")
        (data / part / "utt2spk").write_text("u1 a\n")
    with no_hang():
        one_line_error(capsys, ["evaluate", "--protocol", "kaldi", str(data)], EXIT_INPUT,
                       "wav.scp", "is a FIFO")
        one_line_error(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet",
                                str(data / "train" / "wav.scp")], EXIT_INPUT, "wav.scp", "is a FIFO")


def test_device_and_directory_as_audio_are_refused(store, tmp_path, capsys):
    s = str(store)
    with no_hang():
        one_line_error(capsys, ["verify", "--store", s, "spk000", "/dev/zero"], EXIT_INPUT, "/dev/zero", "a device")
    one_line_error(capsys, ["verify", "--store", s, "spk000", str(tmp_path)], EXIT_INPUT, "is a directory")


# ---------------------------------------------------------- names and contents
def test_non_utf8_file_names_are_usable_and_named_when_broken(store, voices, tmp_path, capsys):
    raw_dir = os.fsencode(tmp_path)
    good = os.fsdecode(raw_dir + b"/caf\xe9.wav")
    shutil.copy(voices[1]["spk000"][1], good)
    assert main(["verify", "--store", str(store), "spk000", good, "--json"]) in (0, 1)
    assert "score" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    broken = os.fsdecode(raw_dir + b"/bro\xffken.wav")
    Path(broken).write_bytes(b"not audio")
    one_line_error(capsys, ["verify", "--store", str(store), "spk000", broken], EXIT_INPUT,
                   "bro\\xffken.wav", "cannot decode audio")


def test_binary_wav_scp_is_named(tmp_path, voices, capsys):
    scp = tmp_path / "wav.scp"
    scp.write_bytes(Path(voices[1]["spk000"][0]).read_bytes()[:400])
    one_line_error(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", str(scp)], EXIT_INPUT,
                   str(scp), "not a UTF-8 text file")


def test_unlistable_directory_is_not_called_empty(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == corpus:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    err = one_line_error(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", str(corpus)], EXIT_INPUT,
                         "corpus", "cannot list the directory: permission denied")
    assert "holds no audio" not in err


def test_audio_the_system_will_not_open_says_why(store, voices, tmp_path, monkeypatch, capsys):
    audio = tmp_path / "secret.wav"
    shutil.copy(voices[1]["spk000"][1], audio)
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if os.fsdecode(path) == str(audio):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    err = one_line_error(capsys, ["verify", "--store", str(store), "spk000", str(audio)], EXIT_INPUT,
                         "secret.wav", "permission denied", "chmod")
    assert "cannot decode" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_audio_and_directory_say_permission_denied(store, voices, tmp_path, capsys):
    audio = tmp_path / "secret.wav"
    shutil.copy(voices[1]["spk000"][1], audio)
    audio.chmod(0)
    one_line_error(capsys, ["verify", "--store", str(store), "spk000", str(audio)], EXIT_INPUT,
                   "secret.wav", "permission denied")
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0)
    try:
        one_line_error(capsys, ["enroll", "--store", str(store), "x", str(closed)], EXIT_INPUT,
                       "closed", "permission denied")
    finally:
        closed.chmod(0o755)


# ------------------------------------------------------------------ fuzzing
_WAV_FIELDS = st.fixed_dictionaries({}, optional={
    "rate": st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1, 999, 1000, 8000, 384000, 384001])),
    "channels": st.one_of(st.integers(0, 2**16 - 1), st.sampled_from([1, 2, 64, 65])),
    "bits": st.sampled_from([0, 1, 7, 8, 16, 24, 32, 64, 65535]),
    "data_size": st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**31, 2**32 - 1])),
    "riff_size": st.integers(0, 2**32 - 1),
    "byte_rate": st.integers(0, 2**32 - 1),
    "block_align": st.integers(0, 2**16 - 1),
    "fmt_size": st.sampled_from([0, 2, 14, 16, 18, 40, 2**31]),
    "audio_format": st.sampled_from([0, 1, 3, 6, 0xFFFE, 0xFFFF]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_WAV_FIELDS)
def test_fuzzed_wav_headers_fail_in_one_line_or_work(store, voices, tmp_path, capsys, fields):
    """A RIFF file of 16 KB with any header: the command succeeds or exits 3 in one line, in little memory."""
    fields = dict(fields)
    rate = fields.pop("rate", SR)
    channels = fields.pop("channels", 1)
    path = tmp_path / "fuzz.wav"
    path.write_bytes(riff_wav(speech_samples(voices, 8000), rate, channels, **fields))
    assert peak_traced_bytes(load_audio, path, SR) < 64 * 2**20
    with no_hang(60):
        code = main(["verify", "--store", str(store), "spk000", str(path)])
    captured = capsys.readouterr()
    assert code in (0, 1, EXIT_INPUT), captured.err
    if code == EXIT_INPUT:
        assert len(captured.err.strip().splitlines()) == 1 and "fuzz.wav" in captured.err, captured.err


def _json_values():
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.sampled_from([10**18, 10**18 - 1, -1, 2**64, 10**400]),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    )
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=8)


def _paths(document, prefix=()):
    """Every key path of a JSON document (dicts and lists), for mutation."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from _paths(value, prefix + (i,))


@pytest.fixture(scope="module")
def fuzz_store(store, tmp_path_factory):
    """A copy of the store whose manifest the manifest fuzzer rewrites."""
    copy = tmp_path_factory.mktemp("fuzz") / "store"
    shutil.copytree(store, copy)
    return copy


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_manifests_raise_only_store_errors(fuzz_store, capsys, data):
    """Any field replaced by any JSON value, or bytes cut or nested deep: only store errors, exit 4 in one line."""
    manifest_path = fuzz_store / "manifest.json"
    original = manifest_path.read_bytes()
    document = json.loads(original)
    how = data.draw(st.sampled_from(["replace", "truncate", "nest", "huge number"]))
    if how == "replace":
        path = data.draw(st.sampled_from(list(_paths(document))[1:]))
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = data.draw(_json_values())
        text = json.dumps(document).encode()
    elif how == "truncate":
        text = original[: data.draw(st.integers(0, len(original) - 1))]
    elif how == "nest":
        depth = data.draw(st.integers(500, 200_000))
        text = original.replace(b'"speakers": [', b'"speakers": ' + b"[" * depth, 1)
    else:
        digits = data.draw(st.integers(19, 10_000))
        text = original.replace(b'"generation": ', b'"generation": ' + b"9" * digits + b", \"_\": ", 1)
    try:
        manifest_path.write_bytes(text)
        try:
            opened = SpeakerStore.open(fuzz_store)
            for name in opened.speakers():
                opened.load_stats(name)
            _ = (opened.feature_config, opened.backend, opened.ubm)
        except StoreError:
            pass
        code = main(["list", "--store", str(fuzz_store)])
        captured = capsys.readouterr()
        assert code in (0, EXIT_STORE), captured.err
        if code == EXIT_STORE:
            assert len(captured.err.strip().splitlines()) == 1, captured.err
            assert captured.err.startswith("speaker-id: error: ") and "Traceback" not in captured.err
    finally:
        manifest_path.write_bytes(original)
