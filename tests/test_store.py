"""Tests of speaker_id.store: round trips, atomicity, locking, refusal of damaged stores."""

import errno
import hashlib
import json
import multiprocessing
import os
import re
import unicodedata
from pathlib import Path

import filelock
import numpy as np
import pytest

import streamgmm
from speaker_id.frontend.config import FeatureConfig
from speaker_id.store.errors import (
    ForeignModelError,
    InvalidSpeakerNameError,
    InvalidStoreError,
    NotAStoreError,
    StoreExistsError,
    StoreLockedError,
    UnknownSpeakerError,
)
from speaker_id.store.manifest import ubm_fingerprint
from speaker_id.store.names import speaker_file_stem
from speaker_id.store.speaker_store import SpeakerStore
from streamgmm import OnlineGMM, SufficientStats, accumulate

CONFIG = FeatureConfig(n_mfcc=3, deltas=False)  # 3 features, like the UBMs below


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def ubm():
    X = np.random.default_rng(0).normal(size=(500, 3))
    return OnlineGMM(4, covariance_type="diag", random_state=0).fit(X)


@pytest.fixture(scope="module")
def other_ubm():
    X = np.random.default_rng(1).normal(loc=2.0, size=(500, 3))
    return OnlineGMM(4, covariance_type="diag", random_state=1).fit(X)


@pytest.fixture
def store(tmp_path, ubm):
    return SpeakerStore.create(tmp_path / "store", ubm, CONFIG)


def stats_of(model, n, seed):
    return accumulate(model, np.random.default_rng(seed).normal(size=(n, 3)))


def tree_digest(root):
    """Relative path -> SHA-256 of every file and directory under ``root`` (the lock file is not data)."""
    root = Path(root)
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".lock":
            continue
        digest[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def assert_stats_equal(a, b):
    for field in ("zeroth", "first", "second", "shift"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12, atol=1e-9)
    assert a.n_frames == pytest.approx(b.n_frames)
    assert a.log_likelihood == pytest.approx(b.log_likelihood)


# ---------------------------------------------------------------- round trip
def test_create_open_round_trip(tmp_path, ubm):
    path = tmp_path / "new" / "store"
    SpeakerStore.create(path, ubm, CONFIG, relevance_factor=8.0, adapt=("weights", "means"))
    store = SpeakerStore.open(path)
    assert store.feature_config == CONFIG
    assert store.relevance_factor == 8.0
    assert store.adapt == ("weights", "means")
    assert store.speakers() == [] and len(store) == 0
    assert store.fingerprint == ubm_fingerprint(ubm)
    np.testing.assert_array_equal(store.ubm.means_, ubm.means_)
    np.testing.assert_array_equal(store.ubm.covariances_, ubm.covariances_)
    # ubm.npz is a plain streamgmm model file
    np.testing.assert_array_equal(streamgmm.load(path / "ubm.npz").weights_, ubm.weights_)
    manifest = json.loads((path / "manifest.json").read_text("utf-8"))
    assert manifest["format_version"] == 1
    assert manifest["feature_config"] == CONFIG.to_dict()
    assert manifest["map"] == {"relevance_factor": 8.0, "adapt": ["weights", "means"]}
    assert manifest["ubm"]["fingerprint"] == ubm_fingerprint(ubm)
    assert manifest["speakers"] == [] and manifest["created"] and manifest["updated"]


def test_fingerprint_stable_across_resaves_and_distinct(tmp_path, ubm, other_ubm):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    ubm.save(first)
    streamgmm.load(first).save(second)
    assert ubm_fingerprint(first) == ubm_fingerprint(second) == ubm_fingerprint(ubm)
    assert ubm_fingerprint(other_ubm) != ubm_fingerprint(ubm)


def test_manifest_records_speakers(store, ubm):
    store.enroll_stats("alice", stats_of(ubm, 120, 1), n_utterances=2)
    entry = json.loads((store.path / "manifest.json").read_text("utf-8"))["speakers"][0]
    assert entry["name"] == "alice"
    assert entry["n_frames"] == 120.0 and entry["n_utterances"] == 2
    assert entry["ubm_fingerprint"] == ubm_fingerprint(ubm) and entry["updated"]
    assert (store.path / "speakers" / entry["file"]).is_file()
    assert store.info("alice") == dict(entry)


# -------------------------------------------------------------------- names
AWKWARD = [
    "a/b",
    "../../etc/passwd",
    "..",
    ".",
    "a\\b",
    "Zoë Ångström",
    "名前",
    "  spaced  name ",
    "CON",
    "Alice",
    "alice",
    "🎤 singer",
    "x" * 300,
]


def test_awkward_names_round_trip_inside_speakers_dir(store, ubm):
    for i, name in enumerate(AWKWARD):
        store.enroll_stats(name, stats_of(ubm, 10 + i, i))
    reopened = SpeakerStore.open(store.path)
    assert reopened.speakers() == sorted(AWKWARD)
    speakers_dir = (store.path / "speakers").resolve()
    files = set()
    for i, name in enumerate(AWKWARD):
        assert reopened.load_stats(name).n_frames == 10 + i
        file = reopened.info(name)["file"]
        assert (speakers_dir / file).resolve().parent == speakers_dir
        assert "/" not in file and "\\" not in file and not file.startswith(".")
        files.add(file.lower())
    assert len(files) == len(AWKWARD)  # distinct even on a case-insensitive file system
    everything = sorted(p.relative_to(store.path).as_posix() for p in store.path.rglob("*"))
    assert everything == sorted(
        [".lock", "manifest.json", "ubm.npz", "speakers"] + [f"speakers/{f}" for f in
                                                              (reopened.info(n)["file"] for n in AWKWARD)]
    )


def test_unicode_normal_forms_name_the_same_speaker(store, ubm):
    store.enroll_stats("Zoë", stats_of(ubm, 30, 0))
    decomposed = unicodedata.normalize("NFD", "Zoë")
    assert decomposed in store
    assert store.load_stats(decomposed).n_frames == 30


def test_file_stems_are_safe_and_distinct():
    stems = {speaker_file_stem(n) for n in AWKWARD}
    assert len(stems) == len(AWKWARD)
    assert all(s.isascii() and s == s.lower() and "/" not in s and not s.startswith(".") for s in stems)


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "nul\x00", "tab\there", "\x7f", "line\u2028sep"])
def test_invalid_names_refused(store, ubm, name):
    before = tree_digest(store.path)
    with pytest.raises(InvalidSpeakerNameError):
        store.enroll_stats(name, stats_of(ubm, 10, 0))
    assert name not in store
    assert tree_digest(store.path) == before


