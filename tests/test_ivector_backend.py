"""The i-vector back end as one model: training, additive enrollment, scores, files, errors."""

from pathlib import Path

import numpy as np
import pytest

from speaker_id.evaluation.corpora import Utterance
from speaker_id.evaluation.metrics import eer
from speaker_id.models.ivector_backend import IvectorBackend, training_sessions
from streamgmm import OnlineGMM, accumulate

N_SPEAKERS, N_SESSIONS, D = 12, 6, 4


@pytest.fixture(scope="module")
def corpus():
    """Speakers whose frames sit around their own centre, with a session offset per utterance."""
    rng = np.random.default_rng(0)
    ubm = OnlineGMM(8, covariance_type="diag", random_state=0).fit(rng.normal(size=(6000, D)) * 1.5)
    centres = rng.normal(size=(N_SPEAKERS, D))
    frames = [[rng.normal(centres[s] + 0.15 * rng.normal(size=D), 1.0, size=(80, D)) for _ in range(N_SESSIONS)]
              for s in range(N_SPEAKERS)]
    return ubm, frames


def _stats(ubm, arrays):
    return [accumulate(ubm, X) for X in arrays]


@pytest.fixture(scope="module")
def backend(corpus):
    ubm, frames = corpus
    train = [s for s in range(N_SPEAKERS) if s % 2 == 0]
    stats = [st for s in train for st in _stats(ubm, frames[s])]
    labels = np.repeat(train, N_SESSIONS)
    return IvectorBackend(rank=6, lda_dim=4, max_iter=5).fit(ubm, stats, labels)


def _trials(backend, ubm, frames):
    """Held-out speakers: enroll on 3 sessions, test with the other 3; scores and target labels."""
    held_out = [s for s in range(N_SPEAKERS) if s % 2 == 1]
    models = [backend.enrollment(backend.vectors(_stats(ubm, frames[s][:3]))) for s in held_out]
    tests = [(s, st) for s in held_out for st in _stats(ubm, frames[s][3:])]
    scores = backend.score(np.array([m[0] for m in models]), [m[1] for m in models],
                           backend.vectors([st for _, st in tests]))
    labels = np.array([[int(s == t) for t in held_out] for s, _ in tests])
    return scores, labels


@pytest.mark.parametrize("scoring", ["plda", "cosine"])
def test_unseen_speakers_score_higher_against_themselves(corpus, scoring):
    ubm, frames = corpus
    train = [s for s in range(N_SPEAKERS) if s % 2 == 0]
    stats = [st for s in train for st in _stats(ubm, frames[s])]
    backend = IvectorBackend(rank=6, lda_dim=4, max_iter=5, scoring=scoring).fit(ubm, stats,
                                                                                 np.repeat(train, N_SESSIONS))
    scores, labels = _trials(backend, ubm, frames)
    assert scores.shape == (18, 6)
    # speakers 1 unit apart against within-session noise of 1 over 80 frames: easily told apart
    assert eer(scores.ravel(), labels.ravel())[0] < 0.1
    assert np.mean(np.argmax(scores, axis=1) == np.argmax(labels, axis=1)) > 0.8


def test_enrollment_adds(backend, corpus):
    ubm, frames = corpus
    vectors = backend.vectors(_stats(ubm, frames[1]))
    total, count = backend.enrollment(vectors)
    first, n1 = backend.enrollment(vectors[:2])
    rest, n2 = backend.enrollment(vectors[2:])
    np.testing.assert_allclose(first + rest, total, rtol=1e-12)
    assert n1 + n2 == count == N_SESSIONS
    test = backend.vectors(_stats(ubm, frames[3][:2]))
    np.testing.assert_allclose(backend.score((first + rest)[None], [n1 + n2], test),
                               backend.score(total[None], [count], test), rtol=1e-12)


def test_files_round_trip_and_refuse_damage(backend, corpus):
    ubm, frames = corpus
    arrays = backend.to_arrays()
    again = IvectorBackend.from_arrays(arrays)
    stats = _stats(ubm, frames[5])
    np.testing.assert_array_equal(again.vectors(stats), backend.vectors(stats))
    assert again.lda_dim_ == backend.lda_dim_ == 4
    assert again.plda_shrinkage == backend.plda_shrinkage == "auto"     # the default, kept in the PLDA part
    assert 0.0 <= backend.plda_.shrinkage_ <= 1.0
    damaged = {k: v for k, v in arrays.items() if not k.startswith("plda.")}
    with pytest.raises(ValueError, match=r"\(plda\)"):
        IvectorBackend.from_arrays(damaged, source="backend.npz")
    with pytest.raises(ValueError, match="backend.npz"):
        IvectorBackend.from_arrays(dict(arrays, kind=np.array("speaker_id.PLDA")), source="backend.npz")


def test_too_few_speakers_and_unfitted_use_are_refused(corpus):
    ubm, frames = corpus
    stats = _stats(ubm, frames[0] + frames[1])
    with pytest.raises(ValueError, match="at least 3 training speakers"):
        IvectorBackend(rank=2).fit(ubm, stats, np.repeat([0, 1], N_SESSIONS))
    with pytest.raises(ValueError, match="one speaker per session"):
        IvectorBackend(rank=2).fit(ubm, stats, np.zeros(3))
    with pytest.raises(ValueError, match="not fitted"):
        IvectorBackend().vectors(stats)


