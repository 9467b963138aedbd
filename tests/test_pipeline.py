"""Evaluation protocols: score normalisation arithmetic, Kaldi splits, and the real corpora."""

import numpy as np
import pytest
import soundfile as sf

from speaker_id.demo.synth import make_corpus
from speaker_id.evaluation.corpora import find_dataset_root
from speaker_id.evaluation.protocols import _kaldi_split, evaluate
from speaker_id.scoring.normalization import normalise_scores

DATASETS = find_dataset_root()
needs_data = pytest.mark.skipif(
    DATASETS is None, reason="speech corpora not found: set SPEAKER_ID_DATASETS or place ../shared/datasets"
)


def test_tnorm_with_the_enrolled_cohort_leaves_the_model_out():
    raw = np.array([[1.0, 2.0, 3.0, 6.0]])
    out = normalise_scores(raw, "tnorm", cohort_scores=raw, cohort_exclude=np.eye(4, dtype=bool))
    # model d: cohort a, b, c has mean 2 and sample std 1
    assert out[0, 3] == pytest.approx((6.0 - 2.0) / 1.0)
    # model a: cohort 2, 3, 6 has mean 11/3, sample std sqrt(13/3)
    assert out[0, 0] == pytest.approx((1.0 - 11 / 3) / np.sqrt(13 / 3))


def test_znorm_leaves_out_the_pairs_marked_nan():
    raw = np.array([[5.0, 0.0, 0.0]])
    impostors = np.array([[np.nan, 1.0, 2.0],    # a's own utterance: not an impostor for a
                          [1.0, 0.0, 4.0],
                          [3.0, 2.0, 0.0]])
    out = normalise_scores(raw, "znorm", impostor_scores=impostors)
    # impostors of a: 1 and 3 (mean 2, sample std sqrt 2)
    assert out[0, 0] == pytest.approx(3.0 / np.sqrt(2.0))


def test_snorm_and_adaptive_snorm_with_a_disjoint_cohort():
    raw = np.array([[4.0]])
    impostors = np.array([[0.0], [1.0], [2.0], [7.0], [9.0]])
    cohort = np.array([[1.0, 3.0, 5.0, -10.0]])
    z = (4.0 - 19 / 5) / np.std([0, 1, 2, 7, 9], ddof=1)
    t = (4.0 - (-0.25)) / np.std([1, 3, 5, -10], ddof=1)
    assert normalise_scores(raw, "snorm", impostor_scores=impostors, cohort_scores=cohort)[0, 0] == pytest.approx(
        0.5 * (z + t))
    # adaptive: the 2 highest of each side only: impostors 7, 9; cohort 3, 5
    z2, t2 = (4.0 - 8.0) / np.sqrt(2.0), (4.0 - 4.0) / np.sqrt(2.0)
    out = normalise_scores(raw, "asnorm", impostor_scores=impostors, cohort_scores=cohort, top_n=2)
    assert out[0, 0] == pytest.approx(0.5 * (z2 + t2))


def test_ztnorm_znormalises_the_cohort_scores_first():
    raw = np.array([[4.0]])
    impostors = np.array([[0.0], [2.0]])                      # model: mean 1, std sqrt 2
    cohort = np.array([[1.0, 6.0, 2.0]])
    cohort_impostors = np.array([[0.0, 2.0, 0.0], [2.0, 4.0, 4.0]])  # means 1, 3, 2; stds sqrt 2, sqrt 2, sqrt 8
    z = (4.0 - 1.0) / np.sqrt(2.0)
    zc = np.array([(1.0 - 1.0) / np.sqrt(2.0), (6.0 - 3.0) / np.sqrt(2.0), 0.0])
    out = normalise_scores(raw, "ztnorm", impostor_scores=impostors, cohort_scores=cohort,
                           cohort_impostor_scores=cohort_impostors)
    assert out[0, 0] == pytest.approx((z - zc.mean()) / zc.std(ddof=1))