# --------------------------------------------------------- enroll and remove
def test_adding_twice_equals_the_sum(store, ubm):
    a, b = stats_of(ubm, 200, 1), stats_of(ubm, 150, 2)
    store.enroll_stats("bob", a, n_utterances=1)
    info = store.enroll_stats("bob", b, n_utterances=3)
    assert info["n_frames"] == 350.0 and info["n_utterances"] == 4
    assert_stats_equal(SpeakerStore.open(store.path).load_stats("bob"), a + b)


def test_replace_discards_earlier_stats(store, ubm):
    store.enroll_stats("bob", stats_of(ubm, 200, 1), n_utterances=5)
    c = stats_of(ubm, 80, 3)
    info = store.enroll_stats("bob", c, n_utterances=1, mode="replace")
    assert info["n_utterances"] == 1
    assert_stats_equal(store.load_stats("bob"), c)
    assert len(os.listdir(store.path / "speakers")) == 1  # the previous file is gone


def test_remove(store, ubm):
    store.enroll_stats("carol", stats_of(ubm, 50, 1))
    store.enroll_stats("dave", stats_of(ubm, 60, 2))
    carol_file = store.path / "speakers" / store.info("carol")["file"]
    store.remove("carol")
    assert "carol" not in store and not carol_file.exists()
    assert SpeakerStore.open(store.path).speakers() == ["dave"]
    assert store.load_stats("dave").n_frames == 60
    with pytest.raises(UnknownSpeakerError):
        store.remove("carol")


