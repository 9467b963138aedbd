"""Inter-session variability (ISV) beside MAP on a Kaldi-protocol corpus: does session compensation pay?

    python scripts/isv_experiment.py DIR [--components 256] [--ranks 50 100] [--iterations 10]
                                         [--relevance 16] [--segments N] [--seed 0] [--n-jobs 2]

DIR holds ``train/`` and ``test/`` Kaldi data directories (the ``kaldi``
protocol of :func:`speaker_id.evaluation.protocols.evaluate`: the UBM and the
session subspace are trained on ``train/``; each test speaker enrolls on the
first half of its utterances sorted by id and every other test utterance is
scored against every enrolled speaker). One UBM (``--seed``) serves every
system:

* (a) MAP + top-5 LLR: today's back end, ``map_adapt`` means scored by
  :class:`speaker_id.scoring.SpeakerScorer` (average frame LLR, top 5);
* (b) MAP + linear: ``ISV(rank=0)``, the same MAP offsets scored by the
  linear (first-order Taylor) LLR; (b2) the same, integrated scoring (the
  exact LLR of the statistics with the UBM's alignment);
* (c) ISV + linear for each rank: summed enrollment statistics as one
  session, test session compensated (``ISV.score``); (c2) integrated
  scoring; (c') each enrollment utterance its own session
  (``ISV.enroll_sessions``; not additive, shown to size the difference);
* (d) ISV + top-5 frame LLR against the compensated models, largest rank:
  per test utterance, UBM and speaker means both moved by the test's
  session offset ``sqrt(Sigma) U x_t``; (e) ISV-enrolled means scored by
  top-5 frame LLR with no test compensation.

Training speakers with one utterance teach nothing about session variability
and are skipped by ``ISV.fit``; ``--segments N`` splits such speakers'
utterances into N contiguous pieces of frames, each taken as a session (the
variability between pieces of one recording is content, not channel). If no
training speaker has two sessions, the ISV rows say so.

Prints, on raw scores, EER, minDCF (p_target 0.01 and 0.001), closed-set
identification accuracy and a 95 % paired-bootstrap interval of the EER
difference to (a) (test utterances resampled with their trials, 1000 times);
and the EER after S-norm with an honest cohort (the training speakers
enrolled the same way as the system's models; the training utterances as
Z-norm impostors), as ``evaluate`` does by default for Kaldi corpora.
Nothing is cached on disk.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from speaker_id.evaluation import metrics
from speaker_id.evaluation.protocols import _kaldi_split
from speaker_id.frontend import FeatureConfig, extract_files
from speaker_id.frontend.normalization import apply_prior, fit_prior
from speaker_id.models.adaptation import _new_model_like, map_adapt
from speaker_id.models.isv import ISV
from speaker_id.models.ubm import fit_ubm
from speaker_id.scoring import SpeakerScorer
from speaker_id.scoring.normalization import normalise_scores
from streamgmm import accumulate

P_TARGETS = (0.01, 0.001)
N_BOOTSTRAP = 1000


def segments(X, n):
    """``n`` contiguous pieces of the frames of ``X`` (fewer if ``X`` is short)."""
    return [piece for piece in np.array_split(X, n) if len(piece)]


class Utterances:
    """Features and UBM statistics of a list of utterances (what the systems score)."""

    def __init__(self, features, stats):
        self.features, self.stats = features, stats

    def __len__(self):
        return len(self.stats)


def map_top5(ubm, relevance):
    def enroll(pooled, _sessions):
        return [map_adapt(ubm, stats, relevance) for stats in pooled]

    def score(models, utterances):
        scorer = SpeakerScorer(ubm, dict(enumerate(models)), top_c=5)
        return np.array([scorer.score(X) for X in utterances.features]).reshape(len(utterances), len(models))

    return enroll, score


def isv_stats_level(isv, method, per_utterance=False):
    def enroll(pooled, sessions):
        if per_utterance:
            return np.array([isv.enroll_sessions(s) for s in sessions])
        return isv.enroll_many(pooled)

    def score(offsets, utterances):
        return isv.score(offsets, utterances.stats, method=method)

    return enroll, score


def isv_frames(isv, ubm, compensate):
    def enroll(pooled, _sessions):
        return np.sqrt(isv.ubm_variances_) * isv.enroll_many(pooled)  # speaker shifts in feature units

    def score(shifts, utterances):
        out = np.empty((len(utterances), len(shifts)))
        means = isv.session_means(utterances.stats) if compensate else None
        for t, (X, stats) in enumerate(zip(utterances.features, utterances.stats)):
            if compensate:
                moved = _new_model_like(ubm, ubm.weights_, means[t], ubm.covariances_, stats)
                centre = means[t]
            else:
                moved, centre = ubm, ubm.means_
            out[t] = SpeakerScorer(moved, dict(enumerate(centre + shifts)), top_c=5).score(X)
        return out

    return enroll, score


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="Kaldi-protocol corpus: DIR/train and DIR/test")
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--ranks", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--iterations", type=int, default=10, help="ISV EM iterations")
    parser.add_argument("--relevance", type=float, default=16.0)
    parser.add_argument("--segments", type=int, default=0,
                        help="split each single-utterance training speaker's utterance into N sessions")
    parser.add_argument("--seed", type=int, default=0, help="UBM and ISV initialisation seed")
    parser.add_argument("--n-jobs", type=int, default=2, help="feature extraction processes")
    args = parser.parse_args(argv)
    clock = time.perf_counter()

    split = _kaldi_split(args.directory)
    speakers = sorted(split.enroll)
    paths = list({u.path: None for u in split.train + [u for s in speakers for u in split.enroll[s]] + split.test})
    features = dict(zip(paths, extract_files(paths, FeatureConfig(sr=16000), n_jobs=args.n_jobs)))
    config = fit_prior(FeatureConfig(sr=16000), [features[u.path] for u in split.train])  # as evaluate
    features = {path: apply_prior(X, config) for path, X in features.items()}
    n_features = next(iter(features.values())).shape[1]
    train_speakers = sorted({u.speaker for u in split.train})
    print(f"{args.directory}: {len(split.train)} training utterances of {len(train_speakers)} speakers; "
          f"{len(speakers)} enrolled speakers, {len(split.test)} tests, {len(split.test) * len(speakers)} trials; "
          f"{n_features} features, median {np.median([len(features[u.path]) for u in split.test]):.0f} "
          f"frames per test ({time.perf_counter() - clock:.0f} s)")

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = fit_ubm([features[u.path] for u in split.train], n_components=args.components,
                      random_state=args.seed)
    print(f"UBM: {args.components} components, {ubm.n_iter_} EM iterations, seed {args.seed} "
          f"({time.perf_counter() - started:.0f} s)")

    # statistics: training sessions (for ISV and the cohort), enrollment, tests
    train_arrays: dict = {}
    for utt in split.train:
        train_arrays.setdefault(utt.speaker, []).append(features[utt.path])
    n_split = 0
    train_sessions = {}
    for speaker in train_speakers:
        arrays = train_arrays[speaker]
        if args.segments > 1 and len(arrays) == 1:
            arrays = segments(arrays[0], args.segments)
            n_split += 1
        train_sessions[speaker] = [accumulate(ubm, X) for X in arrays]
    if n_split:
        print(f"--segments {args.segments}: {n_split} single-utterance training speakers split into sessions")
    enroll_sessions = [[accumulate(ubm, features[u.path]) for u in split.enroll[s]] for s in speakers]
    enroll_pooled = [sum(sessions[1:], sessions[0]) for sessions in enroll_sessions]
    cohort_sessions = [train_sessions[s] for s in train_speakers]
    cohort_pooled = [sum(sessions[1:], sessions[0]) for sessions in cohort_sessions]
    tests = Utterances([features[u.path] for u in split.test], [accumulate(ubm, features[u.path]) for u in split.test])
    impostors = Utterances([features[u.path] for u in split.train],
                           [accumulate(ubm, features[u.path]) for u in split.train])
    truth = np.array([speakers.index(u.speaker) for u in split.test])
    labels = (truth[:, None] == np.arange(len(speakers))[None, :]).astype(int)

    rng = np.random.default_rng(0)
    resamples = rng.integers(len(tests), size=(N_BOOTSTRAP, len(tests)))

    def eer_of(scores, rows=slice(None)):
        return 100.0 * metrics.eer(scores[rows].ravel(), labels[rows].ravel())[0]

    rows, baseline = [], {}

    def run(name, system, note=""):
        enroll, score = system
        started = time.perf_counter()
        raw = score(enroll(enroll_pooled, enroll_sessions), tests)
        seconds = time.perf_counter() - started
        cohort = enroll(cohort_pooled, cohort_sessions)
        normalised = normalise_scores(raw, "snorm", impostor_scores=score(enroll(enroll_pooled, enroll_sessions),
                                                                          impostors),
                                      cohort_scores=score(cohort, tests))
        eer = eer_of(raw)
        dcf = [float(metrics.min_dcf(raw.ravel(), labels.ravel(), p_target=p)[0]) for p in P_TARGETS]
        accuracy = 100.0 * float(np.mean(np.argmax(raw, axis=1) == truth))
        boot = np.array([eer_of(raw, r) for r in resamples])
        if not baseline:
            baseline["boot"] = boot
            interval = ""
        else:
            low, high = np.percentile(boot - baseline["boot"], [2.5, 97.5])
            interval = f"[{low:+.2f}, {high:+.2f}]"
        rows.append((name, eer, dcf, accuracy, interval, eer_of(normalised), seconds, note))

    run("(a) MAP + top-5 LLR", map_top5(ubm, args.relevance))
    isv_map = ISV(rank=0, relevance_factor=args.relevance).fit(ubm)
    run("(b) MAP + linear", isv_stats_level(isv_map, "linear"))
    run("(b2) MAP + integrated", isv_stats_level(isv_map, "integrated"))

    trained = {}
    frames = sum(s.n_frames for sessions in train_sessions.values() if len(sessions) > 1 for s in sessions)
    for rank in args.ranks:
        started = time.perf_counter()
        isv = ISV(rank=rank, relevance_factor=args.relevance, max_iter=args.iterations, random_state=args.seed)
        try:
            isv.fit(ubm, train_sessions)
        except ValueError as exc:
            rows.append((f"(c) ISV R={rank}", None, None, None, None, None, time.perf_counter() - started,
                         f"not trained: {exc}"))
            continue
        trained[rank] = isv
        fit_seconds = time.perf_counter() - started
        objective = np.array(isv.objective_)
        print(f"ISV R={rank}: {isv.n_sessions_} sessions of {isv.n_speakers_} speakers "
              f"({isv.n_skipped_speakers_} single-session speakers skipped); objective per frame "
              f"{objective[0] / frames:.3f} -> {objective[-1] / frames:.3f} in {isv.n_iter_} iterations, "
              f"monotone: {bool(np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:])))}; "
              f"trained in {fit_seconds:.0f} s")
        run(f"(c) ISV R={rank} + linear", isv_stats_level(isv, "linear"), f"fit {fit_seconds:.0f} s")
        run(f"(c2) ISV R={rank} + integrated", isv_stats_level(isv, "integrated"))
        run(f"(c') ISV R={rank} + linear, per-utt. enrollment", isv_stats_level(isv, "linear", per_utterance=True))

    if trained:
        rank = max(trained)
        run(f"(d) ISV R={rank} + top-5 LLR, compensated", isv_frames(trained[rank], ubm, compensate=True))
        run(f"(e) ISV R={rank} enrollment + top-5 LLR", isv_frames(trained[rank], ubm, compensate=False))

    print()
    print(f"{'system (raw scores unless said)':<47} {'EER %':>6} {'minDCF .01':>10} {'.001':>6} {'ident %':>7} "
          f"{'EER - (a), 95 %':>16} {'S-norm EER':>10} {'seconds':>7}")
    for name, eer, dcf, accuracy, interval, snorm, seconds, note in rows:
        if eer is None:
            print(f"{name:<47} {note}")
            continue
        print(f"{name:<47} {eer:6.2f} {dcf[0]:10.3f} {dcf[1]:6.3f} {accuracy:7.2f} {interval:>16} {snorm:10.2f} "
              f"{seconds:7.1f}" + (f"   ({note})" if note else ""))
    print(f"\n{len(split.test)} tests x {len(speakers)} speakers; 'seconds' = enroll + score the trials; "
          f"total {time.perf_counter() - clock:.0f} s")


if __name__ == "__main__":
    main()