def test_augmented_sessions_train_but_do_not_move_the_centre(corpus):
    ubm, frames = corpus
    train = [0, 2, 4, 6]
    stats = [st for s in train for st in _stats(ubm, frames[s])]
    # augmented copies: the same speakers shifted, as pseudo-speakers of their own
    copies = [st for s in train for st in _stats(ubm, [X + 0.7 for X in frames[s]])]
    labels = np.concatenate([np.repeat(train, N_SESSIONS), np.repeat([f"{s} copy" for s in train], N_SESSIONS)])
    augmented = np.arange(len(labels)) >= len(stats)
    backend = IvectorBackend(rank=6, lda_dim=5, max_iter=3).fit(ubm, stats + copies, labels, augmented=augmented)
    plain = IvectorBackend(rank=6, lda_dim=5, max_iter=3).fit(ubm, stats + copies, labels)
    raw = backend.extractor_.transform(stats + copies)
    np.testing.assert_allclose(backend.lda_.mean_, raw[: len(stats)].mean(0), rtol=1e-10)
    np.testing.assert_allclose(plain.lda_.mean_, raw.mean(0), rtol=1e-10)
    assert np.linalg.norm(backend.lda_.mean_ - plain.lda_.mean_) > 0.1  # the copies do shift the mean
    np.testing.assert_array_equal(backend.lda_.components_, plain.lda_.components_)
    with pytest.raises(ValueError, match="one flag per session"):
        IvectorBackend(rank=6, max_iter=1).fit(ubm, stats, np.repeat(train, N_SESSIONS), augmented=[False])
    with pytest.raises(ValueError, match="every session is marked augmented"):
        IvectorBackend(rank=6, max_iter=1).fit(ubm, stats, np.repeat(train, N_SESSIONS),
                                               augmented=np.ones(len(stats), bool))


def test_lda_dimension_is_what_the_training_speakers_support(corpus):
    ubm, frames = corpus
    train = [0, 1, 2, 3, 4]  # 5 speakers: LDA keeps at most 4 dimensions
    stats = [st for s in train for st in _stats(ubm, frames[s])]
    labels = np.repeat(train, N_SESSIONS)
    # Unset: every direction when the scoring can use those the speakers do not span ...
    assert IvectorBackend(rank=6, max_iter=1).fit(ubm, stats, labels).lda_dim_ == 6
    assert IvectorBackend(rank=6, max_iter=1, scoring="cosine").fit(ubm, stats, labels).lda_dim_ == 6
    # ... else the discriminants, at most the rank.
    unshrunk = IvectorBackend(rank=6, max_iter=1, plda_shrinkage=None)
    assert unshrunk.fit(ubm, stats, labels).lda_dim_ == 4
    assert IvectorBackend(rank=3, max_iter=1, plda_shrinkage=None).fit(ubm, stats, labels).lda_dim_ == 3
    assert IvectorBackend(rank=6, lda_dim=6).check_speakers(5) == 6
    for lda_dim in (5, 0):
        with pytest.raises(ValueError, match=r"min\(speakers - 1, rank\) = 4 discriminants; ask for 4 or fewer, "
                                             r"or the rank \(6\) for every direction"):
            IvectorBackend(rank=6, lda_dim=lda_dim).fit(ubm, stats, labels)
    with pytest.raises(ValueError, match=r"= 4 discriminants; ask for 4 or fewer \(or leave it unset\)"):
        IvectorBackend(rank=6, lda_dim=6, plda_shrinkage=None).check_speakers(5)
    with pytest.raises(ValueError, match="positive integer or None"):
        IvectorBackend(rank=6, lda_dim="4").check_speakers(5)
    assert IvectorBackend(rank=200, lda_dim=150).check_speakers(151) == 150


def test_single_utterance_speakers_train_on_segments(corpus):
    ubm, _ = corpus
    rng = np.random.default_rng(1)
    features = {Path("a.wav"): rng.normal(size=(700, D)), Path("b1.wav"): rng.normal(size=(50, D)),
                Path("b2.wav"): rng.normal(size=(60, D)), Path("c.wav"): rng.normal(size=(100, D))}
    utts = [Utterance("a", "a", "a.wav"), Utterance("b1", "b", "b1.wav"), Utterance("b2", "b", "b2.wav"),
            Utterance("c", "c", "c.wav")]
    stats, labels = training_sessions([u.speaker for u in utts], [features[u.path] for u in utts], ubm,
                                      segment_frames=300)
    # a: 700 frames -> two whole segments of 300; b: its two utterances; c: too short to cut, one session
    assert labels.tolist() == ["a", "a", "b", "b", "c"]
    assert [s.n_frames for s in stats] == [300.0, 300.0, 50.0, 60.0, 100.0]
    np.testing.assert_allclose(stats[1].zeroth, accumulate(ubm, features[Path("a.wav")][300:600]).zeroth)
