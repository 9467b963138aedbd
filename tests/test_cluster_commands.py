"""``--workers`` and ``--scheduler``: training and evaluation on a Dask cluster give what one process gives.

The reference is always the same command or call without a cluster, on
the same files with the same seed.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import numpy as np
import pytest

from conftest import write_voices
from speaker_id.cli import main

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed (pip install '.[dask]')")

SR = 16000


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """WAV files of 8 synthetic speakers, 4 utterances each."""
    root = tmp_path_factory.mktemp("voices")
    return root, write_voices(root, 8, 4, 2.0, sr=SR, seed=11)


def _ubm_arrays(store):
    with np.load(store / "ubm.npz", allow_pickle=False) as f:
        return {name: f[name] for name in ("weights", "means", "covariances") if name in f.files}


def _train(store, background, *more):
    return main(["train-ubm", "--store", str(store), "--components", "8", "--max-iter", "8", "--jobs", "1",
                 "--quiet", *more, *background])


def test_train_ubm_on_two_workers_writes_the_ubm_of_one_process(voices, tmp_path, client):
    root, _ = voices
    background = [str(root / f"spk{i:03d}") for i in range(8)]
    assert _train(tmp_path / "one", background) == 0
    assert _train(tmp_path / "two", background, "--workers", "2") == 0
    assert _train(tmp_path / "joined", background, "--scheduler", client.scheduler.address) == 0
    one = _ubm_arrays(tmp_path / "one")
    assert "means" in one
    for other in ("two", "joined"):
        arrays = _ubm_arrays(tmp_path / other)
        assert set(arrays) == set(one)
        for name in one:
            np.testing.assert_allclose(arrays[name], one[name], rtol=1e-9, atol=0, err_msg=f"{other}: {name}")


def test_ivector_back_end_trains_on_the_cluster_as_in_one_process(voices, tmp_path):
    from speaker_id.store import SpeakerStore

    root, _ = voices
    background = [str(root / f"spk{i:03d}") for i in range(8)]
    options = ["--backend", "ivector", "--ivector-rank", "6", "--lda-dim", "4"]
    assert _train(tmp_path / "one", background, *options) == 0
    assert _train(tmp_path / "two", background, *options, "--workers", "2") == 0
    one, two = (SpeakerStore.open(tmp_path / name).ivector_backend for name in ("one", "two"))
    # the extractor's EM sums the same statistics in another order: equal to rounding
    np.testing.assert_allclose(two.extractor_.T_, one.extractor_.T_, rtol=1e-6, atol=1e-9)
    from streamgmm import accumulate
    from speaker_id.frontend import FeatureConfig, extract_file

    X = extract_file(voices[1]["spk000"][0], FeatureConfig(sr=SR))
    stats = [accumulate(SpeakerStore.open(tmp_path / "one").ubm, X)]
    np.testing.assert_allclose(two.vectors(stats), one.vectors(stats), rtol=1e-5, atol=1e-8)


def _kaldi_corpus(root, by_speaker, directory):
    """train/: speakers 0-3; test/: speakers 4-7 (the first half of each enrolls)."""
    for part, speakers in (("train", range(4)), ("test", range(4, 8))):
        d = directory / part
        d.mkdir(parents=True)
        rows = sorted((p.stem, str(p), f"spk{i:03d}") for i in speakers for p in by_speaker[f"spk{i:03d}"])
        (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
        (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, _, s in rows))
    return directory


@pytest.mark.parametrize("backend", ["gmm", "ivector"])
def test_evaluate_on_the_cluster_gives_the_scores_of_one_process(voices, tmp_path, client, backend):
    from speaker_id.evaluation.protocols import evaluate

    root, by_speaker = voices
    corpus = _kaldi_corpus(root, by_speaker, tmp_path / "corpus")
    options = dict(n_components=8, max_iter=8, norm="snorm", backend=backend,
                   ivector_options={"rank": 4, "lda_dim": 2} if backend == "ivector" else None)
    one = evaluate("kaldi", corpus, n_jobs=1, **options)
    two = evaluate("kaldi", corpus, client=client, **options)
    assert [t[:2] for t in two.trials] == [t[:2] for t in one.trials] and len(one.trials) == 4 * 8
    np.testing.assert_allclose([t[2] for t in two.trials], [t[2] for t in one.trials], rtol=1e-6, atol=1e-8)
    assert two.raw_eer == one.raw_eer and two.accuracy == one.accuracy
    for name in ("means_", "weights_", "covariances_"):
        np.testing.assert_allclose(getattr(two.ubm, name), getattr(one.ubm, name), rtol=1e-9, atol=0)


def _expect(capsys, argv, code, *needles):
    started = time.monotonic()
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return time.monotonic() - started


def test_a_scheduler_that_does_not_answer_is_an_error_within_the_timeout(voices, tmp_path, capsys):
    root, _ = voices
    # a port that accepts connections and never speaks: the handshake can only time out
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        seconds = _expect(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", "--scheduler", address,
                                   "--connect-timeout", "2", str(root / "spk000")], 5, "could not reach", address)
        assert seconds < 30
    finally:
        stop.set()
        thread.join()
        server.close()
    assert not (tmp_path / "s").exists()  # nothing written


def test_a_refused_scheduler_is_exit_code_5(voices, tmp_path, capsys):
    root, _ = voices
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    _expect(capsys, ["evaluate", "--protocol", "kaldi", str(tmp_path), "--scheduler", f"tcp://127.0.0.1:{port}",
                     "--connect-timeout", "2"], 5, "could not reach")


def test_without_dask_workers_name_the_extra(voices, tmp_path, capsys, monkeypatch):
    root, _ = voices
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    _expect(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", "--workers", "2", str(root / "spk000")],
            5, "pip install 'streamgmm[dask]'")
    assert not (tmp_path / "s").exists()


def test_cluster_options_are_checked_before_any_work(voices, tmp_path, capsys):
    root, _ = voices
    _expect(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", "--workers", "2",
                     "--learning-method", "online", str(root / "spk000")], 2, "--learning-method batch")
    with pytest.raises(SystemExit) as exit_info:
        main(["train-ubm", "--store", str(tmp_path / "s"), "--workers", "0", str(root / "spk000")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["train-ubm", "--store", str(tmp_path / "s"), "--workers", "2", "--scheduler", "tcp://x:1",
              str(root / "spk000")])
    assert exit_info.value.code == 2
    capsys.readouterr()
    assert not (tmp_path / "s").exists()


def test_a_bad_file_on_the_workers_is_one_line_and_no_store(voices, tmp_path, capsys):
    root, by_speaker = voices
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    _expect(capsys, ["train-ubm", "--store", str(tmp_path / "s"), "--quiet", "--components", "4", "--workers", "2",
                     *map(str, by_speaker["spk000"]), str(broken)], 3, "broken.wav", "cannot decode audio")
    assert not (tmp_path / "s").exists()


def test_feature_maps_on_the_cluster_equal_those_of_one_process(voices, client):
    """map, map_batches and sum_by_key of features kept on the workers give what a FeatureTable gives."""
    from speaker_id.evaluation.trials import FeatureTable
    from speaker_id.frontend import FeatureConfig, extract_files
    from speaker_id.frontend.cluster import ClusterFeatures, FeatureSets

    _, by_speaker = voices
    paths = [str(p) for name in sorted(by_speaker) for p in by_speaker[name]]
    config = FeatureConfig(sr=SR)
    table = FeatureTable(dict(zip(paths, extract_files(paths, config, n_jobs=1))))
    half = len(paths) // 2
    kept = FeatureSets(ClusterFeatures(client, paths[:half], config), ClusterFeatures(client, paths[half:], config))
    order = paths[::-1]  # not the groups' order
    keys = [k % 3 for k in range(len(order))]  # every key spans groups and both sets
    # float32 features from another process may differ in the last bits (BLAS threads), never by a file
    try:
        np.testing.assert_allclose(kept.map(np.mean, order), table.map(np.mean, order), rtol=1e-4, atol=1e-5)
        for ours, theirs in zip(kept.map_batches(list, order), table.map_batches(list, order), strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
        counts = kept.sum_by_key(len, order, keys)  # len is additive over a key's utterances
        assert counts == table.sum_by_key(len, order, keys) == {0: 11, 1: 11, 2: 10}
        assert list(counts) == [0, 1, 2]  # the keys' first order
    finally:
        kept.close()
