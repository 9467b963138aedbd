"""What causal VAD and CMVN cost: live (streamed) scores beside offline scores on the real corpora.

    python scripts/stream_vs_offline.py [--datasets DIR] [--corpus fsdd librispeech] [--components K]

For FSDD (official split) and librispeech-mini (Kaldi split of ``datasets/``),
a UBM is trained and the speakers enrolled on offline features, as
``speaker-id evaluate`` does. Then every test utterance is scored twice:

* offline: ``features.extract`` (VAD against the utterance's loudest frame,
  CMVN over the whole utterance) and ``SpeakerScorer.score``;
* streamed: pushed 100 ms at a time through ``StreamScorer`` and flushed
  (VAD against the loudest frame so far, CMVN over a 3 s sliding window
  after a 1 s start-up); the score is the whole-stream average LLR.

It prints identification accuracy and raw EER both ways and the mean
absolute score difference. Then the test utterances are joined into one
conversation (speaker turns of ``--turn`` seconds or more, 0.5 s pauses)
and streamed as ``speaker-id stream`` would, with each of the ``--window`` lengths and
closed-set decisions: the share of speech time on which the live decision
names the speaker who is talking, and how long after a turn starts the new
speaker is named.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def load_split(corpus, root):
    from speaker_id.evaluation.protocols import _fsdd_split, _kaldi_split

    if corpus == "fsdd":
        return _fsdd_split(root / "fsdd" / "recordings"), 8000
    repo = Path(__file__).resolve().parent.parent
    return _kaldi_split(repo / "datasets" / "librispeech-mini"), 16000


def evaluate(corpus, root, n_components, chunk_ms, turn_s, seed, windows, margins):
    from speaker_id.evaluation import metrics
    from speaker_id.frontend.audio import load_audio
    from speaker_id.frontend.config import FeatureConfig
    from speaker_id.frontend.extraction import extract_files
    from speaker_id.models.adaptation import map_adapt, speaker_stats
    from speaker_id.frontend.normalization import apply_prior, fit_prior
    from speaker_id.scoring.scorer import SpeakerScorer
    from speaker_id.scoring.stream import StreamScorer
    from streamgmm import OnlineGMM

    started = time.perf_counter()
    split, sr = load_split(corpus, root)
    config = FeatureConfig(sr=sr)
    train = extract_files([u.path for u in split.train], config, n_jobs=2)
    config = fit_prior(config, train)  # as train-ubm: every utterance's mean shrunk towards the training mean
    train = [apply_prior(X, config) for X in train]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = OnlineGMM(n_components, covariance_type="diag", max_iter=30, random_state=0).fit(np.concatenate(train))
    models = {}
    for speaker, utts in sorted(split.enroll.items()):
        models[speaker] = map_adapt(ubm, speaker_stats(ubm, extract_files([u.path for u in utts], config, n_jobs=1)))
    names = list(models)
    offline_scorer = SpeakerScorer(ubm, models, top_c=5)
    live = StreamScorer(ubm, models, config, top_c=5, dtype=np.float64, threshold=-np.inf)
    chunk = int(round(sr * chunk_ms / 1000))

    truth, offline, streamed, audio = [], [], [], []
    for utt in split.test:
        y = load_audio(utt.path, sr)
        audio.append(y)
        truth.append(utt.speaker)
        offline.append(offline_scorer.score(extract_files([utt.path], config, n_jobs=1)[0]))
        live.reset()
        for start in range(0, len(y), chunk):
            live.push(y[start:start + chunk])
        streamed.append(live.flush().total_scores)
    offline, streamed = np.array(offline), np.array(streamed)
    labels = np.array([[t == n for n in names] for t in truth])

    def summary(scores):
        accuracy = float(np.mean([names[i] == t for i, t in zip(np.argmax(scores, axis=1), truth)]))
        return accuracy, metrics.eer(scores.ravel(), labels.ravel())[0]

    acc_off, eer_off = summary(offline)
    acc_live, eer_live = summary(streamed)
    diff = float(np.mean(np.abs(streamed - offline)))

    # --- a conversation: turns of one speaker's consecutive test utterances
    rng = np.random.default_rng(seed)
    pause = np.zeros(int(0.5 * sr), np.float32)
    turns = []
    for speaker in names:  # each speaker's test utterances, cut into turns of at least turn_s seconds
        current, length = [], 0.0
        for i in (i for i, t in enumerate(truth) if t == speaker):
            current.append(i)
            length += len(audio[i]) / sr
            if length >= turn_s:
                turns.append(current)
                current, length = [], 0.0
        if current:
            turns.append(current)
    turns = [turns[j] for j in rng.permutation(len(turns))]
    pieces, spans, t = [], [], 0.0
    for turn in turns:
        y = np.concatenate([audio[i] for i in turn])
        spans.append((t, t + len(y) / sr, truth[turn[0]]))
        pieces += [y, pause]
        t += (len(y) + len(pause)) / sr
    stream = np.concatenate(pieces)
    conversation = {}
    for window_s, margin in [(w, m) for w in windows for m in margins]:
        scorer = StreamScorer(ubm, models, config, top_c=5, window_s=window_s, switch_margin=margin,
                              threshold=-np.inf)
        right = wrong = judged = changes = 0
        span_index = 0
        first_named = {}
        for start in range(0, len(stream), chunk):
            update = scorer.push(stream[start:start + chunk])
            changes += sum(e.state == "speaker" for e in update.events)
            while span_index < len(spans) - 1 and update.time >= spans[span_index][1]:
                span_index += 1
            begin, end, speaker = spans[span_index]
            if begin <= update.time < end:
                judged += 1
                right += update.speaker == speaker
                wrong += update.state != "silence" and update.speaker != speaker
                if update.speaker == speaker and span_index not in first_named:
                    first_named[span_index] = update.time - begin
        delays = list(first_named.values())
        conversation[window_s, margin] = (right / judged, wrong / judged, changes / len(spans), len(delays), float(np.median(delays)),
                                  float(np.percentile(delays, 90)))
    print(f"{corpus}: {len(split.train)} UBM utterances, {len(names)} speakers, {len(split.test)} tests; "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return {
        "corpus": corpus, "acc_off": acc_off, "eer_off": eer_off, "acc_live": acc_live, "eer_live": eer_live,
        "diff": diff, "minutes": len(stream) / sr / 60, "turns": len(spans), "conversation": conversation,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=None, help="corpora root (default: find_dataset_root())")
    parser.add_argument("--corpus", nargs="+", choices=("fsdd", "librispeech"), default=["fsdd", "librispeech"])
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    parser.add_argument("--turn", type=float, default=4.0, help="minimum speaker turn in seconds (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=float, nargs="+", default=[1.5, 2.0, 3.0],
                        help="sliding windows to compare in the conversation, seconds (default 1.5 2 3)")
    parser.add_argument("--margin", type=float, nargs="+", default=[0.0, 0.5],
                        help="switch margins (hysteresis) to compare in the conversation (default 0 0.5)")
    args = parser.parse_args()
    from speaker_id.evaluation.corpora import find_dataset_root

    root = args.datasets or find_dataset_root()
    if root is None:
        sys.exit("speech corpora not found: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    rows = [evaluate(c, Path(root), args.components, args.chunk_ms, args.turn, args.seed, args.window, args.margin)
            for c in args.corpus]
    print(f"{'corpus':18s} {'offline acc':>11s} {'live acc':>9s} {'offline EER':>11s} {'live EER':>9s} "
          f"{'mean |dLLR|':>11s}")
    for r in rows:
        print(f"{r['corpus']:18s} {100 * r['acc_off']:10.2f}% {100 * r['acc_live']:8.2f}% {100 * r['eer_off']:10.2f}% "
              f"{100 * r['eer_live']:8.2f}% {r['diff']:11.3f}")
    print()
    print(f"{'conversation':18s} {'minutes':>7s} {'turns':>6s} {'window':>7s} {'margin':>6s} {'right':>6s} {'wrong':>6s} "
          f"{'silence':>8s} {'namings/turn':>12s} {'turns named':>12s} {'named after (median, p90)':>27s}")
    for r in rows:
        for (window_s, margin), (right, wrong, namings, named, median, p90) in r["conversation"].items():
            print(f"{r['corpus']:18s} {r['minutes']:7.1f} {r['turns']:6d} {window_s:6.1f}s {margin:6.2f} {100 * right:5.1f}% "
                  f"{100 * wrong:5.1f}% {100 * (1 - right - wrong):7.1f}% {namings:12.2f} {named:5d} of {r['turns']:<4d} "
                  f"{median:12.2f} s, {p90:.2f} s")


if __name__ == "__main__":
    main()