def test_unknown_speaker_error_lists_close_names(store, ubm):
    for name in ("alice", "alicia", "bob"):
        store.enroll_stats(name, stats_of(ubm, 20, 0))
    with pytest.raises(UnknownSpeakerError) as caught:
        store.load_stats("Alica")
    message = str(caught.value)
    assert isinstance(caught.value, KeyError)
    assert "'Alica'" in message and "'alice'" in message and "'alicia'" in message and "bob" not in message
    assert not message.startswith('"')  # not KeyError's repr of the message
    assert caught.value.close_matches == ["alicia", "alice"]
    with pytest.raises(UnknownSpeakerError, match="enrolled speakers: 'alice', 'alicia', 'bob'"):
        store.info("zzzzzz")


def test_enroll_refuses_stats_of_another_shape_or_ubm(store, ubm):
    X = np.random.default_rng(0).normal(size=(300, 3))
    three = OnlineGMM(3, covariance_type="diag", random_state=0).fit(X)
    before = tree_digest(store.path)
    with pytest.raises(ForeignModelError, match="another UBM"):
        store.enroll_stats("eve", accumulate(three, X))
    with pytest.raises(ForeignModelError):
        store.enroll_stats("eve", stats_of(ubm, 10, 0), ubm_fingerprint="0" * 64)
    bad = stats_of(ubm, 10, 0)
    bad.first[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        store.enroll_stats("eve", bad)
    with pytest.raises(ValueError, match="no frames"):
        store.enroll_stats("eve", SufficientStats.zeros(4, 3))
    assert "eve" not in store and tree_digest(store.path) == before


# ------------------------------------------------------------ create refusals
def test_create_refuses_existing_store(tmp_path, ubm, other_ubm, store):
    before = tree_digest(store.path)
    with pytest.raises(StoreExistsError, match="already a speaker store"):
        SpeakerStore.create(store.path, other_ubm, CONFIG)
    store.enroll_stats("frank", stats_of(ubm, 40, 0))
    before = tree_digest(store.path)
    with pytest.raises(StoreExistsError, match="enrolled against its current UBM and must be re-enrolled"):
        SpeakerStore.create(store.path, other_ubm, CONFIG)
    assert tree_digest(store.path) == before
    replaced = SpeakerStore.create(store.path, other_ubm, CONFIG, overwrite=True)
    assert replaced.speakers() == [] and replaced.fingerprint == ubm_fingerprint(other_ubm)
    assert os.listdir(store.path / "speakers") == []


def test_create_refuses_foreign_directory_and_file(tmp_path, ubm):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(StoreExistsError, match="not a speaker store"):
        SpeakerStore.create(busy, ubm, CONFIG)
    assert sorted(os.listdir(busy)) in (["notes.txt"], [".lock", "notes.txt"])
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotAStoreError, match="not a directory"):
        SpeakerStore.create(a_file, ubm, CONFIG)


def test_create_refuses_feature_config_of_another_size(tmp_path, ubm):
    with pytest.raises(ValueError, match="3 features per frame"):
        SpeakerStore.create(tmp_path / "s", ubm, FeatureConfig())  # 60 features


# ------------------------------------------------------- damaged stores
def test_open_refuses_non_stores(tmp_path):
    with pytest.raises(NotAStoreError, match="not a speaker store.*train-ubm --store"):
        SpeakerStore.open(tmp_path)
    with pytest.raises(NotAStoreError, match="does not exist"):
        SpeakerStore.open(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotAStoreError, match="not a directory"):
        SpeakerStore.open(tmp_path / "f")


def test_corrupt_manifest_refused_unchanged(store, ubm):
    store.enroll_stats("gina", stats_of(ubm, 40, 0))
    manifest = store.path / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:-40])
    before = tree_digest(store.path)
    with pytest.raises(InvalidStoreError, match="manifest.*not valid JSON"):
        SpeakerStore.open(store.path)
    with pytest.raises(InvalidStoreError, match="not valid JSON"):
        store.speakers()
    with pytest.raises(InvalidStoreError, match="not valid JSON"):
        store.enroll_stats("gina", stats_of(ubm, 10, 1))
    assert tree_digest(store.path) == before