def test_unknown_normalisation_missing_or_too_small_cohort():
    with pytest.raises(ValueError, match="norm must be one of"):
        normalise_scores(np.zeros((1, 3)), "bnorm")
    with pytest.raises(ValueError, match="needs cohort_scores"):
        normalise_scores(np.zeros((1, 3)), "tnorm")
    with pytest.raises(ValueError, match="at least 2 are"):
        normalise_scores(np.zeros((1, 2)), "tnorm", cohort_scores=np.zeros((1, 2)), cohort_exclude=np.eye(2, dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        normalise_scores(np.zeros((2, 2)), "znorm", impostor_scores=np.zeros((5, 3)))


def _kaldi_corpus(tmp_path, n_speakers=6, n_utts=4):
    """A Kaldi-style corpus of synthetic voices: train/ for the UBM, test/ to enroll and test."""
    corpus = make_corpus(n_speakers * 2, n_utts, 2.0, sr=16000, seed=5)
    (tmp_path / "audio").mkdir()
    for part in ("train", "test"):
        (tmp_path / part).mkdir()
    scp = {"train": [], "test": []}
    for utt in corpus:
        part = "train" if int(utt.speaker_id[3:]) >= n_speakers else "test"
        rel = f"audio/{utt.utt_id}.wav"
        sf.write(tmp_path / rel, utt.audio, 16000)
        scp[part].append((utt.utt_id, rel, utt.speaker_id))
    for part, rows in scp.items():
        (tmp_path / part / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
        (tmp_path / part / "utt2spk").write_text("".join(f"{u} {s}\n" for u, _, s in rows))
    return tmp_path


def test_kaldi_split_enrolls_the_first_half_sorted_by_id(tmp_path):
    root = _kaldi_corpus(tmp_path)
    split = _kaldi_split(root)
    assert sorted(split.enroll) == [f"spk{i:03d}" for i in range(6)]
    for speaker, utts in split.enroll.items():
        ids = [u.utt_id for u in utts]
        assert ids == sorted(ids) and len(ids) == 2
        tests = sorted(u.utt_id for u in split.test if u.speaker == speaker)
        assert max(ids) < min(tests)
    assert len(split.test) == 12 and len(split.train) == 24


def test_kaldi_protocol_on_synthetic_voices(tmp_path):
    result = evaluate("kaldi", _kaldi_corpus(tmp_path), n_components=16, max_iter=10, n_jobs=1)
    assert len(result.trials) == 12 * 6
    assert sum(t[3] for t in result.trials) == 12
    # 12 tests: over UBM seeds 0-5 accuracy spans 0.67-0.92 with either UBM schedule; chance is 1/6
    assert result.accuracy >= 0.5
    assert 0.0 <= result.eer <= 0.3
    result.write_trials(tmp_path / "trials.txt")
    rows = [line.split() for line in (tmp_path / "trials.txt").read_text().splitlines()]
    assert [(m, t, int(y)) for m, t, _, y in rows] == [(m, t, y) for m, t, _, y in result.trials]
    np.testing.assert_allclose([float(r[2]) for r in rows], [t[2] for t in result.trials], atol=1e-6)


def test_kaldi_protocol_normalises_with_the_training_speakers_only(tmp_path):
    root = _kaldi_corpus(tmp_path)
    result = evaluate("kaldi", root, n_components=16, max_iter=10, n_jobs=1, norm="snorm")
    assert (result.norm, result.cohort, result.n_cohort_speakers) == ("snorm", "train", 6)
    assert set(result.min_dcf) == {0.01, 0.001} and set(result.raw_min_dcf) == {0.01, 0.001}
    # 12 tests of 6 speakers: well above chance (1/6), not a measurement
    assert 0.0 <= result.eer <= 0.3 and result.norm_accuracy >= 0.5
    # the same split with test speakers in the training part cannot have an honest cohort
    utt2spk = root / "train" / "utt2spk"
    utt2spk.write_text("".join(line.replace(" spk006", " spk000") + "\n" for line in utt2spk.read_text().splitlines()))
    with pytest.raises(ValueError, match="leak the test speakers"):
        evaluate("kaldi", root, n_components=16, max_iter=10, n_jobs=1, norm="snorm")


def test_kaldi_protocol_with_the_ivector_back_end(tmp_path):
    # The old UBM schedule: on 24 training utterances the grown UBM's 12-test accuracy swings with
    # its seed (5, 3 and 7 of 12 for seeds 0-2; 7, 6, 6 with "full"). This test checks the back
    # end's wiring; the schedules are measured on the real corpora (scripts/ubm_schedule_experiment.py).
    result = evaluate("kaldi", _kaldi_corpus(tmp_path), n_components=16, max_iter=10, n_jobs=1, backend="ivector",
                      ivector_options={"rank": 8, "lda_dim": 5, "max_iter": 5}, ubm_schedule="full")
    assert result.settings["backend"] == "ivector" and len(result.trials) == 12 * 6
    from speaker_id.frontend.augmentation import DEFAULT_VTLN_WARPS

    assert result.settings["vtln_warps"] == list(DEFAULT_VTLN_WARPS)  # pseudo-speakers by default
    # 12 tests of 6 synthetic voices, back end trained on 6 other voices: above chance (1/6), not a measurement
    assert result.accuracy >= 0.5 and result.raw_eer <= 0.35


def test_vtln_warps_are_refused_by_the_gmm_back_end_before_any_work(tmp_path, monkeypatch):
    import speaker_id.evaluation.protocols as protocols

    monkeypatch.setattr(protocols, "extract_files", lambda *a, **k: pytest.fail("features were extracted"))
    with pytest.raises(ValueError, match="ivector back end"):
        evaluate("kaldi", _kaldi_corpus(tmp_path), backend="gmm", vtln_warps=(0.9, 1.1))
    with pytest.raises(ValueError, match="differ from 1"):
        evaluate("kaldi", tmp_path, backend="ivector", vtln_warps=(1.0,))


def test_kaldi_protocol_refuses_a_missing_part(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no test/ Kaldi data directory"):
        evaluate("kaldi", tmp_path)


@needs_data
def test_fsdd_protocol_meets_the_floors():
    # Floors, not the measured figures (README): the hand-built scikit-learn +
    # librosa GMM-UBM of the issue reaches 99.0 % accuracy and 1.67 % EER. The UBM's
    # seed alone moves our EER between 0.33 % and 1.07 % (seeds 0-3), so the floor
    # is the baseline's figure, not a lucky seed's.
    result = evaluate("fsdd", DATASETS / "fsdd" / "recordings", n_jobs=2)
    assert result.norm == "none"  # its training speakers are its test speakers: no honest cohort
    assert result.n_test_utterances == 300 and len(result.trials) == 1800
    assert sum(t[3] for t in result.trials) == 300
    assert result.accuracy >= 0.99
    assert result.raw_eer <= 0.0167


@needs_data
def test_librispeech_mini_kaldi_protocol(tmp_path):
    from speaker_id.evaluation.corpora import load_librispeech_dir, write_kaldi_dir

    corpus = DATASETS / "librispeech-mini"
    write_kaldi_dir(load_librispeech_dir(corpus / "train-clean-100"), tmp_path / "train", base_dir=tmp_path)
    write_kaldi_dir(load_librispeech_dir(corpus / "test-other"), tmp_path / "test", base_dir=tmp_path)
    # a small, quick UBM: the README reports the 128-component figures
    result = evaluate("kaldi", tmp_path, n_components=32, max_iter=10, n_jobs=2)
    assert result.n_speakers == 10 and result.n_test_utterances == 50
    assert result.accuracy >= 0.9
    assert result.eer <= 0.1


@needs_data
def test_arabic_speech_commands_beats_the_hand_built_baseline():
    # Floors: the hand-built scikit-learn + librosa GMM-UBM (128 components, CMVN, no VAD, exact scoring;
    # scripts/evaluate_corpora.py --seeds 0 1 2) reaches 4.03, 4.03 and 4.15 % raw EER and 98.75, 99.03 and
    # 98.33 % identification on this protocol. Ours must reach its best seed's EER; identification moves by
    # 0.7 points between seeds on either side, so its floor stays below both.
    result = evaluate("kaldi", DATASETS / "arabic-speech-commands" / "kaldi", n_components=128, n_jobs=2)
    assert (result.n_speakers, result.n_test_utterances, len(result.trials)) == (12, 720, 8640)
    assert (result.norm, result.cohort, result.n_cohort_speakers) == ("snorm", "train", 18)
    assert result.raw_eer <= 0.0403
    assert result.eer <= 0.0403
    assert result.accuracy >= 0.97


@needs_data
def test_arabic_speech_commands_ivector_back_end_is_not_behind_the_hand_built_baseline():
    # Floor: the hand-built GMM-UBM's worst seed above (4.15 % raw EER). The i-vector back end is trained on
    # 18 speakers and their VTLN pseudo-speakers; it measured 3.69 / 4.03 / 4.24 % over UBM seeds 0 / 1 / 2
    # (README), so with seed 0 it must stay within the baseline's spread. Identification: at least the
    # 94.0 % of the back end before its LDA kept every direction (seed 0; 96.1 % since).
    result = evaluate("kaldi", DATASETS / "arabic-speech-commands" / "kaldi", n_components=128, n_jobs=2,
                      backend="ivector", random_state=0)
    assert (result.n_speakers, result.n_test_utterances, result.n_cohort_speakers) == (12, 720, 18)
    assert result.raw_eer <= 0.0415
    assert result.accuracy >= 0.94
