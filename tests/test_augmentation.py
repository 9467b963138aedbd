"""Vocal tract length perturbation: the warped filterbank, and pseudo-speakers for the i-vector back end."""

import librosa
import numpy as np
import pytest

from conftest import write_voices
from speaker_id.frontend import FeatureConfig, extract_file
from speaker_id.frontend.augmentation import (
    DEFAULT_VTLN_WARPS,
    check_vtln_warps,
    pseudo_speaker,
    training_warps,
    warped_config,
)
from speaker_id.frontend.spectral import _triangles, log_mel, mel_filterbank, power_spectrum, vtln_frequencies

SR = 16000


def test_the_triangles_are_librosas_filterbank_when_unwarped():
    # our own triangles on an unwarped axis against librosa's Slaney filterbank (an independent implementation)
    for sr, n_fft, n_mels, fmin in ((16000, 512, 40, 20.0), (8000, 256, 24, 100.0)):
        edges = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=sr / 2)
        ours = _triangles(np.linspace(0.0, sr / 2, 1 + n_fft // 2), edges)
        theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=sr / 2)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-9)
    # and warp 1.0 is exactly the filterbank features always had
    np.testing.assert_array_equal(mel_filterbank(SR, 512, 40, 20.0, 8000.0, 1.0),
                                  librosa.filters.mel(sr=SR, n_fft=512, n_mels=40, fmin=20.0, fmax=8000.0,
                                                      dtype=np.float32).T)


@pytest.mark.parametrize("warp", [0.8, 0.9, 1.1, 1.25])
def test_the_warp_scales_frequencies_below_the_knee_and_keeps_the_band(warp):
    f = np.linspace(0.0, 8000.0, 257)
    heard = vtln_frequencies(f, warp, 8000.0)
    assert heard[0] == 0.0 and heard[-1] == pytest.approx(8000.0)
    assert np.all(np.diff(heard) > 0)  # no two frequencies fall together, the band is not folded
    below = f <= 0.8 * 8000.0 / max(1.0, warp)
    np.testing.assert_allclose(heard[below], warp * f[below])
    assert np.all(heard <= 8000.0 + 1e-9)


@pytest.mark.parametrize("f0", [500.0, 1000.0, 2500.0])
@pytest.mark.parametrize("warp", [0.9, 1.1])
def test_a_warped_tone_sounds_like_the_scaled_tone(f0, warp):
    # the definition: through warp w, a component at f falls in the bands an unwarped filterbank
    # gives a component at w * f -- same loudest band, same level there
    t = np.arange(4000) / SR

    def bands(freq, w):
        frames = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32).reshape(10, 400)
        power = power_spectrum(frames, n_fft=512, window="multitaper", preemphasis=0.0, n_tapers=4)
        return log_mel(power, mel_filterbank(SR, 512, 40, 20.0, 8000.0, w)).mean(axis=0)

    warped, scaled, plain = bands(f0, warp), bands(warp * f0, 1.0), bands(f0, 1.0)
    assert warped.argmax() == scaled.argmax()
    assert abs(warped.max() - scaled.max()) < 1.0
    near = scaled > scaled.max() - 20.0  # the bands the tone reaches: the warped tone is the scaled one there,
    gap = np.abs(warped - scaled)[near].mean()  # not the unwarped one
    assert gap < 1.5 and gap < 0.25 * np.abs(plain - scaled)[near].mean()


def test_the_warp_is_a_validated_front_end_field():
    config = FeatureConfig(vtln_warp=1.1)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    legacy = FeatureConfig().to_dict()
    del legacy["vtln_warp"]  # a store written before the field: its voices were never warped
    assert FeatureConfig.from_dict(legacy).vtln_warp == 1.0
    for bad in (0.3, 2.5, float("nan"), "1.1", True):
        with pytest.raises(ValueError, match="vtln_warp"):
            FeatureConfig(vtln_warp=bad)