def test_unknown_format_version_refused_unchanged(store):
    manifest = store.path / "manifest.json"
    document = json.loads(manifest.read_text("utf-8"))
    document["format_version"] = 99
    manifest.write_text(json.dumps(document), "utf-8")
    before = tree_digest(store.path)
    with pytest.raises(InvalidStoreError, match="format version 99.*reads version 1"):
        SpeakerStore.open(store.path)
    assert tree_digest(store.path) == before


def test_truncated_speaker_file_refused_unchanged(store, ubm):
    store.enroll_stats("hank", stats_of(ubm, 40, 0))
    path = store.path / "speakers" / store.info("hank")["file"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = tree_digest(store.path)
    with pytest.raises(InvalidStoreError, match="'hank'.*truncated.*re-enroll"):
        SpeakerStore.open(store.path).load_stats("hank")
    with pytest.raises(InvalidStoreError, match="truncated"):
        store.enroll_stats("hank", stats_of(ubm, 10, 1))  # adding to unreadable stats
    assert tree_digest(store.path) == before
    # re-enrolling with mode="replace" repairs it
    store.enroll_stats("hank", stats_of(ubm, 10, 1), mode="replace")
    assert store.load_stats("hank").n_frames == 10


def test_foreign_npz_refused_unchanged(store, ubm, other_ubm, tmp_path):
    store.enroll_stats("ivy", stats_of(ubm, 40, 0))
    store.enroll_stats("jack", stats_of(ubm, 40, 1))
    # statistics of the same shape from another store (another UBM)
    elsewhere = SpeakerStore.create(tmp_path / "elsewhere", other_ubm, CONFIG)
    elsewhere.enroll_stats("ivy", stats_of(other_ubm, 40, 0))
    ivy = store.path / "speakers" / store.info("ivy")["file"]
    ivy.write_bytes((elsewhere.path / "speakers" / elsewhere.info("ivy")["file"]).read_bytes())
    # a plain SufficientStats file of another number of components
    X = np.random.default_rng(0).normal(size=(300, 3))
    three = OnlineGMM(3, covariance_type="diag", random_state=0).fit(X)
    jack = store.path / "speakers" / store.info("jack")["file"]
    accumulate(three, X).save(jack)
    before = tree_digest(store.path)
    with pytest.raises(ForeignModelError, match="belongs to another UBM and must be re-enrolled"):
        store.load_stats("ivy")
    with pytest.raises(ForeignModelError, match="another UBM"):
        store.load_stats("jack")
    assert tree_digest(store.path) == before


def test_model_file_or_pickle_in_place_of_speaker_file_refused(store, ubm):
    store.enroll_stats("kim", stats_of(ubm, 40, 0))
    store.enroll_stats("lee", stats_of(ubm, 40, 1))
    ubm.save(store.path / "speakers" / store.info("kim")["file"])
    with open(store.path / "speakers" / store.info("lee")["file"], "wb") as handle:
        np.savez(handle, zeroth=np.array([{"evil": 1}], dtype=object))
    before = tree_digest(store.path)
    with pytest.raises(InvalidStoreError, match="'kim'.*OnlineGMM"):
        store.load_stats("kim")
    with pytest.raises(InvalidStoreError, match="'lee'.*pickle"):
        store.load_stats("lee")
    assert tree_digest(store.path) == before


def test_replaced_ubm_refused_unchanged(store, ubm, other_ubm):
    store.enroll_stats("mia", stats_of(ubm, 40, 0))
    opened_before = SpeakerStore.open(store.path)
    other_ubm.save(store.path / "ubm.npz")
    before = tree_digest(store.path)
    with pytest.raises(InvalidStoreError, match="replaced behind the store's back"):
        SpeakerStore.open(store.path)
    with pytest.raises(InvalidStoreError, match="replaced behind the store's back"):
        opened_before.ubm
    with pytest.raises(InvalidStoreError, match="replaced"):
        store.enroll_stats("mia", stats_of(ubm, 10, 1))
    assert tree_digest(store.path) == before


def test_missing_ubm_refused(store):
    (store.path / "ubm.npz").unlink()
    with pytest.raises(InvalidStoreError, match="no UBM file"):
        SpeakerStore.open(store.path)


def test_speaker_of_another_ubm_in_manifest_must_be_re_enrolled(store, ubm):
    store.enroll_stats("ned", stats_of(ubm, 40, 0))
    manifest = store.path / "manifest.json"
    document = json.loads(manifest.read_text("utf-8"))
    document["speakers"][0]["ubm_fingerprint"] = "ab" * 32
    manifest.write_text(json.dumps(document), "utf-8")
    with pytest.raises(ForeignModelError, match="re-enrolled"):
        store.load_stats("ned")
    store.enroll_stats("ned", stats_of(ubm, 25, 1), mode="replace")
    assert store.load_stats("ned").n_frames == 25


# ------------------------------------------------------------------- crashes
def test_crash_before_manifest_commit_keeps_old_state(store, ubm, monkeypatch):
    old = stats_of(ubm, 100, 0)
    store.enroll_stats("olga", old, n_utterances=1)
    before = tree_digest(store.path)
    real_replace = os.replace

    def crash_on_manifest(src, dst, *args, **kwargs):
        if Path(dst).name == "manifest.json":
            raise OSError("simulated crash")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="simulated crash"):
        store.enroll_stats("olga", stats_of(ubm, 50, 1))  # add to an existing speaker
    with pytest.raises(OSError, match="simulated crash"):
        store.enroll_stats("pete", stats_of(ubm, 50, 2))  # a new speaker
    monkeypatch.setattr(os, "replace", real_replace)

    after_crash = tree_digest(store.path)
    orphans = set(after_crash) - set(before)
    assert len(orphans) == 2 and all(o.startswith("speakers/") for o in orphans)
    assert {k: v for k, v in after_crash.items() if k not in orphans} == before  # nothing referenced changed
    reopened = SpeakerStore.open(store.path)
    assert reopened.speakers() == ["olga"]
    assert reopened.info("olga")["n_utterances"] == 1
    assert_stats_equal(reopened.load_stats("olga"), old)
    # the next write cleans the orphans up
    reopened.enroll_stats("pete", stats_of(ubm, 50, 2))
    listed = {reopened.info(n)["file"] for n in reopened.speakers()}
    assert set(os.listdir(store.path / "speakers")) == listed


