"""Live scoring speed: compute time per 100 ms update of `StreamScorer.push`, ours vs a naive loop.

Setting (issue 4's targets): a 256-component diagonal UBM on 60-dimensional
MFCC + delta features (``FeatureConfig()`` defaults, 16 kHz), speakers
MAP-adapted in their means, audio pushed 100 ms at a time. Per update we
time everything the stream command does between two reads: the streaming
front end (MFCC, deltas, causal VAD and CMVN), top-C scoring of the new
frames against every speaker, the sliding-window and whole-stream sums and
the decision. Target: median <= 2 ms with 10 speakers, and within 10 ms
(10x faster than real time) with 1,000.

The naive column is what one writes without a streaming toolkit: per update,
librosa MFCCs and deltas of the new audio plus the context the deltas need,
then ``GaussianMixture.score_samples`` of the UBM and of every speaker on the
new frames (exact). With 1,000 speakers it is timed on the first
``--naive-updates`` updates only.

Audio is synthetic (:mod:`speaker_id.demo.synth`), so no corpus is needed. Every
figure is over ``--passes`` passes of a 20 s stream (200 updates each), after
one untimed pass; medians and 99th percentiles of the per-update times.

Run:  python scripts/bench_stream.py            (about a minute)
      python scripts/bench_stream.py --quick    (100 speakers instead of 1,000)
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

SR = 16000


def update_times(scorer, y, chunk):
    """Seconds spent in each push of one pass over ``y`` (the scorer is reset first)."""
    scorer.reset()
    times = []
    for start in range(0, len(y), chunk):
        piece = y[start:start + chunk]
        t0 = time.perf_counter()
        scorer.push(piece)
        times.append(time.perf_counter() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    parser.add_argument("--top-c", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--naive-updates", type=int, default=30, help="updates timed for the naive loop")
    parser.add_argument("--quick", action="store_true", help="10 and 100 speakers, one pass")
    args = parser.parse_args()
    if args.quick:
        args.speakers, args.passes = [10, 100], 1

    import librosa
    from librosa_mfcc import librosa_mfcc
    from sklearn.mixture import GaussianMixture  # noqa: F401  (the peer)

    from speaker_id import frontend
    from speaker_id.demo import synth
    from speaker_id.frontend.streaming import StreamingFeatureExtractor
    from speaker_id.models.adaptation import map_adapt, speaker_stats
    from speaker_id.scoring.stream import StreamScorer
    from streamgmm import OnlineGMM

    config = frontend.FeatureConfig()
    chunk = int(round(SR * args.chunk_ms / 1000))
    started = time.perf_counter()
    voices = [synth.SyntheticSpeaker.random(seed=20_000 + i) for i in range(40)]
    background = [frontend.extract(synth.synthesize(v, 6.0, sr=SR, seed=i), config) for i, v in enumerate(voices)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = OnlineGMM(args.components, covariance_type="diag", max_iter=8, random_state=0).fit(
            np.concatenate(background))
    # speakers: MAP means from 3 s (300 frames) cut from the background voices; speaker i
    # comes from voice i % 40, so the first 40 are all different voices
    rng = np.random.default_rng(0)
    means = {}
    for i in range(max(args.speakers)):
        frames = background[i % len(voices)]
        start = int(rng.integers(0, len(frames) - 300))
        means[f"spk{i:04d}"] = map_adapt(ubm, speaker_stats(ubm, [frames[start:start + 300]])).means_
    target_voice = 3
    y = synth.synthesize(voices[target_voice], 20.0, sr=SR, seed=99)
    print(f"setup {time.perf_counter() - started:.1f} s: UBM K={ubm.n_components}, D={ubm.n_features_in_}; "
          f"stream of {len(y) / SR:.0f} s pushed {args.chunk_ms:g} ms at a time "
          f"({int(np.ceil(len(y) / chunk))} updates per pass, {args.passes} timed passes)")

    # --- the peer: librosa front end on the new audio + delta context, sklearn per speaker
    sk = ubm.to_sklearn()
    sk_ubm = ubm.to_sklearn()
    context = config.win_length + 8 * config.hop_length  # one frame + the delta window's reach

    def naive_update(start, names):
        piece = y[max(0, start - context):start + chunk]
        mfcc = librosa_mfcc(piece, config, center=False)
        X = np.vstack([mfcc, librosa.feature.delta(mfcc, width=9, mode="nearest"),
                       librosa.feature.delta(mfcc, width=9, order=2, mode="nearest")]).T[-10:]
        base = sk_ubm.score_samples(X)
        for name in names:
            sk.means_ = means[name]
            sk.score_samples(X)
        return base

    extractor_times = []
    ex = StreamingFeatureExtractor(config)
    for _ in range(args.passes):
        ex.reset()
        for start in range(0, len(y), chunk):
            t0 = time.perf_counter()
            ex.push(y[start:start + chunk])
            extractor_times.append(time.perf_counter() - t0)

    rows = []
    for n_speakers in args.speakers:
        names = list(means)[:n_speakers]
        scorer = StreamScorer(ubm, {n: means[n] for n in names}, config, top_c=args.top_c,
                              threshold=-np.inf)
        update_times(scorer, y, chunk)  # untimed: Numba compilation, caches
        times = [t for _ in range(args.passes) for t in update_times(scorer, y, chunk)]
        starts = list(range(0, len(y), chunk))
        if n_speakers > 100:
            starts = starts[40:40 + args.naive_updates]
        naive_update(starts[0], names)
        naive = []
        for start in starts:
            t0 = time.perf_counter()
            naive_update(start, names)
            naive.append(time.perf_counter() - t0)
        scorer.reset()
        for start in range(0, len(y), chunk):
            last = scorer.push(y[start:start + chunk])
        rows.append((n_speakers, np.median(times), np.percentile(times, 99), np.max(times), np.median(naive),
                     len(naive), last.speaker))

    print(f"load average at the end (2-core machine shared with other work): "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print()
    print(f"streaming front end alone: median {np.median(extractor_times) * 1e3:.2f} ms, "
          f"p99 {np.percentile(extractor_times, 99) * 1e3:.2f} ms per {args.chunk_ms:g} ms update")
    print()
    print(f"{'speakers':>8s} {'ours median':>12s} {'ours p99':>9s} {'ours max':>9s} {'naive median':>13s} "
          f"{'ratio':>7s} {'real-time factor':>17s}  decision at the end")
    for n_speakers, med, p99, worst, naive, n_naive, speaker in rows:
        print(f"{n_speakers:8d} {med * 1e3:10.2f}ms {p99 * 1e3:7.2f}ms {worst * 1e3:7.2f}ms "
              f"{naive * 1e3:11.2f}ms {naive / med:6.1f}x {args.chunk_ms / 1e3 / med:15.0f}x  "
              f"{speaker} (true voice: spk{target_voice:04d} and every 40th after it)")
    print(f"\n(naive median over {rows[-1][5]} updates for the largest set; "
          f"the naive loop's front end is librosa, its scoring exact sklearn)")


if __name__ == "__main__":
    main()
