"""The speaker-id command end to end on synthetic voices, and its handling of bad input."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speaker_id.cli import main
from speaker_id.demo.synth import make_corpus

SR = 16000


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """WAV files of 10 synthetic speakers, 5 utterances each: spk000..spk003 enroll, the rest train the UBM."""
    root = tmp_path_factory.mktemp("voices")
    by_speaker = {}
    for utt in make_corpus(10, 5, 2.5, sr=SR, seed=3):
        path = root / utt.speaker_id / f"{utt.utt_id}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, utt.audio, SR)
        by_speaker.setdefault(utt.speaker_id, []).append(path)
    return root, by_speaker


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
    correct = in_best_two = 0
    for name in ("spk000", "spk001", "spk002", "spk003"):
        for path in by_speaker[name][3:]:
            main(["identify", "--store", str(ivector_store), str(path), "--json"])
            result = _json(capsys)
            correct += result["speaker"] == name
            in_best_two += name in list(result["scores"])[:2]
    # 8 held-out recordings of 4 voices, a PLDA trained on only 6 other voices: well above chance,
    # which is 2 of 8 named and 4 of 8 among the best two
    assert correct >= 4 and in_best_two >= 6
    main(["verify", "--store", str(ivector_store), "spk000", str(by_speaker["spk000"][4]), "--json",
          "--threshold=-1000"])
    target = _json(capsys)["score"]
    main(["verify", "--store", str(ivector_store), "spk001", str(by_speaker["spk000"][4]), "--json",
          "--threshold=-1000"])
    assert target > _json(capsys)["score"]


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
                           "--jobs", "1", *background], 3, "lda_dim=6", "ask for 5 or fewer")
    _expect_error(capsys, ["train-ubm", "--store", str(store), "--backend", "ivector", "--jobs", "1",
                           *background[:2]], 3, "at least 3 training speakers")
    assert not store.exists()


def test_ivector_training_reads_each_file_once(voices, tmp_path, monkeypatch):
    import speaker_id.frontend.extraction as extraction

    root, _ = voices
    calls = []
    original = extraction.extract_file
    monkeypatch.setattr(extraction, "extract_file", lambda path, config=None: calls.append(path) or original(path, config))
    background = [str(root / f"spk{i:03d}") for i in range(4, 10)]  # 6 speakers x 5 files
    assert main(["train-ubm", "--store", str(tmp_path / "s"), "--components", "8", "--max-iter", "3", "--jobs", "1",
                 "--quiet", "--backend", "ivector", "--ivector-rank", "5", *background]) == 0
    assert len(calls) == 30 and len(set(calls)) == 30  # the UBM and the back end share the cached features


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