# ------------------------------------------------------------- concurrency
def _enroll_many(store_path, stats_path, prefix, count, barrier):
    stats = SufficientStats.load(stats_path)
    store = SpeakerStore.open(store_path, lock_timeout=60)
    barrier.wait()
    for i in range(count):
        store.enroll_stats(f"{prefix} speaker {i}", stats, n_utterances=1)
        store.enroll_stats("shared", stats, n_utterances=1)


def test_two_processes_enrolling_concurrently_lose_nothing(store, ubm, tmp_path):
    stats = stats_of(ubm, 30, 0)
    stats_path = tmp_path / "stats.npz"
    stats.save(stats_path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_enroll_many, args=(str(store.path), str(stats_path), prefix, 20, barrier))
        for prefix in ("left", "right")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    expected = sorted([f"{p} speaker {i}" for p in ("left", "right") for i in range(20)] + ["shared"])
    assert store.speakers() == expected  # this object sees the other processes' commits
    reopened = SpeakerStore.open(store.path)
    assert reopened.speakers() == expected
    assert reopened.info("shared")["n_utterances"] == 40
    assert_stats_equal(reopened.load_stats("shared"), stats * 40)
    assert reopened.load_stats("left speaker 7").n_frames == 30
    assert len(os.listdir(store.path / "speakers")) == 41


def test_lock_timeout_raises_clear_error(store, ubm):
    slow = SpeakerStore.open(store.path, lock_timeout=0.2)
    before = tree_digest(store.path)
    holder = filelock.FileLock(str(store.path / ".lock"))
    with holder:
        with pytest.raises(StoreLockedError, match="locked by another process.*0.2 s") as caught:
            slow.enroll_stats("quinn", stats_of(ubm, 10, 0))
        assert isinstance(caught.value, TimeoutError)
        assert slow.speakers() == []  # reading takes no lock
    assert tree_digest(store.path) == before
    slow.enroll_stats("quinn", stats_of(ubm, 10, 0))
    assert "quinn" in store


