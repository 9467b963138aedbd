"""Scoring speed: GMM-UBM verification and identification, ours vs a naive scikit-learn loop.

Setting (the brief's targets): a 256-component diagonal UBM on 60-dimensional
MFCC + delta features (``FeatureConfig()`` defaults, 16 kHz), speakers
MAP-adapted in their means, and a 10 s test utterance (about 1,000 frames).

* verification: ``frontend.extraction`` of 10 s of audio plus ``llr`` against one
  speaker (top-C 5) -- target <= 20 ms; the naive column is the same
  extraction plus ``GaussianMixture.score_samples`` of the speaker and the UBM
  (exact, all components);
* identification among ``--speakers`` (default 1,000) speakers (the slow
  columns, exact scoring and the naive loop, are timed ``--naive-repeats``
  times, default once, after a short warm-up):
  ``SpeakerScorer.score`` (top-C 5, float64 and float32, and exact) vs a
  per-speaker loop of ``GaussianMixture.score_samples`` (one UBM pass, then
  one pass per speaker, exact) -- target >= 100x real time (<= 100 ms).

Audio comes from :mod:`speaker_id.demo.synth` (source-filter synthetic voices), so
no corpus is needed. Every time is the
median of ``--repeats`` runs after one untimed warm-up, in this one process.

Run:  python scripts/bench_scoring.py            (about a minute)
      python scripts/bench_scoring.py --quick    (100 speakers, seconds)
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

SR = 16000


def median_time(fn, repeats, warm_up=None):
    (warm_up or fn)()  # untimed: Numba compilation, BLAS threads, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", type=int, default=1000)
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--top-c", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--naive-repeats", type=int, default=1,
                        help="timed runs of the slow columns (naive loop, exact scorer)")
    parser.add_argument("--quick", action="store_true", help="100 speakers, fewer repeats")
    args = parser.parse_args()
    if args.quick:
        args.speakers, args.repeats, args.naive_repeats = 100, 5, 1

    from sklearn.mixture import GaussianMixture  # noqa: F401  (the peer)

    from speaker_id import frontend
    from speaker_id.demo import synth
    from speaker_id.models.adaptation import map_adapt, speaker_stats
    from speaker_id.scoring.decisions import identify
    from speaker_id.scoring.likelihood_ratio import llr
    from speaker_id.scoring.scorer import SpeakerScorer
    from streamgmm import OnlineGMM

    config = frontend.FeatureConfig()

    def say(voice, duration, seed):
        return synth.synthesize(voice, duration=duration, sr=SR, seed=seed)

    started = time.perf_counter()
    # --- UBM on 40 background voices x 6 s
    background = [
        frontend.extract(say(synth.SyntheticSpeaker.random(seed=10_000 + i), 6.0, i), config) for i in range(40)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = OnlineGMM(args.components, covariance_type="diag", max_iter=8, random_state=0).fit(
            np.concatenate(background)
        )
    # --- speakers: 3 s of enrollment each, means-only MAP (r = 16)
    voices = [synth.SyntheticSpeaker.random(seed=i) for i in range(args.speakers)]
    means = {}
    for i, voice in enumerate(voices):
        stats = speaker_stats(ubm, [frontend.extract(say(voice, 3.0, 1_000_000 + i), config)])
        means[f"spk{i:04d}"] = map_adapt(ubm, stats).means_
    names = list(means)
    target = args.speakers // 2
    y = say(voices[target], 10.0, 2_000_000)  # 10 s test utterance of one enrolled speaker
    # identification is timed on 1,000 speech frames (10 s of speech after VAD), cut from a
    # longer utterance: the VAD keeps only ~80% of the frames of 10 s of audio
    X = frontend.extract(say(voices[target], 14.0, 2_000_000), config)[:1000]
    if len(X) < 1000:
        raise RuntimeError("the test utterance gave fewer than 1,000 speech frames; lengthen it.")
    Xy = frontend.extract(y, config)
    speaker = map_adapt(ubm, speaker_stats(ubm, [frontend.extract(say(voices[target], 3.0, 1_000_000 + target), config)]))
    print(
        f"setup {time.perf_counter() - started:.1f} s: UBM K={ubm.n_components}, D={ubm.n_features_in_}, "
        f"{args.speakers} speakers; 10 s test audio -> {len(Xy)} speech frames (verification); "
        f"identification and the LLR rows on {len(X)} frames"
    )

    # --- the peer: one sklearn GaussianMixture whose means are swapped per speaker
    sk_ubm = ubm.to_sklearn()
    sk_spk = speaker.to_sklearn()

    def naive_verify():
        Xv = frontend.extract(y, config)
        return float(np.mean(sk_spk.score_samples(Xv) - sk_ubm.score_samples(Xv)))

    def ours_verify():
        return llr(ubm, speaker, frontend.extract(y, config), top_c=args.top_c)

    sk_loop = ubm.to_sklearn()

    def naive_identify(subset=None):
        base = sk_ubm.score_samples(X)
        out = np.empty(len(names))
        for s, name in enumerate(names[:subset]):
            sk_loop.means_ = means[name]
            out[s] = np.mean(sk_loop.score_samples(X) - base)
        return out

    scorer64 = SpeakerScorer(ubm, means, top_c=args.top_c)
    scorer32 = SpeakerScorer(ubm, means, top_c=args.top_c, dtype=np.float32)
    exact = SpeakerScorer(ubm, means, top_c=None)

    t_extract = median_time(lambda: frontend.extract(y, config), args.repeats)
    t_llr = median_time(lambda: llr(ubm, speaker, X, top_c=args.top_c), args.repeats)
    t_naive_llr = median_time(
        lambda: np.mean(sk_spk.score_samples(X) - sk_ubm.score_samples(X)), args.repeats
    )
    t_verify = median_time(ours_verify, args.repeats)
    t_naive_verify = median_time(naive_verify, args.repeats)
    t_id64 = median_time(lambda: scorer64.score(X), args.repeats)
    t_id32 = median_time(lambda: scorer32.score(X), args.repeats)
    t_exact = median_time(lambda: exact.score(X), args.naive_repeats, lambda: exact.score(X[:50]))
    t_naive_id = median_time(naive_identify, args.naive_repeats, lambda: naive_identify(10))

    s64, s32, s_exact, s_naive = scorer64.score(X), scorer32.score(X), exact.score(X), naive_identify()
    check = [llr(ubm, means[names[s]], X, top_c=args.top_c) for s in (0, target, len(names) - 1)]
    deviation = np.max(np.abs(np.array(check) - s64[[0, target, len(names) - 1]]))

    audio_seconds = len(y) / SR
    print(f"load average at the end (2-core machine shared with other work): "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print()
    print(f"{'task':70s} {'ours':>10s} {'naive sklearn':>14s} {'ratio':>7s}")
    rows = [
        ("verification: extract 10 s + LLR vs 1 speaker", t_verify, t_naive_verify),
        ("  of which frontend.extraction (10 s of 16 kHz audio)", t_extract, t_extract),
        (f"LLR vs 1 speaker, 1000 frames (ours top-C {args.top_c}, sklearn exact)", t_llr, t_naive_llr),
        (f"identification vs {args.speakers} speakers, top-C {args.top_c}, float64", t_id64, t_naive_id),
        (f"identification vs {args.speakers} speakers, top-C {args.top_c}, float32", t_id32, t_naive_id),
        (f"identification vs {args.speakers} speakers, exact (all K)", t_exact, t_naive_id),
    ]
    for label, ours, theirs in rows:
        print(f"{label:70s} {ours * 1e3:8.1f}ms {theirs * 1e3:12.1f}ms {theirs / ours:6.1f}x")
    print()
    print(f"identification real-time factor (top-C {args.top_c}): float64 {audio_seconds / t_id64:.0f}x, "
          f"float32 {audio_seconds / t_id32:.0f}x, exact {audio_seconds / t_exact:.1f}x, "
          f"naive sklearn {audio_seconds / t_naive_id:.1f}x")
    rank = lambda scores: 1 + int(np.sum(scores > scores[target]))  # noqa: E731
    print(f"true speaker {names[target]}: identified {identify(s64, names)[0]} (top-C float64), "
          f"{identify(s32, names)[0]} (float32), {identify(s_exact, names)[0]} (exact), "
          f"{identify(s_naive, names)[0]} (sklearn); its rank: {rank(s64)}, {rank(s32)}, "
          f"{rank(s_exact)}, {rank(s_naive)} of {len(names)} (synthetic voices, 3 s enrollment)")
    print(f"max |stacked - per-speaker llr| = {deviation:.1e}; max |exact scorer - sklearn| = "
          f"{np.max(np.abs(s_exact - s_naive)):.1e}; max |float32 - float64| = {np.max(np.abs(s32 - s64)):.1e}; "
          f"max |top-C - exact| = {np.max(np.abs(s64 - s_exact)):.1e}")


if __name__ == "__main__":
    main()
