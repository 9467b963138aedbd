"""Online density tracking and change detection on a generated multichannel sensor signal.

Six sensor channels, each a sinusoid plus noise that is shared between
channels (correlated), sampled at 200 Hz for 500 s. Four regime changes
happen at known times:

* 100.4 s  offset: channels 0 and 1 step up (a sensor offset)
* 200.7 s  oscillation: a strong 13 Hz vibration appears on channel 3
* 300.2 s  variance: the noise on channels 4 and 5 grows 3 times
* 400.5 s  correlation: the noise shared by channels 0 and 2 flips sign

Each frame is one multichannel sample (6 features); each chunk is one second
(200 frames). An ``OnlineGMM`` with forgetting learns the stream chunk by
chunk, and a :class:`streamgmm.NoveltyTracker` scores every chunk before the
model learns it. The script prints each alarm with its delay after the true
change (measured to the end of the chunk that raised it, when the alarm can
first be known), the false alarms, a summary line, and writes a plot.

Run:  python scripts/track_density.py [--out density_tracking.png] [--seed 0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from streamgmm import NoveltyTracker, OnlineGMM

FS = 200                 # samples per second
CHUNK_SECONDS = 1.0      # one chunk = one second = 200 frames
DURATION = 500.0         # seconds
FREQUENCIES = np.array([1.1, 2.3, 3.7, 5.3, 7.9, 9.7])  # Hz, one per channel
AMPLITUDES = np.array([1.0, 0.8, 1.2, 0.9, 1.1, 0.7])
CHANGES = (
    (100.4, "offset: channels 0-1 step up by 1.0"),
    (200.7, "oscillation: 13 Hz vibration on channel 3"),
    (300.2, "variance: noise on channels 4-5 grows 3 times"),
    (400.5, "correlation: shared noise of channels 0 and 2 flips sign"),
)
MAX_DELAY_CHUNKS = 5     # alarms starting later than this after a change are false alarms


def make_signal(seed=0):
    """The sensor signal and the times of its regime changes.

    Parameters
    ----------
    seed : int

    Returns
    -------
    signal : ndarray of shape (n_samples, 6)
        ``DURATION * FS`` samples of six channels.
    change_times : ndarray of shape (4,)
        Seconds at which each regime in ``CHANGES`` starts.
    """
    rng = np.random.default_rng(seed)
    n = int(DURATION * FS)
    t = np.arange(n) / FS
    change_times = np.array([time for time, _ in CHANGES])
    after = [t >= time for time in change_times]
    phases = rng.uniform(0, 2 * np.pi, len(FREQUENCIES))
    signal = AMPLITUDES * np.sin(2 * np.pi * FREQUENCIES * t[:, None] + phases)

    # noise: independent per channel plus two shared factors (correlations)
    own = 0.3 * rng.standard_normal((n, 6))
    own[:, 4:] *= np.where(after[2], 3.0, 1.0)[:, None]
    factors = rng.standard_normal((n, 2))
    loading_a = np.array([1.5, 0.3, 1.5, 0.0, 0.0, 0.0])   # channels 0, 1, 2
    loading_b = np.array([0.0, 0.0, 0.0, 0.3, 0.3, 0.3])   # channels 3, 4, 5
    sign = np.where(after[3], -1.0, 1.0)
    shared_a = factors[:, :1] * loading_a
    shared_a[:, 2] *= sign                                  # channel 2 anti-correlated with 0
    signal += own + shared_a + factors[:, 1:] * loading_b

    signal[after[0], :2] += 1.0
    signal[after[1], 3] += 2.0 * np.sin(2 * np.pi * 13.0 * t[after[1]])
    return signal, change_times


def track(signal, *, forgetting=0.1, threshold=4.0, n_components=4, seed=0):
    """Learn the signal chunk by chunk and score every chunk before learning it.

    Parameters
    ----------
    signal : ndarray of shape (n_samples, n_channels)
        Each sample is one frame.
    forgetting : float
        The model's constant online step (it remembers about ``1 /
        forgetting`` chunks).
    threshold : float
        Novelty threshold, in robust standard deviations of the chunk NLL.
    n_components : int
    seed : int
        ``random_state`` of the model.

    Returns
    -------
    results : list of NoveltyResult
        One per chunk of ``CHUNK_SECONDS``.
    """
    model = OnlineGMM(n_components, covariance_type="full", forgetting=forgetting, random_state=seed)
    tracker = NoveltyTracker(model, threshold=threshold)
    size = int(CHUNK_SECONDS * FS)
    return [tracker.update(signal[start:start + size]) for start in range(0, len(signal), size)]


@dataclass(frozen=True)
class Evaluation:
    """Alarms matched to the true changes.

    Attributes
    ----------
    delays : list of float or None
        Per true change: seconds from the change to the end of the first
        flagged chunk at most ``MAX_DELAY_CHUNKS`` chunks after the chunk
        holding the change (None if missed).
    false_alarms : list of int
        Chunk indices where an alarm started (the previous chunk was not
        flagged) outside every change's detection window.
    alarm_chunks : list of int
        Every flagged chunk.
    """

    delays: list
    false_alarms: list
    alarm_chunks: list

    @property
    def n_detected(self):
        return sum(d is not None for d in self.delays)


def evaluate(results, change_times):
    """Match the tracker's flags to the true change times.

    An alarm is a run of consecutive flagged chunks. A change is detected by
    the first flagged chunk that ends after it and lies at most
    ``MAX_DELAY_CHUNKS`` chunks later; alarms starting in that window belong
    to the change. Every other alarm is a false alarm.

    Parameters
    ----------
    results : list of NoveltyResult
    change_times : ndarray of shape (n_changes,)
        Seconds.

    Returns
    -------
    Evaluation
    """
    flagged = [r.index for r in results if r.is_novel]
    onsets = [i for i in flagged if i - 1 not in flagged]
    windows = [range(int(time // CHUNK_SECONDS), int(time // CHUNK_SECONDS) + MAX_DELAY_CHUNKS + 1)
               for time in change_times]
    delays = []
    for time, window in zip(change_times, windows):
        hits = [i for i in flagged if i in window]
        delays.append((hits[0] + 1) * CHUNK_SECONDS - time if hits else None)
    false_alarms = [i for i in onsets if not any(i in window for window in windows)]
    return Evaluation(delays, false_alarms, flagged)


def report(evaluation, change_times):
    """Print each change with its detection delay, the false alarms and a summary line."""
    for (time, description), delay in zip(CHANGES, evaluation.delays):
        found = f"detected after {delay:4.1f} s" if delay is not None else "MISSED"
        print(f"change at {time:6.1f} s  {found}   {description}")
    for i in evaluation.false_alarms:
        print(f"false alarm at chunk {i} ({i * CHUNK_SECONDS:.0f}-{(i + 1) * CHUNK_SECONDS:.0f} s)")
    found = [d for d in evaluation.delays if d is not None]
    mean_delay = f"{np.mean(found):.1f} s" if found else "n/a"
    print(
        f"summary: {evaluation.n_detected}/{len(change_times)} changes detected, "
        f"mean delay {mean_delay}, {len(evaluation.false_alarms)} false alarm(s), "
        f"{len(evaluation.alarm_chunks)} flagged chunk(s) of {int(DURATION / CHUNK_SECONDS)}"
    )


def plot(signal, results, change_times, threshold, path):
    """Write the signal, the chunk NLL with its baseline and the novelty score to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = np.array([(r.index + 1) * CHUNK_SECONDS for r in results])
    nll = np.array([r.nll for r in results])
    baseline = np.array([r.baseline for r in results])
    spread = np.array([r.spread for r in results])
    novelty = np.array([r.novelty for r in results])
    flagged = np.array([r.is_novel for r in results])

    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True, height_ratios=[2, 1, 1])
    for ax in axes:
        for i, time in enumerate(change_times):
            ax.axvline(time, color="0.3", lw=0.8, ls=":", label=None if i else "true change")

    t = np.arange(len(signal)) / FS
    step = 4  # 50 points per second are plenty at this scale
    first = signal[: int(10 * FS)]  # each channel scaled by its first 10 s
    scaled = (signal - first.mean(axis=0)) / first.std(axis=0)
    for c in range(signal.shape[1]):
        axes[0].plot(t[::step], scaled[::step, c] - 8.0 * c, lw=0.3)
    axes[0].set_yticks(-8.0 * np.arange(signal.shape[1]), [f"ch {c}" for c in range(signal.shape[1])])
    axes[0].set_title("signal: 6 channels at 200 Hz, each scaled by its first 10 s; one chunk = 1 s = 200 frames")

    axes[1].plot(ends, nll, lw=0.8, label="chunk NLL before learning")
    axes[1].plot(ends, baseline, lw=1.0, label="baseline")
    axes[1].plot(ends, baseline + threshold * spread, lw=0.8, ls="--", label="baseline + threshold x spread")
    finite = nll[np.isfinite(nll)]
    axes[1].set_ylim(np.percentile(finite, 1) - 0.5, np.percentile(finite, 99.5) + 1.0)
    axes[1].set_ylabel("nats / frame")
    axes[1].legend(loc="upper left", fontsize=8)

    axes[2].plot(ends, novelty, lw=0.8, label="novelty")
    axes[2].axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    axes[2].plot(ends[flagged], novelty[flagged], "r.", ms=5, label="flagged chunk")
    axes[2].set_yscale("symlog", linthresh=5.0)
    axes[2].set_ylabel("(NLL - baseline) / spread")
    axes[2].set_xlabel("time (s); chunks plotted at their end, when their result is known")
    axes[2].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="density_tracking.png", help="PNG to write (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="signal and model seed (default %(default)s)")
    parser.add_argument("--forgetting", type=float, default=0.1, help="model step (default %(default)s)")
    parser.add_argument("--threshold", type=float, default=4.0, help="novelty threshold (default %(default)s)")
    args = parser.parse_args(argv)

    signal, change_times = make_signal(args.seed)
    results = track(signal, forgetting=args.forgetting, threshold=args.threshold, seed=args.seed)
    evaluation = evaluate(results, change_times)
    report(evaluation, change_times)
    plot(signal, results, change_times, args.threshold, args.out)
    print(f"plot written to {args.out}")
    return evaluation


if __name__ == "__main__":
    main()