# ------------------------------------------------- names the user typed wrong
@pytest.mark.parametrize("name, needle", [
    ("", "is empty"),
    ("  \t ", "is blank"),
    ("bell\x07", "control character U+0007"),
    ("line\u2028sep", "line separator U+2028"),
    ("para\u2029sep", "paragraph separator U+2029"),
    ("caf\udce9", "not UTF-8"),
])
def test_invalid_names_say_what_is_wrong(store, ubm, name, needle):
    with pytest.raises(InvalidSpeakerNameError, match=re.escape(needle)) as caught:
        store.enroll_stats(name, stats_of(ubm, 10, 0))
    assert not isinstance(caught.value, OSError)
    assert len(str(caught.value).splitlines()) == 1


# ---------------------------------------------- one definition of file names
def test_every_file_name_the_writer_makes_is_one_the_reader_accepts():
    from speaker_id.store.manifest import MAX_GENERATION, is_speaker_file_name, speaker_file_name

    for name in AWKWARD + ["x" * 500]:
        for chars in (12, 64):
            stem = speaker_file_stem(name, chars)
            for generation in (0, 1, 10**17, MAX_GENERATION):
                assert is_speaker_file_name(speaker_file_name(stem, generation))
    with pytest.raises(InvalidStoreError, match="write counter"):
        speaker_file_name(speaker_file_stem("a"), MAX_GENERATION + 1)


def _edit_manifest(store, edit):
    path = store.path / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    edit(document)
    path.write_text(json.dumps(document), "utf-8")


def test_a_store_near_the_largest_write_counter_stays_readable(store, ubm):
    from speaker_id.store.manifest import MAX_GENERATION

    store.enroll_stats("ruth", stats_of(ubm, 20, 0))
    _edit_manifest(store, lambda d: d.update(generation=MAX_GENERATION - 1))
    store.enroll_stats("ruth", stats_of(ubm, 20, 1))  # the last write there is
    reopened = SpeakerStore.open(store.path)
    assert reopened.load_stats("ruth").n_frames == 40
    before = tree_digest(store.path)
    with pytest.raises(InvalidStoreError, match="write counter would reach"):
        reopened.enroll_stats("ruth", stats_of(ubm, 20, 2))
    assert tree_digest(store.path) == before
    # rebuilding the store starts the counter again
    rebuilt = SpeakerStore.create(store.path, ubm, CONFIG, overwrite=True)
    rebuilt.enroll_stats("ruth", stats_of(ubm, 20, 0))
    assert SpeakerStore.open(store.path).load_stats("ruth").n_frames == 20


def test_a_write_counter_beyond_the_largest_is_refused(store):
    _edit_manifest(store, lambda d: d.update(generation=10**18))
    with pytest.raises(InvalidStoreError, match="write counter"):
        SpeakerStore.open(store.path)


# ------------------------------------------ what the manifest and files both say
def _rewrite_speaker_file(store, name, **changes):
    path = store.path / "speakers" / store.info(name)["file"]
    arrays = dict(np.load(path))
    arrays.update(changes)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_zeroed_counts_are_refused_not_scored(store, ubm):
    store.enroll_stats("sam", stats_of(ubm, 716, 0))
    _rewrite_speaker_file(store, "sam", zeroth=np.zeros(4))
    with pytest.raises(InvalidStoreError, match="soft counts summing to 0 for 716 frames.*speaker-id enroll --replace"):
        store.load_stats("sam")
    with pytest.raises(InvalidStoreError):
        store.speaker_model("sam")


def test_frame_count_of_the_manifest_must_match_the_file(store, ubm):
    store.enroll_stats("tina", stats_of(ubm, 50, 0))

    def alter(document):
        document["speakers"][0]["n_frames"] = 716.0

    _edit_manifest(store, alter)
    with pytest.raises(InvalidStoreError, match="holds 50 frames but the manifest records 716.*speaker-id remove"):
        SpeakerStore.open(store.path).load_stats("tina")


