"""The speaker-id command end to end on synthetic voices, and its handling of bad input."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_voices
from speaker_id.cli import main

SR = 16000


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """WAV files of 10 synthetic speakers, 5 utterances each: spk000..spk003 enroll, the rest train the UBM."""
    root = tmp_path_factory.mktemp("voices")
    return root, write_voices(root, 10, 5, 2.5, sr=SR, seed=3)


@pytest.fixture(scope="module")
def store(voices, tmp_path_factory):
    root, by_speaker = voices
    store = tmp_path_factory.mktemp("stores") / "store"
    background = [str(root / f"spk{i:03d}") for i in range(4, 10)]
    assert main(["train-ubm", "--store", str(store), "--components", "16", "--max-iter", "15",
                 "--jobs", "1", "--quiet", *background]) == 0
    for name in ("spk000", "spk001", "spk002", "spk003"):
        assert main(["enroll", "--store", str(store), name, *map(str, by_speaker[name][:3])]) == 0
    return store


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != ".lock":
            h.update(str(path.relative_to(directory)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_store_holds_a_plain_streamgmm_ubm(store):
    import streamgmm

    ubm = streamgmm.load(store / "ubm.npz")
    assert ubm.n_components == 16 and ubm.n_features_in_ == 60


def test_list_shows_the_enrolled_speakers(store, capsys):
    assert main(["list", "--store", str(store), "--json"]) == 0
    listing = _json(capsys)
    assert [e["name"] for e in listing["speakers"]] == ["spk000", "spk001", "spk002", "spk003"]
    assert all(e["n_utterances"] == 3 for e in listing["speakers"])


def test_identify_held_out_recordings(store, voices, capsys):
    _, by_speaker = voices
    correct = 0
    for name in ("spk000", "spk001", "spk002", "spk003"):
        for path in by_speaker[name][3:]:
            assert main(["identify", "--store", str(store), str(path), "--json"]) == 0
            correct += _json(capsys)["speaker"] == name
    assert correct >= 7  # of 8


def test_verify_accepts_the_speaker_and_rejects_another(store, voices, capsys):
    _, by_speaker = voices
    own = by_speaker["spk001"][4]
    assert main(["verify", "--store", str(store), "spk001", str(own), "--json"]) == 0
    target = _json(capsys)
    code = main(["verify", "--store", str(store), "spk002", str(own), "--json", "--threshold",
                 str(target["score"])])
    impostor = _json(capsys)
    assert impostor["score"] < target["score"]
    assert code == 1 and impostor["accepted"] is False


def test_open_set_identification_says_unknown(store, voices, capsys):
    _, by_speaker = voices
    stranger = by_speaker["spk009"][0]
    assert main(["identify", "--store", str(store), str(stranger), "--threshold", "100", "--json"]) == 1
    assert _json(capsys)["speaker"] is None


def test_enrolling_more_later_equals_enrolling_at_once(store, voices, tmp_path):
    from speaker_id.store.speaker_store import SpeakerStore

    _, by_speaker = voices
    files = list(map(str, by_speaker["spk005"][:4]))
    assert main(["enroll", "--store", str(store), "split", *files[:2]]) == 0
    assert main(["enroll", "--store", str(store), "split", *files[2:]]) == 0
    assert main(["enroll", "--store", str(store), "whole", *files]) == 0
    opened = SpeakerStore.open(store)
    split, whole = opened.load_stats("split"), opened.load_stats("whole")
    np.testing.assert_allclose(split.first, whole.first, rtol=1e-10, atol=1e-8)
    assert opened.info("split")["n_utterances"] == 4
    assert main(["remove", "--store", str(store), "split"]) == 0
    assert main(["remove", "--store", str(store), "whole"]) == 0
    assert "split" not in SpeakerStore.open(store)


# ------------------------------------------------------------------ bad input
def _expect_error(capsys, argv, code, *needles):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("speaker-id: error: ")
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_input_gives_one_line_and_leaves_the_store_alone(store, voices, tmp_path, capsys):
    _, by_speaker = voices
    before = _digest(store)
    s = str(store)
    missing = str(tmp_path / "nope.wav")
    _expect_error(capsys, ["verify", "--store", s, "spk000", missing], 3, "nope.wav")
    _expect_error(capsys, ["enroll", "--store", s, "spk000", missing], 3, "nope.wav")
    _expect_error(capsys, ["verify", "--store", s, "spk0000", str(by_speaker["spk000"][4])], 3, "spk000")
    nan_file = tmp_path / "nan.wav"
    audio = np.zeros(SR, dtype=np.float32)
    audio[100] = np.nan
    sf.write(nan_file, audio, SR, subtype="FLOAT")
    _expect_error(capsys, ["enroll", "--store", s, "spk000", str(nan_file)], 3, "nan.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    _expect_error(capsys, ["identify", "--store", s, str(empty)], 3, "empty.wav")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(SR, dtype=np.float32), SR)
    _expect_error(capsys, ["enroll", "--store", s, "new", str(silence)], 3, "silence.wav")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    _expect_error(capsys, ["enroll", "--store", s, "spk000", str(by_speaker["spk000"][3]), str(text)], 3,
                  "notes.wav")
    assert _digest(store) == before


def test_store_problems_exit_4(tmp_path, voices, capsys):
    _, by_speaker = voices
    wav = str(by_speaker["spk000"][0])
    _expect_error(capsys, ["identify", "--store", str(tmp_path / "absent"), wav], 4)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not json")
    _expect_error(capsys, ["list", "--store", str(broken)], 4, "manifest")


def test_wav_scp_pipes_are_refused_not_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 touch {marker} |\n")
    _expect_error(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", str(scp)], 3)
    assert not marker.exists()
    assert not (tmp_path / "s").exists()


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["verify", "--store", "x"])
    assert info.value.code == 2


def test_demo_runs_end_to_end(capsys):
    assert main(["demo", "--speakers", "4", "--json"]) == 0
    report = _json(capsys)
    assert report["accuracy"] >= 0.75
    assert report["eer"] < 0.25


def test_console_script_is_installed():
    import shutil
    import subprocess

    exe = shutil.which("speaker-id") or os.path.join(os.path.dirname(os.sys.executable), "speaker-id")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "enroll" in out.stdout and "exit codes" in out.stdout


# ------------------------------------------------------------------ stream
def _conversation(by_speaker, tmp_path):
    first, _ = sf.read(by_speaker["spk000"][3], dtype="float32")
    second, _ = sf.read(by_speaker["spk001"][4], dtype="float32")
    audio = np.concatenate([first, np.zeros(4 * SR, np.float32), second])
    return audio, len(first) / SR


def test_stream_a_file_follows_the_speakers(store, voices, tmp_path, capsys):
    _, by_speaker = voices
    audio, first_end = _conversation(by_speaker, tmp_path)
    path = tmp_path / "conversation.wav"
    sf.write(path, audio, SR)
    argv = ["stream", "--store", str(store), str(path), "--json", "--window", "2", "--threshold=-inf"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    updates, summary = lines[:-1], lines[-1]
    assert len(updates) == int(np.ceil(len(audio) / (0.1 * SR))) + 1  # one per 100 ms chunk, and the flush
    events = [e for u in updates for e in u["events"]]
    assert events[0]["speaker"] == "spk000" and events[0]["time"] < first_end
    silences = [e["time"] for e in events if e["state"] == "silence"]
    assert silences and first_end < silences[0] < first_end + 2.2
    assert updates[-1]["speaker"] == "spk001"
    assert summary["end"] == "end of stream" and summary["audio_seconds"] == pytest.approx(len(audio) / SR)


def test_stream_raw_pcm_from_stdin_at_another_rate(store, voices, tmp_path, monkeypatch, capsys):
    import io
    import sys

    import soxr

    _, by_speaker = voices
    audio, _ = _conversation(by_speaker, tmp_path)
    pcm = np.round(soxr.resample(audio, SR, 8000) * 32767).astype("<i2").tobytes()

    class Stdin:
        buffer = io.BytesIO(pcm)

    monkeypatch.setattr(sys, "stdin", Stdin())
    argv = ["stream", "--store", str(store), "-", "--rate", "8000", "--format", "S16_LE", "--events-only",
            "--threshold=-inf", "--window", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("# ") and "-> spk000" in out.splitlines()[0]
    assert "end of stream" in out.splitlines()[-1]
    Stdin.buffer = io.BytesIO(pcm)
    _expect_error(capsys, argv + ["--no-resample"], 3, "8000 Hz but the models' features are at 16000 Hz")


def test_stream_bad_sources_exit_3(store, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    _expect_error(capsys, ["stream", "--store", str(store), "mic"], 3, "pip install 'streamgmm[mic]'")
    _expect_error(capsys, ["stream", "--store", str(store), str(tmp_path / "gone.wav")], 3, "gone.wav")
    _expect_error(capsys, ["stream", "--store", str(store), "-", "--format", "pcm"], 3, "unknown sample format")
    _expect_error(capsys, ["stream", "--store", str(store), "-", "--chunk-ms", "0"], 3, "positive number of milliseconds")


def test_stream_reports_nan_and_clipped_samples(store, voices, tmp_path, monkeypatch, capsys):
    import io
    import sys

    _, by_speaker = voices
    audio, _ = _conversation(by_speaker, tmp_path)
    audio = audio.copy()
    audio[1000:1010] = np.nan
    audio[5000:5100] = 1.0

    class Stdin:
        buffer = io.BytesIO(audio.astype("<f4").tobytes())

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert main(["stream", "--store", str(store), "-", "--format", "f32le", "--json", "--threshold=-inf"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["total"][0]["score"] is not None
    assert "10 NaN or infinite samples were replaced by silence" in captured.err
    assert "100 samples at full scale" in captured.err


def test_train_ubm_online_in_one_pass(voices, tmp_path, capsys):
    root, by_speaker = voices
    background = [str(root / f"spk{i:03d}") for i in range(4, 10)]
    store = str(tmp_path / "online")
    argv = ["train-ubm", "--store", store, "--components", "8", "--jobs", "1", "--quiet", "--json",
            "--learning-method", "online", "--batch-size", "1000", *background]
    assert main(argv) == 0
    result = _json(capsys)
    assert result["learning_method"] == "online" and np.isfinite(result["log_likelihood_per_frame"])
    assert main(["enroll", "--store", store, "spk000", *map(str, by_speaker["spk000"][:3])]) == 0
    assert main(["verify", "--store", store, "spk000", str(by_speaker["spk000"][4]), "--threshold=-1000"]) == 0
    _expect_error(capsys, argv[:3] + ["--overwrite", "--batch-size", "0", *background], 3, "batch_size")


@pytest.fixture(scope="module")
def ivector_store(voices, tmp_path_factory):
    """A store with the i-vector back end, trained on spk004..spk009 (speakers from their folder names)."""
    root, by_speaker = voices
    store = tmp_path_factory.mktemp("stores") / "ivector-store"
    background = [str(root / f"spk{i:03d}") for i in range(4, 10)]
    assert main(["train-ubm", "--store", str(store), "--components", "16", "--max-iter", "15", "--jobs", "1",
                 "--quiet", "--backend", "ivector", "--ivector-rank", "10", "--lda-dim", "5", *background]) == 0
    for name in ("spk000", "spk001", "spk002", "spk003"):
        assert main(["enroll", "--store", str(store), name, *map(str, by_speaker[name][:3])]) == 0
    return store


def test_ivector_store_identifies_and_verifies(ivector_store, voices, capsys):
    from speaker_id.store import SpeakerStore

    store = SpeakerStore.open(ivector_store)
    assert store.backend == "ivector" and store.ivector_backend.lda_dim_ == 5
    _, by_speaker = voices
    correct = in_best_two = above = 0
    names = ("spk000", "spk001", "spk002", "spk003")
    for name in names:
        for path in by_speaker[name][3:]:
            main(["identify", "--store", str(ivector_store), str(path), "--json"])
            result = _json(capsys)
            correct += result["speaker"] == name
            in_best_two += name in list(result["scores"])[:2]
            above += sum(result["scores"][name] > result["scores"][other] for other in names if other != name)
            main(["verify", "--store", str(ivector_store), names[(names.index(name) + 1) % 4], str(path), "--json",
                  "--threshold=-1000"])
            verified = _json(capsys)
            assert verified["score"] == pytest.approx(result["scores"][verified["speaker"]], rel=1e-6, abs=1e-9)
    # 8 held-out recordings of 4 voices, a PLDA trained on only 6 other voices: well above chance,
    # which is 2 of 8 named, 4 of 8 among the best two and 12 of 24 target scores above a non-target one
    assert correct >= 4 and in_best_two >= 6 and above >= 18


def test_ivector_store_streams_a_conversation(ivector_store, voices, tmp_path, capsys):
    _, by_speaker = voices
    audio, first_end = _conversation(by_speaker, tmp_path)
    path = tmp_path / "conversation.wav"
    sf.write(path, audio, SR)
    assert main(["stream", "--store", str(ivector_store), str(path), "--json", "--threshold=-inf"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    updates, summary = lines[:-1], lines[-1]
    named = [e["speaker"] for u in updates for e in u["events"] if e["state"] == "speaker"]
    assert named[0] == "spk000" and named[-1] == "spk001"
    first = next(e for u in updates for e in u["events"] if e["state"] == "speaker")
    assert first["time"] < first_end
    assert summary["speech_frames"] > 0 and all(np.isfinite(t["score"]) for t in summary["total"])


def test_ivector_store_asks_only_what_its_speakers_support(voices, tmp_path, capsys):
    root, _ = voices
    store = tmp_path / "store"
    background = [str(root / f"spk{i:03d}") for i in range(4, 10)]  # 6 speakers: LDA keeps at most 5
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--backend", "ivector", "--lda-dim", "6",
                           "--vtln-warps", "none", "--jobs", "1", *background], 3, "lda_dim=6", "ask for 5 or fewer")
    # with two VTLN warps each speaker brings two pseudo-speakers: 18, so LDA keeps at most 17
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--backend", "ivector", "--lda-dim", "18",
                           "--vtln-warps", "0.9,1.1", "--jobs", "1", *background], 3, "lda_dim=18",
                  "VTLN pseudo-speakers", "ask for 17 or fewer")
    # pseudo-speakers do not make up for missing real ones
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--backend", "ivector", "--jobs", "1",
                           *background[:2]], 3, "at least 3 training speakers")
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--backend", "ivector", "--vtln-warps", "1.0",
                           "--jobs", "1", *background], 3, "differ from 1")
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--backend", "ivector", "--vtln-warps", "0.9,0.9",
                           "--jobs", "1", *background], 3, "given twice")
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--vtln-warps", "0.9", "--jobs", "1", *background],
                  3, "--vtln-warps", "add --backend ivector")
    assert not store.exists()


def test_ivector_training_reads_each_file_once(voices, tmp_path, monkeypatch):
    import speaker_id.frontend.extraction as extraction
    from speaker_id.frontend.augmentation import DEFAULT_VTLN_WARPS

    root, _ = voices
    calls = []
    original = extraction.extract_file
    monkeypatch.setattr(extraction, "extract_file", lambda path, config=None: calls.append(path) or original(path, config))
    background = [str(root / f"spk{i:03d}") for i in range(4, 10)]  # 6 speakers x 5 files
    assert main(["train-ubm", "--store", str(tmp_path / "s"), "--components", "8", "--max-iter", "3", "--jobs", "1",
                 "--quiet", "--backend", "ivector", "--ivector-rank", "5", "--vtln-warps", "none", *background]) == 0
    assert len(calls) == 30 and len(set(calls)) == 30  # the UBM and the back end share the cached features
    calls.clear()
    assert main(["train-ubm", "--store", str(tmp_path / "w"), "--components", "8", "--max-iter", "3", "--jobs", "1",
                 "--quiet", "--backend", "ivector", "--ivector-rank", "5", *background]) == 0
    # and each default VTLN warp reads every file once more
    reads = 1 + len(DEFAULT_VTLN_WARPS)
    assert len(calls) == 30 * reads and all(calls.count(path) == reads for path in set(calls))


def test_options_of_the_other_back_end_are_refused(store, ivector_store, voices, tmp_path, capsys):
    root, by_speaker = voices
    audio = str(by_speaker["spk000"][4])
    for argv in (["verify", "--store", str(ivector_store), "spk000", audio, "--exact"],
                 ["identify", "--store", str(ivector_store), audio, "--top-c", "3"],
                 ["stream", "--store", str(ivector_store), audio, "--top-c", "3"]):
        _expect_error(capsys, argv, 3, "--top-c and --exact", "ivector back end")
    _expect_error(capsys, ["train-ubm", "--store", str(tmp_path / "new"), "--lda-dim", "4", str(root / "spk004")],
                  3, "--lda-dim", "add --backend ivector")
    _expect_error(capsys, ["evaluate", "--protocol", "fsdd", str(root), "--ivector-rank", "10"],
                  3, "--ivector-rank", "add --backend ivector")
    assert not (tmp_path / "new").exists()
    assert main(["verify", "--store", str(store), "spk000", audio, "--exact", "--threshold=-1000"]) == 0


def test_ivector_store_keeps_enrollment_additive(ivector_store, voices, tmp_path):
    import shutil

    from speaker_id.frontend.extraction import extract_file
    from speaker_id.operations import enroll_files
    from speaker_id.store import InvalidStoreError, SpeakerStore
    from streamgmm import accumulate

    _, by_speaker = voices
    shutil.copytree(ivector_store, tmp_path / "copy")
    store = SpeakerStore.open(tmp_path / "copy")
    backend = store.ivector_backend
    assert store.ivector_backend is backend  # read from disk once
    files = by_speaker["spk005"][:3]
    enroll_files(store, "at-once", files)
    enroll_files(store, "later", files[:1])
    enroll_files(store, "later", files[1:])
    # a speaker is the sum of its utterances' i-vectors and their count: more audio later adds to both
    expected = backend.vectors([accumulate(store.ubm, extract_file(f, store.feature_config)) for f in files]).sum(0)
    for name in ("at-once", "later"):
        vector_sum, count = store.speaker_enrollment(name)
        assert count == 3
        np.testing.assert_allclose(vector_sum, expected, rtol=1e-6)
    np.testing.assert_allclose(store.load_stats("later").first, store.load_stats("at-once").first, rtol=1e-9)

    # a speaker file of a store that kept no vector sums reads as the i-vector of its pooled statistics
    path = store.path / "speakers" / store._current()["speakers"]["later"]["file"]
    arrays = dict(np.load(path))
    np.savez(path, **{k: v for k, v in arrays.items() if not k.startswith("ivector_")})
    vector_sum, count = store.speaker_enrollment("later")
    assert count == 1
    np.testing.assert_allclose(vector_sum, backend.vectors([store.load_stats("later")])[0])
    np.savez(path, **dict(arrays, ivector_sum=arrays["ivector_sum"][:-1]))
    with pytest.raises(InvalidStoreError, match="i-vector sum of shape"):
        store.speaker_enrollment("later")
    np.savez(path, **dict(arrays, ivector_count=np.array(-2)))
    with pytest.raises(InvalidStoreError, match="i-vector count"):
        store.speaker_enrollment("later")

    stats = store.load_stats("at-once")
    with pytest.raises(ValueError, match="pass vectors="):
        store.enroll_stats("x", stats)
    with pytest.raises(ValueError, match="one per utterance"):
        store.enroll_stats("x", stats, n_utterances=2, vectors=np.zeros((1, backend.lda_dim_)))
    assert "x" not in store


def test_ivector_store_refuses_a_damaged_or_foreign_backend_file(ivector_store, store, tmp_path):
    import shutil

    from speaker_id.store import ForeignModelError, InvalidStoreError, SpeakerStore

    copy = tmp_path / "copy"
    shutil.copytree(ivector_store, copy)
    arrays = dict(np.load(copy / "backend.npz"))
    np.savez(copy / "backend.npz", **dict(arrays, ubm_fingerprint=np.array("0" * 64)))
    with pytest.raises(ForeignModelError, match="belongs to another UBM"):
        SpeakerStore.open(copy).ivector_backend
    (copy / "backend.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidStoreError, match="unusable"):
        SpeakerStore.open(copy).ivector_backend


def test_gmm_store_has_no_ivector_backend(store):
    from speaker_id.store import SpeakerStore

    opened = SpeakerStore.open(store)
    assert opened.backend == "gmm" and not (store / "backend.npz").exists()
    with pytest.raises(ValueError, match="uses the gmm back end"):
        opened.ivector_backend
    with pytest.raises(ValueError, match="keeps no i-vectors"):
        opened.enroll_stats("x", opened.load_stats("spk000"), vectors=np.zeros((1, 5)))
    with pytest.raises(ValueError, match="uses the gmm back end"):
        opened.speaker_enrollment("spk000")


# ------------------------------------------------------------ exit code classes
@pytest.mark.parametrize("name", ["", "   ", "a\x01b", "line\u2028sep", "caf\udce9"])
def test_invalid_speaker_names_are_bad_input(store, voices, capsys, name):
    wav = str(voices[1]["spk000"][0])
    before = _digest(store)
    for argv in (["enroll", "--store", str(store), name, wav], ["verify", "--store", str(store), name, wav],
                 ["remove", "--store", str(store), name]):
        _expect_error(capsys, argv, 3, "speaker name")
    # the name is refused before any audio is read: unreadable audio does not hide it
    _expect_error(capsys, ["enroll", "--store", str(store), name, str(voices[0] / "missing.wav")], 3, "speaker name")
    assert _digest(store) == before


def _copy_store(store, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    return copy


def test_store_write_failures_are_store_problems_with_a_fix(store, voices, tmp_path, monkeypatch, capsys):
    import errno

    copy = _copy_store(store, tmp_path)
    wav = str(voices[1]["spk000"][0])
    before = _digest(copy)
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if os.fsdecode(path).startswith(str(copy)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    _expect_error(capsys, ["enroll", "--store", str(copy), "new", wav], 4, str(copy), "read-only", "cp -r")
    _expect_error(capsys, ["remove", "--store", str(copy), "spk000"], 4, "read-only")
    monkeypatch.undo()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    _expect_error(capsys, ["enroll", "--store", str(copy), "new", wav], 4, "no space left", "free some space")
    monkeypatch.undo()
    assert _digest(copy) == before

    (copy / "speakers").rename(copy / "moved")
    _expect_error(capsys, ["enroll", "--store", str(copy), "new", wav], 4, "speakers/", "mkdir")
    (copy / "moved").rename(copy / "speakers")
    lock = copy / ".lock"
    if lock.exists():
        lock.unlink()
    lock.mkdir()
    _expect_error(capsys, ["enroll", "--store", str(copy), "new", wav], 4, ".lock", "is a directory", "rmdir")
    lock.rmdir()
    assert _digest(copy) == before


def test_unreadable_store_files_are_store_problems(store, voices, tmp_path, monkeypatch, capsys):
    import errno

    copy = _copy_store(store, tmp_path)
    real_open = os.open

    def unreadable(path, flags, *args, **kwargs):
        if os.path.basename(os.fsdecode(path)) in ("manifest.json", "ubm.npz") and str(copy) in os.fsdecode(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", unreadable)
    err = _expect_error(capsys, ["list", "--store", str(copy)], 4, "permission denied", "chmod")
    assert "zip" not in err


def test_tampered_speaker_file_is_never_accepted(store, voices, tmp_path, capsys):
    copy = _copy_store(store, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = next(e for e in manifest["speakers"] if e["name"] == "spk001")
    path = copy / "speakers" / entry["file"]
    arrays = dict(np.load(path))
    arrays["zeroth"] = np.zeros_like(arrays["zeroth"])
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    _expect_error(capsys, ["verify", "--store", str(copy), "spk001", str(voices[1]["spk001"][4])], 4,
                  "spk001", "soft counts", "speaker-id enroll --replace", "speaker-id remove")
    assert main(["enroll", "--store", str(copy), "--replace", "spk001", str(voices[1]["spk001"][0])]) == 0
    assert main(["verify", "--store", str(copy), "spk001", str(voices[1]["spk001"][4]), "--threshold=-100"]) == 0


def test_internal_errors_have_their_own_code_and_one_line(monkeypatch, capsys):
    import speaker_id.cli as cli

    def broken(args, out):
        return {}["missing"]  # a bug, not a user's mistake

    monkeypatch.setitem(cli.COMMANDS, "list", broken)
    monkeypatch.delenv("SPEAKER_ID_DEBUG", raising=False)
    assert main(["list", "--store", "x"]) == cli.EXIT_INTERNAL == 70
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("speaker-id: internal error: KeyError") and "report" in err and "README" in err
    monkeypatch.setenv("SPEAKER_ID_DEBUG", "1")
    assert main(["list", "--store", "x", "--json"]) == 70
    captured = capsys.readouterr()
    assert json.loads(captured.out)["exit_code"] == 70
    assert "Traceback (most recent call last)" in captured.err


def test_exit_codes_are_documented_alike_everywhere():
    import re

    import speaker_id.cli as cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = {int(c) for c in re.findall(r"(?:^|[\s(,])(\d{1,3}) (?:success|rejected|usage|bad input|store problem|"
                                             r"internal error|interrupted)", readme)}
    codes = {cli.EXIT_OK, cli.EXIT_NEGATIVE, cli.EXIT_USAGE, cli.EXIT_INPUT, cli.EXIT_STORE, cli.EXIT_INTERNAL,
             cli.EXIT_INTERRUPTED}
    assert documented == codes
    for code in codes:
        assert f"{code} " in cli.EPILOG and f"\n{code} " in cli.__doc__


def test_evaluate_checks_its_outputs_before_evaluating(tmp_path, monkeypatch, capsys):
    import speaker_id.evaluation.protocols as protocols

    def must_not_run(*args, **kwargs):
        raise AssertionError("the evaluation ran before its outputs were checked")

    monkeypatch.setattr(protocols, "evaluate", must_not_run)
    corpus = str(tmp_path)
    _expect_error(capsys, ["evaluate", "--protocol", "fsdd", corpus, "--det", str(tmp_path / "no" / "det.png")], 3,
                  "--det", "does not exist", "mkdir -p")
    _expect_error(capsys, ["evaluate", "--protocol", "fsdd", corpus, "--scores-out", str(tmp_path)], 3,
                  "--scores-out", "is a directory")
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    _expect_error(capsys, ["evaluate", "--protocol", "fsdd", corpus, "--det", str(tmp_path / "det.png")], 3,
                  "--det needs matplotlib")


def test_evaluate_seed_is_the_ubm_random_state(tmp_path, monkeypatch, capsys):
    import speaker_id.evaluation.protocols as protocols

    seen = {}

    def record(*args, **kwargs):  # then fail: the command stops here with an error
        seen.update(kwargs)
        raise ValueError("recorded")

    monkeypatch.setattr(protocols, "evaluate", record)
    for argv, seed in ((["--seed", "3"], 3), ([], 0)):
        seen.clear()
        assert main(["evaluate", "--protocol", "fsdd", str(tmp_path), *argv]) != 0
        assert seen["random_state"] == seed


# ------------------------------------------------------- how a stream ends
def test_stream_stall_prints_the_summary_then_the_error(store, voices, tmp_path, monkeypatch, capsys):
    import sys

    import threading

    first, _ = sf.read(voices[1]["spk000"][3], dtype="float32")
    read_end, write_end = os.pipe()
    # the producer writes the utterance, then nothing: the pipe stays open
    producer = threading.Thread(target=os.write, args=(write_end, np.round(first * 32767).astype("<i2").tobytes()))
    producer.start()

    class Stdin:
        buffer = os.fdopen(read_end, "rb")

    monkeypatch.setattr(sys, "stdin", Stdin())
    try:
        assert main(["stream", "--store", str(store), "-", "--json", "--threshold=-inf",
                     "--stall-timeout", "0.5"]) == 3
    finally:
        producer.join()
        os.close(write_end)
        Stdin.buffer.close()
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.strip().splitlines()]
    summary, error = lines[-2], lines[-1]
    scored = len(first) // 1600 * 1600 / SR  # whole 100 ms chunks; a partial one is still being awaited
    assert summary["end"] == "stalled" and summary["audio_seconds"] == pytest.approx(scored)
    assert summary["total"][0]["speaker"] == "spk000"
    assert error["exit_code"] == 3 and "stalled" in error["error"]
    assert captured.err.strip().splitlines()[-1].startswith("speaker-id: error: no audio on")


def test_stream_ends_cleanly_on_sigterm_with_its_summary(store, voices):
    import signal
    import subprocess
    import sys

    first, _ = sf.read(voices[1]["spk000"][3], dtype="float32")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "speaker_id.cli", "stream", "--store", str(store), "-", "--json",
         "--threshold=-inf", "--stall-timeout", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    import threading

    watchdog = threading.Timer(120, process.kill)  # a stream that never answers fails the test, not the suite
    watchdog.start()
    try:
        process.stdin.write(np.round(first * 32767).astype("<i2").tobytes())
        process.stdin.flush()
        updates = 0
        while updates < int(len(first) / (0.1 * SR)):  # every whole chunk was scored; now it waits for more
            assert json.loads(process.stdout.readline())["time"] >= 0
            updates += 1
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 0, err.decode()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["end"] == "terminated" and summary["total"][0]["speaker"] == "spk000"
    assert summary["audio_seconds"] == pytest.approx(len(first) // 1600 * 1600 / SR)


def test_train_ubm_refuses_what_the_store_would_refuse_before_training(store, voices, tmp_path, monkeypatch, capsys):
    import speaker_id.operations as operations

    def must_not_run(*args, **kwargs):
        raise AssertionError("the UBM was trained before the options and the store were checked")

    monkeypatch.setattr(operations, "train_models", must_not_run)
    background = str(voices[0] / "spk004")
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--quiet", background], 4, "--overwrite")
    (tmp_path / "file").write_text("x")
    _expect_error(capsys, ["train-ubm", "--store", str(tmp_path / "file"), "--quiet", background], 4,
                  "not a directory")
    _expect_error(capsys, ["train-ubm", "--store", str(tmp_path / "new"), "--adapt", "mean", "--quiet", background],
                  2, "--adapt 'mean'")
    assert not (tmp_path / "new").exists()
