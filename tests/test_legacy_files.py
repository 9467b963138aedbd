"""Files written by an earlier release still load: a store, a model and statistics.

``tests/data/legacy_88f9c36`` was written by main at commit 88f9c36, before
the packages were laid out by stage; its README holds the recipe. The
expected values here are recomputed from that recipe's seeds with the
current code, so a file that loads but means something else fails.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from speaker_id.frontend import FeatureConfig
from speaker_id.scoring import SpeakerScorer
from speaker_id.store import SpeakerStore
from streamgmm import OnlineGMM, SufficientStats, accumulate, load

LEGACY = Path(__file__).resolve().parent / "data" / "legacy_88f9c36"
SPEAKER_OFFSETS = {"alice": 0.5, "Bob Smith": -0.5}


def _speaker_frames(name):
    return np.random.default_rng(len(name)).normal(size=(200, 4)) + SPEAKER_OFFSETS[name]


def _ubm_frames():
    return np.random.default_rng(20261203).normal(size=(600, 4)) * [1.0, 2.0, 0.5, 1.5]


@pytest.fixture
def store(tmp_path):
    shutil.copytree(LEGACY / "store", tmp_path / "store")
    return SpeakerStore.open(tmp_path / "store")


def test_legacy_model_file_loads_with_its_parameters():
    model = load(LEGACY / "ubm_model.npz")
    assert isinstance(model, OnlineGMM)
    assert (model.n_components, model.n_features_in_, model.covariance_type) == (4, 4, "diag")
    np.testing.assert_allclose(model.weights_.sum(), 1.0, rtol=1e-12)
    # the recipe fitted these frames: the model must describe them, not noise
    assert model.score(_ubm_frames()) > model.score(np.zeros((1, 4)) + 10.0)


def test_legacy_statistics_file_equals_statistics_recomputed_now():
    stats = SufficientStats.load(LEGACY / "ubm_frames_stats.npz")
    again = accumulate(load(LEGACY / "ubm_model.npz"), _ubm_frames())
    assert stats.n_frames == 600
    np.testing.assert_allclose(stats.zeroth, again.zeroth, rtol=1e-10)
    np.testing.assert_allclose(stats.means(), again.means(), rtol=1e-10)
    np.testing.assert_allclose(stats.covariances(), again.covariances(), rtol=1e-8)


def test_legacy_store_opens_with_its_settings_and_speakers(store):
    assert store.speakers() == ["Bob Smith", "alice"]
    # written when every utterance was normalised by its own mean and variance, with no prior, and the
    # spectrum came through one Hamming window: it keeps all three
    assert store.feature_config == FeatureConfig(sr=8000, n_mfcc=4, deltas=False, cmvn=True, prior_frames=None,
                                                 window="hamming")
    assert (store.relevance_factor, store.adapt) == (8.0, ("means",))
    assert store.backend == "gmm"  # written before the i-vector back end existed
    np.testing.assert_array_equal(store.ubm.means_, load(LEGACY / "ubm_model.npz").means_)
    for name in SPEAKER_OFFSETS:
        stats = store.load_stats(name)
        again = accumulate(store.ubm, _speaker_frames(name))
        np.testing.assert_allclose(stats.zeroth, again.zeroth, rtol=1e-10)
        np.testing.assert_allclose(stats.means(), again.means(), rtol=1e-10)
        assert store.info(name)["n_utterances"] == 2


def test_legacy_store_scores_and_takes_new_enrollments(store):
    models = {name: store.speaker_model(name) for name in store.speakers()}
    scorer = SpeakerScorer(store.ubm, models, top_c=None)
    for name in SPEAKER_OFFSETS:
        scores = dict(zip(scorer.names, scorer.score(_speaker_frames(name))))
        assert max(scores, key=scores.get) == name
    extra = np.random.default_rng(7).normal(size=(50, 4)) + 0.5
    store.enroll_stats("alice", accumulate(store.ubm, extra), n_utterances=1)
    reopened = SpeakerStore.open(store.path)
    assert reopened.info("alice")["n_utterances"] == 3
    assert reopened.load_stats("alice").n_frames == 250