def test_a_speaker_without_statistics_is_never_scored(store, ubm):
    store.enroll_stats("ugo", stats_of(ubm, 50, 0))
    empty = SufficientStats.zeros(4, 3)
    _rewrite_speaker_file(store, "ugo", zeroth=empty.zeroth, first=empty.first, second=empty.second,
                          n_frames=np.array(0.0))
    _edit_manifest(store, lambda d: d["speakers"][0].update(n_frames=0.0))
    with pytest.raises(InvalidStoreError, match="holds no frames"):
        SpeakerStore.open(store.path).speaker_model("ugo")


def test_a_speaker_of_no_utterances_is_refused(store, ubm):
    store.enroll_stats("vera", stats_of(ubm, 50, 0))
    _edit_manifest(store, lambda d: d["speakers"][0].update(n_utterances=0))
    with pytest.raises(InvalidStoreError, match="no utterance"):
        SpeakerStore.open(store.path).load_stats("vera")


def test_enroll_refuses_counts_that_do_not_add_up(store, ubm):
    before = tree_digest(store.path)
    stats = stats_of(ubm, 30, 0)
    stats.zeroth = stats.zeroth * 2  # 60 soft counts for 30 frames
    with pytest.raises(ValueError, match="soft counts summing to 60 for 30 frames"):
        store.enroll_stats("walt", stats)
    assert tree_digest(store.path) == before


def test_manifest_describing_another_ubm_shape_is_refused(store):
    _edit_manifest(store, lambda d: d["ubm"].update(n_components=5))
    with pytest.raises(InvalidStoreError, match="records a UBM with n_components 5 but ubm.npz has n_components 4"):
        SpeakerStore.open(store.path)


@pytest.mark.parametrize("text, needle", [
    (b'{"kind": ' + b"[" * 100_000, "nested too deeply"),
    (b'{"format_version": ' + b"9" * 5000 + b"}", "thousands of digits"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_hostile_manifest_bytes_are_refused_in_a_short_line(store, text, needle):
    (store.path / "manifest.json").write_bytes(text)
    with pytest.raises(InvalidStoreError, match=needle) as caught:
        SpeakerStore.open(store.path)
    assert len(str(caught.value)) < 600 and "\n" not in str(caught.value)


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["map"].update(relevance_factor=10**400), "relevance_factor"),
    (lambda d: d.update(generation=10**400), "an integer of 401 digits"),
    (lambda d: d["feature_config"].update(sr=10**12), "sr is 1e\\+12 Hz"),
    (lambda d: d["feature_config"].update(n_fft=2**40), "FFT points"),
    (lambda d: d["feature_config"].update(delta_width=10**9 + 1), "delta_width must be at most"),
    (lambda d: d.update(created=["x"] * 10), "created or updated"),
    (lambda d: d.update(backend="x" * 10**5), "backend is 'xxx"),
])
def test_hostile_manifest_values_are_refused_in_a_short_line(store, edit, needle):
    _edit_manifest(store, edit)
    with pytest.raises(InvalidStoreError, match=needle) as caught:
        SpeakerStore.open(store.path)
    assert len(str(caught.value)) < 800 and "\n" not in str(caught.value)


# ---------------------------------------------- the system refuses to read or write
def _refuse_opens(monkeypatch, root, code, *, writes=True, name=None):
    """Make ``os.open`` fail with ``code`` for files under ``root`` (opened for writing, or named ``name``)."""
    real_open = os.open
    root = str(root)

    def fake_open(path, flags, *args, **kwargs):
        text = os.fsdecode(path)
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if text.startswith(root) and ((writes and writing) or (name is not None and os.path.basename(text) == name)):
            raise OSError(code, os.strerror(code), text)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.parametrize("code, needle", [
    (errno.EROFS, "read-only.*nothing was changed.*copy the store"),
    (errno.EACCES, "permission denied.*nothing was changed.*chmod -R u\\+rwX"),
])
def test_a_store_that_cannot_be_written_is_named_with_the_fix(store, ubm, monkeypatch, code, needle):
    from speaker_id.store import StoreAccessError

    store.enroll_stats("xena", stats_of(ubm, 20, 0))
    before = tree_digest(store.path)
    _refuse_opens(monkeypatch, store.path, code)
    for write in (lambda: store.enroll_stats("yann", stats_of(ubm, 20, 1)), lambda: store.remove("xena")):
        with pytest.raises(StoreAccessError, match=needle) as caught:
            write()
        assert isinstance(caught.value, OSError) and "[Errno" not in str(caught.value)
    monkeypatch.undo()
    assert tree_digest(store.path) == before
    assert store.speakers() == ["xena"]