def test_warped_features_differ_only_in_the_spectrum(tmp_path):
    by_speaker = write_voices(tmp_path, 1, 1, 1.5, sr=SR, seed=2)
    path = by_speaker["spk000"][0]
    config = FeatureConfig(sr=SR).with_prior(np.zeros(60))
    plain, warped = extract_file(path, config), extract_file(path, warped_config(config, 0.9))
    assert warped_config(config, 0.9).prior_mean == config.prior_mean  # one training mean for all
    assert plain.shape == warped.shape  # framing and VAD do not depend on the warp
    assert np.abs(plain - warped).mean() > 0.1 * np.abs(plain).mean()


def test_warps_are_checked():
    assert check_vtln_warps(None) == () and check_vtln_warps([]) == ()
    assert check_vtln_warps([0.9, 1.1]) == (0.9, 1.1)
    for bad, needle in (([1.0], "differ from 1"), ([0.9, 0.9], "twice"), ([3.0], "lie in"), ("0.9", "list"),
                        ([float("inf")], "numbers"), ([0.6 + 0.05 * i for i in range(10) if i != 8], "at most")):
        with pytest.raises(ValueError, match=needle):
            check_vtln_warps(bad)
    assert training_warps("ivector", None) == DEFAULT_VTLN_WARPS
    assert training_warps("gmm", None) == () and training_warps("gmm", []) == ()
    assert training_warps("ivector", []) == ()
    with pytest.raises(ValueError, match="ivector back end"):
        training_warps("gmm", [0.9])


def test_pseudo_speakers_are_distinct_from_every_real_one():
    speakers = ["a", "b", "a vtln"]
    labels = [pseudo_speaker(s, w) for w in (0.9, 1.1) for s in speakers]
    assert len(labels) == 6 and len(set(labels) | set(speakers)) == 9
    assert pseudo_speaker("spk1", 0.9) != pseudo_speaker("spk1", 1.1)
    assert all(" " in label for label in labels)  # Kaldi speaker ids hold no whitespace


@pytest.mark.filterwarnings("ignore:PLDA EM did not converge")
def test_the_back_end_trains_on_each_speaker_and_its_pseudo_speakers(tmp_path):
    from speaker_id.operations import train_models, warped_training_sessions

    by_speaker = write_voices(tmp_path, 4, 5, 1.0, sr=SR, seed=5)
    paths = [p for s in sorted(by_speaker) for p in by_speaker[s]]
    speakers = [s for s in sorted(by_speaker) for _ in by_speaker[s]]
    options = dict(n_components=8, max_iter=5, n_jobs=1)
    # Unshrunk PLDA: the LDA keeps as many discriminants as there are classes - 1.
    ivector_options = {"rank": 12, "max_iter": 3, "plda_shrinkage": None}
    ubm, backend, config = train_models(paths, FeatureConfig(sr=SR), speakers=speakers, vtln_warps=(0.9, 1.1),
                                        ivector_options=ivector_options, **options)
    assert backend.lda_dim_ == 11  # 4 speakers and 8 pseudo-speakers: 12 classes
    _, plain, _ = train_models(paths, FeatureConfig(sr=SR), speakers=speakers, vtln_warps=(),
                               ivector_options=ivector_options, **options)
    assert plain.lda_dim_ == 3
    stats, labels = warped_training_sessions(paths, speakers, config, ubm, (1.1,), n_jobs=1)
    assert list(labels) == [pseudo_speaker(s, 1.1) for s in speakers]
    assert len(stats) == len(paths)
    warped = extract_file(paths[0], warped_config(config, 1.1))
    from streamgmm import accumulate

    expected = accumulate(ubm, warped)
    np.testing.assert_allclose(stats[0].first, expected.first, rtol=1e-10)
    with pytest.raises(ValueError, match="at least 3 training speakers"):
        train_models(paths[:10], FeatureConfig(sr=SR), speakers=speakers[:10], vtln_warps=(0.9, 1.1), **options)