def test_a_full_disk_leaves_the_store_as_it_was(store, ubm, monkeypatch):
    from speaker_id.store import StoreAccessError

    store.enroll_stats("zack", stats_of(ubm, 20, 0))
    before = tree_digest(store.path)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreAccessError, match="no space left on the device.*free some space"):
        store.enroll_stats("zack", stats_of(ubm, 20, 1))
    monkeypatch.undo()
    assert tree_digest(store.path) == before  # no temporary file left either
    assert store.load_stats("zack").n_frames == 20


def test_lock_file_that_is_a_directory_is_named(store, ubm):
    from speaker_id.store import StoreAccessError

    lock = store.path / ".lock"
    if lock.exists():
        lock.unlink()
    lock.mkdir()
    with pytest.raises(StoreAccessError, match=r"\.lock: is a directory.*rmdir"):
        store.enroll_stats("abe", stats_of(ubm, 20, 0))
    assert "abe" not in store


def test_missing_speakers_directory_is_named(store, ubm):
    store.enroll_stats("bea", stats_of(ubm, 20, 0))
    (store.path / "speakers").rename(store.path / "elsewhere")
    with pytest.raises(InvalidStoreError, match="no speakers/ directory.*mkdir"):
        store.enroll_stats("cid", stats_of(ubm, 20, 0))
    with pytest.raises(InvalidStoreError, match="no speakers/ directory"):
        store.load_stats("bea")


@pytest.mark.parametrize("name", ["manifest.json", "ubm.npz"])
def test_unreadable_store_files_say_permission_denied(store, ubm, monkeypatch, name):
    from speaker_id.store import StoreAccessError

    _refuse_opens(monkeypatch, store.path, errno.EACCES, writes=False, name=name)
    with pytest.raises(StoreAccessError, match=f"{name}: permission denied.*chmod -R u\\+rX") as caught:
        SpeakerStore.open(store.path)
    assert "zip" not in str(caught.value)


def test_unreadable_speaker_file_says_permission_denied(store, ubm, monkeypatch):
    from speaker_id.store import StoreAccessError

    store.enroll_stats("dov", stats_of(ubm, 20, 0))
    _refuse_opens(monkeypatch, store.path, errno.EACCES, writes=False, name=store.info("dov")["file"])
    with pytest.raises(StoreAccessError, match="permission denied"):
        store.load_stats("dov")


@pytest.mark.parametrize("name", ["manifest.json", "ubm.npz", "speaker"])
def test_fifo_in_place_of_a_store_file_is_refused_at_once(store, ubm, name):
    import signal

    store.enroll_stats("eli", stats_of(ubm, 20, 0))
    target = store.path / ("speakers/" + store.info("eli")["file"] if name == "speaker" else name)
    target.unlink()
    os.mkfifo(target)
    signal.alarm(20)  # a read that blocks on the FIFO fails the test instead of hanging it
    try:
        with pytest.raises(InvalidStoreError, match="FIFO|not a file|missing"):
            SpeakerStore.open(store.path).load_stats("eli")
    finally:
        signal.alarm(0)


@pytest.mark.parametrize("field, value", [
    ("zeroth", np.array(["a"] * 4)),
    ("first", np.zeros((4, 3), dtype=complex)),
    ("n_frames", np.ones(3)),
    ("zeroth", np.ones(4, dtype=bool)),
    ("zeroth", np.zeros(4, dtype=[("a", "f8")])),
    ("log_likelihood", np.array("x")),
])
def test_hostile_fields_of_a_speaker_file_are_store_errors(store, ubm, field, value):
    store.enroll_stats("fay", stats_of(ubm, 20, 0))
    _rewrite_speaker_file(store, "fay", **{field: value})
    with pytest.raises(InvalidStoreError, match=f"'fay'.*{field}.*re-enroll"):
        store.load_stats("fay")
