"""The ``speaker-id`` command: argument parsing and printing only.

Exit codes
----------
0  success (``verify``: accepted; ``identify``: a speaker was found)
1  a negative decision (``verify``: rejected; ``identify``: unknown speaker)
2  usage error (bad or missing arguments)
3  bad input: a missing, unreadable or unusable audio file, an invalid or
   unknown speaker name, a corpus that does not follow the protocol
4  store problem: no store, a corrupt or foreign file, a locked store, a store
   the system does not let us read or write (permissions, a full disk)
5  cluster problem (``--workers``, ``--scheduler``): Dask is not installed, the
   scheduler cannot be reached in time, or the cluster lost its workers
70 internal error: a bug; the message says where to report it
130 interrupted (Ctrl-C); ``stream`` exits 0 on Ctrl-C or SIGTERM, its normal end for live input

Which exception gives which code is decided in one place, :func:`exit_code_for`.
Every error is one line on standard error (and, with ``--json``, one JSON
object on standard output); ``SPEAKER_ID_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from .frontend.limits import (
    MAX_CHANNELS,
    MAX_JOBS,
    MAX_SAMPLE_RATE,
    MAX_STALL_TIMEOUT_S,
    MAX_WINDOW_S,
    MIN_SAMPLE_RATE,
    LimitError,
    check_number,
)
from .frontend.paths import describe_os_error, display_path

# speaker_id.models.ubm_schedule.DEFAULT_SCHEDULE, spelt out: the CLI imports the models (Numba) only when it runs
# a command (tests/test_ubm_schedule.py checks that the two agree)
DEFAULT_UBM_SCHEDULE = "grow"
# speaker_id.models.adaptation.DEFAULT_RELEVANCE_FACTOR, spelt out for the same reason (tests/test_enroll.py checks)
DEFAULT_RELEVANCE_FACTOR = 4.0

EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE, EXIT_INPUT, EXIT_STORE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CLUSTER = 5
EXIT_INTERNAL = 70  # EX_SOFTWARE of sysexits.h

EPILOG = """exit codes: 0 success or accepted; 1 rejected or unknown speaker; 2 usage error;
3 bad input (audio, speaker name, corpus); 4 store problem; 5 cluster problem (Dask missing,
scheduler unreachable, workers lost); 70 internal error (a bug: please report it); 130 interrupted"""

#: Where an internal error asks to be reported.
REPORT_TO = "see 'Reporting problems' in the project's README.md"


class UsageError(ValueError):
    """Options that are valid one by one but not together (exit code 2)."""


# ------------------------------------------------------------ option types
def _bounded(kind, low, high, *, low_open=False, unit=""):
    """An argparse ``type``: a number of ``kind`` (int or float) within [low, high], else a usage error.

    The bounds come from :mod:`speaker_id.frontend.limits`, so an option can
    never ask for more than the library accepts.
    """
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        try:
            return check_number(value, "", low, high, integer=kind is int, low_open=low_open, unit=unit)
        except LimitError:
            bounds = f"above {low:g}{unit}" if low_open else f"at least {low:g}{unit}"
            if high != math.inf:
                bounds += f" and at most {high:g}{unit}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {bounds}") from None

    parse.__name__ = "integer" if kind is int else "number"
    return parse


def _score(text):
    """An argparse ``type`` for thresholds: any number, -inf and inf included, but not NaN."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("nan is not a threshold; give a number (or -inf to always decide)")
    return value


def _probability(text):
    """An argparse ``type``: a probability strictly between 0 and 1."""
    value = _score(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability strictly between 0 and 1")
    return value


_positive_int = _bounded(int, 1, math.inf)
_relevance = _bounded(float, 0, 1e6, low_open=True)
_sample_rate = _bounded(int, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, unit=" Hz")
_jobs = _bounded(int, 1, MAX_JOBS)
_workers = _bounded(int, 1, MAX_JOBS)
_connect_timeout = _bounded(float, 0, 3600, low_open=True, unit=" s")


def _add_common(parser, store=True, json_help="print one JSON object instead of text"):
    if store:
        parser.add_argument("--store", required=True, metavar="STORE", help="speaker store directory")
    parser.add_argument("--json", action="store_true", help=json_help)


def _add_cluster_options(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--workers", type=_workers, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes (needs pip install "
                            "'streamgmm[dask]'); features are extracted and kept on the workers")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (needs the dask extra; "
                            "the workers must read the audio at the same paths)")
    parser.add_argument("--connect-timeout", type=_connect_timeout, default=10.0, metavar="SECONDS",
                        help="give up on a --scheduler that does not answer within SECONDS (default 10)")


def _add_backend_options(parser):
    parser.add_argument("--backend", choices=("gmm", "ivector"), default="gmm",
                        help="gmm (default): MAP-adapted speaker GMMs and frame log-likelihood ratios; ivector: "
                             "i-vectors, LDA and PLDA trained on the training speakers")
    parser.add_argument("--ivector-rank", type=int, default=None, metavar="R", help="i-vector dimension (default 200)")
    parser.add_argument("--lda-dim", type=int, default=None, metavar="N",
                        help="LDA dimension: at most the training speakers - 1 and the rank (the "
                             "discriminants), or the rank itself (default: the rank, every direction)")
    parser.add_argument("--ivector-scoring", choices=("plda", "cosine"), default=None,
                        help="score i-vectors with PLDA (default) or cosine similarity")
    parser.add_argument("--vtln-warps", type=_warps, default=None, metavar="W,W",
                        help="with --backend ivector: also train the extractor, LDA and PLDA on each training "
                             "speaker heard through these vocal-tract-length warps, one pseudo-speaker per warp "
                             "(default 0.8,0.9,1.1,1.2; none for no pseudo-speakers)")


def _ivector_options(args):
    """The i-vector back end's settings; refused with ``--backend gmm``, which has none."""
    given = {"--ivector-rank": args.ivector_rank, "--lda-dim": args.lda_dim, "--ivector-scoring": args.ivector_scoring}
    if args.backend != "ivector":
        named = [flag for flag, value in given.items() if value is not None]
        if named:
            raise ValueError(f"{', '.join(named)} set(s) the i-vector back end, but --backend is gmm; "
                             "add --backend ivector or drop the option.")
        return {}
    return {"rank": 200 if args.ivector_rank is None else args.ivector_rank, "lda_dim": args.lda_dim,
            "scoring": args.ivector_scoring or "plda"}


def _warps(text):
    """The ``--vtln-warps`` value: comma-separated numbers, or ``none`` (an empty list)."""
    if text.strip().lower() == "none":
        return []
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid warps {text!r}: give numbers such as 0.9,1.1, or none") from None


def _vtln_warps(args):
    """The warps of the i-vector back end's training (``--vtln-warps``); refused with ``--backend gmm``."""
    from .frontend.augmentation import training_warps

    if args.vtln_warps is not None and args.backend != "ivector":
        raise ValueError("--vtln-warps adds pseudo-speakers to the i-vector back end's training, but --backend "
                         "is gmm; add --backend ivector or drop the option.")
    return training_warps(args.backend, args.vtln_warps)


def _top_c(args, backend):
    """Components per frame of GMM scoring (None: exact); refused for the i-vector back end, which has no frames to score."""
    if backend != "gmm":
        if args.top_c is not None or getattr(args, "exact", False):
            raise ValueError(f"--top-c and --exact set how GMM frames are scored, but this uses the {backend} "
                             "back end, which scores i-vectors; drop the option.")
        return 5
    if getattr(args, "exact", False):
        return None
    return 5 if args.top_c is None else args.top_c


def _version() -> str:
    """The installed distribution's version; the source's when run from a checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamgmm")
    except PackageNotFoundError:
        from streamgmm import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speaker-id",
        description="GMM-UBM speaker recognition: train a background model, enroll speakers, "
                    "verify and identify them from recordings.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train-ubm", help="train the universal background model of a new store",
                       description="Train a UBM on audio files, directories or a Kaldi wav.scp and "
                                   "create the store STORE with it.", epilog=EPILOG)
    _add_common(p)
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, directories, or a Kaldi wav.scp")
    p.add_argument("--components", type=_positive_int, default=128, metavar="K", help="Gaussian components (default 128)")
    p.add_argument("--sr", type=_sample_rate, default=16000,
                   help="feature sample rate in Hz; audio is resampled (default 16000)")
    p.add_argument("--max-iter", type=int, default=50, help="EM passes at most (default 50)")
    p.add_argument("--learning-method", choices=("batch", "online"), default="batch",
                   help="UBM learning: EM to convergence, or one shuffled pass of online EM (default batch)")
    p.add_argument("--ubm-schedule", choices=("grow", "full"), default=DEFAULT_UBM_SCHEDULE,
                   help="batch EM schedule of the UBM: grow (default) a small mixture on a subsample of the "
                        "frames by splitting, then a few passes over all the frames; full: k-means start and "
                        "EM over all the frames to convergence (the old behaviour)")
    p.add_argument("--batch-size", type=int, default=None, metavar="FRAMES",
                   help="frames per online EM update of the UBM (default 8000)")
    p.add_argument("--relevance-factor", type=_relevance, default=DEFAULT_RELEVANCE_FACTOR,
                   help="MAP relevance factor (default 4)")
    p.add_argument("--adapt", default="means", help="comma-separated MAP-adapted parameters among "
                   "weights,means,variances (default means)")
    p.add_argument("--jobs", type=_jobs, default=2, help="feature extraction processes (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store's UBM and drop its speakers")
    _add_cluster_options(p)
    _add_backend_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("enroll", help="enroll a speaker, or add audio to an enrolled one",
                       description="Enroll SPEAKER from AUDIO files (adds to the speaker's earlier "
                                   "audio unless --replace).", epilog=EPILOG)
    _add_common(p)
    p.add_argument("speaker", metavar="SPEAKER")
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files or directories")
    p.add_argument("--replace", action="store_true", help="forget the speaker's earlier audio")

    p = sub.add_parser("verify", help="is AUDIO spoken by SPEAKER?",
                       description="Score AUDIO against SPEAKER (average log-likelihood ratio per "
                                   "frame against the UBM) and accept when it reaches the threshold.",
                       epilog=EPILOG)
    _add_common(p)
    p.add_argument("speaker", metavar="SPEAKER")
    p.add_argument("audio", metavar="AUDIO")
    p.add_argument("--threshold", type=_score, default=0.0, help="accept at or above this score (default 0.0)")
    p.add_argument("--top-c", type=_positive_int, default=None,
                   help="components per frame in fast scoring (default 5; gmm stores)")
    p.add_argument("--exact", action="store_true", help="score with every component (slower; gmm stores)")

    p = sub.add_parser("identify", help="who speaks in AUDIO?",
                       description="Score AUDIO against every enrolled speaker and name the best; "
                                   "with --threshold, 'unknown' when the best scores below it.",
                       epilog=EPILOG)
    _add_common(p)
    p.add_argument("audio", metavar="AUDIO")
    p.add_argument("--threshold", type=_score, default=None, help="open-set threshold (default: closed set)")
    p.add_argument("--top-c", type=_positive_int, default=None,
                   help="components per frame in fast scoring (default 5; gmm stores)")
    p.add_argument("--exact", action="store_true", help="score with every component (slower; gmm stores)")

    p = sub.add_parser("stream", help="who is speaking now? score live audio as it arrives",
                       description="Score an audio stream against every enrolled speaker as it arrives "
                                   "and print one line per update: the decision over the last --window "
                                   "seconds (speaker, unknown or silence) and the best scores; decision "
                                   "changes are printed as events with their stream time. SOURCE is an "
                                   "audio file, '-' for raw PCM on standard input (e.g. "
                                   "`arecord -f S16_LE -r 16000 -c 1 -t raw | speaker-id stream --store S -`), "
                                   "or mic / mic:DEVICE for a microphone (needs the [mic] extra). Ends "
                                   "at the end of the stream or on Ctrl-C or SIGTERM (exit code 0), or when "
                                   "stdin or the microphone stalls (exit code 3), always with a summary of "
                                   "what was scored.",
                       epilog=EPILOG)
    _add_common(p, json_help="print JSON lines: one object per update, then a summary object")
    p.add_argument("source", metavar="SOURCE", help="audio file, '-' (raw PCM on stdin) or mic[:DEVICE]")
    p.add_argument("--chunk-ms", type=float, default=100.0, metavar="N", help="audio per update in ms (default 100)")
    p.add_argument("--realtime", action="store_true", help="play a file or pipe at real-time pace (default: as fast as possible)")
    p.add_argument("--rate", type=_sample_rate, default=None,
                   help="sample rate of stdin/mic audio in Hz (default: the store's)")
    p.add_argument("--channels", type=_bounded(int, 1, MAX_CHANNELS), default=1,
                   help="channels of stdin/mic audio, mixed to mono (default 1)")
    p.add_argument("--format", default="s16le", dest="sample_format",
                   help="raw PCM sample format of stdin: s16le (default), s24le, s32le, f32le, u8, ... "
                        "(arecord's S16_LE also accepted)")
    p.add_argument("--no-resample", action="store_true", help="refuse audio at another rate than the models' instead of resampling it")
    p.add_argument("--window", type=_bounded(float, 0, MAX_WINDOW_S, low_open=True, unit=" s"), default=2.0,
                   metavar="S", help="sliding window in seconds (default 2)")
    p.add_argument("--min-speech", type=_bounded(float, 0, MAX_WINDOW_S, unit=" s"), default=0.5, metavar="S",
                   help="speech needed in the window before a decision, in seconds, at most --window (default 0.5)")
    p.add_argument("--decision-interval", type=_bounded(float, 0, MAX_WINDOW_S, low_open=True, unit=" s"),
                   default=0.1, metavar="S",
                   help="decide every S seconds of stream time, whatever --chunk-ms is, so the same audio "
                        "gives the same events (default 0.1)")
    p.add_argument("--threshold", type=_score, default=0.0,
                   help="a speaker is decided when their window score reaches it, else 'unknown' "
                        "(default 0.0; --threshold=-inf always names the best speaker); the score is the "
                        "store's back end's: average frame LLR (gmm) or PLDA LLR of the window's i-vector (ivector)")
    p.add_argument("--switch-margin", type=float, default=0.5, metavar="M",
                   help="keep the decided speaker while their score is within M of the best (default 0.5)")
    p.add_argument("--top-c", type=_positive_int, default=None,
                   help="components per frame in scoring (default 5; gmm stores)")
    p.add_argument("--top", type=_positive_int, default=3, metavar="N", help="speakers listed per update (default 3)")
    p.add_argument("--stall-timeout", type=_bounded(float, 0, MAX_STALL_TIMEOUT_S, unit=" s"), default=30.0, metavar="S",
                   help="give up when stdin/mic delivers nothing for S seconds; 0 waits forever (default 30)")
    p.add_argument("--events-only", action="store_true", help="print only decision changes, not every update")

    p = sub.add_parser("list", help="list the enrolled speakers", epilog=EPILOG)
    _add_common(p)

    p = sub.add_parser("remove", help="remove an enrolled speaker", epilog=EPILOG)
    _add_common(p)
    p.add_argument("speaker", metavar="SPEAKER")

    p = sub.add_parser("evaluate", help="run a verification/identification protocol over a corpus",
                       description="Train a UBM, enroll and score a whole corpus, and print EER, "
                                   "minDCF and identification accuracy.", epilog=EPILOG)
    _add_common(p, store=False)
    p.add_argument("directory", metavar="DIR", help="corpus directory (see --protocol)")
    p.add_argument("--protocol", choices=("fsdd", "kaldi"), required=True,
                   help="fsdd: DIR holds {digit}_{speaker}_{index}.wav, index 0-4 test, 5-49 train; "
                        "kaldi: DIR/train and DIR/test Kaldi data directories")
    p.add_argument("--components", type=_positive_int, default=128, metavar="K", help="UBM components (default 128)")
    p.add_argument("--learning-method", choices=("batch", "online"), default="batch",
                   help="UBM learning: EM to convergence, or one shuffled pass of online EM (default batch)")
    p.add_argument("--ubm-schedule", choices=("grow", "full"), default=DEFAULT_UBM_SCHEDULE,
                   help="batch EM schedule of the UBM: grow (default) a small mixture on a subsample of the "
                        "frames by splitting, then a few passes over all the frames; full: k-means start and "
                        "EM over all the frames to convergence (the old behaviour)")
    p.add_argument("--batch-size", type=int, default=None, metavar="FRAMES",
                   help="frames per online EM update of the UBM (default 8000)")
    p.add_argument("--norm", choices=("none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"), default=None,
                   help="score normalisation for the normalised figures (default: snorm for kaldi; none for fsdd, "
                        "whose training speakers are its test speakers)")
    _add_backend_options(p)
    p.add_argument("--cohort", choices=("train", "enrolled"), default="train",
                   help="train (default): cohort models and Z-norm impostors from the training speakers only; "
                        "enrolled: the other enrolled speakers, which is OPTIMISTIC (they are the speakers under test)")
    p.add_argument("--top-n", type=_positive_int, default=200, metavar="N", help="cohort size of asnorm (default 200)")
    p.add_argument("--relevance-factor", type=_relevance, default=DEFAULT_RELEVANCE_FACTOR,
                   help="MAP relevance factor (default 4)")
    p.add_argument("--top-c", type=_positive_int, default=None, help="components per frame in GMM scoring (default 5)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the UBM's initialisation (default 0); figures of small corpora move "
                        "with it, so compare several")
    p.add_argument("--sr", type=_sample_rate, default=None, help="feature sample rate (default 8000 fsdd, 16000 kaldi)")
    p.add_argument("--p-target", type=_probability, nargs="+", default=[0.01, 0.001], metavar="P",
                   help="target priors of minDCF (default 0.01 0.001)")
    p.add_argument("--scores-out", metavar="FILE", help="write every trial as 'model test score target'")
    p.add_argument("--det", metavar="PNG", help="write the DET curve (needs matplotlib)")
    p.add_argument("--jobs", type=_jobs, default=2, help="feature extraction processes (default 2)")
    _add_cluster_options(p)

    p = sub.add_parser("demo", help="run the whole pipeline end to end",
                       description="Without arguments: synthesise speakers in-process, train a UBM, "
                                   "enroll, verify and identify them. With --fsdd DIR: the FSDD protocol.",
                       epilog=EPILOG)
    _add_common(p, store=False)
    p.add_argument("--fsdd", metavar="DIR", help="FSDD recordings directory to evaluate instead")
    p.add_argument("--speakers", type=int, default=8, help="synthetic speakers to enroll (default 8)")
    p.add_argument("--seed", type=int, default=0)
    return parser


# ------------------------------------------------------------------ commands
def _batch_size(args):
    from .models.ubm import (
        DEFAULT_BATCH_SIZE,  # here: importing ubm loads numba, not needed to parse
    )

    return DEFAULT_BATCH_SIZE if args.batch_size is None else args.batch_size


def _adapted_parameters(text):
    """The --adapt list, checked before any training."""
    from .models.adaptation import ADAPTABLE

    adapt = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in adapt if a not in ADAPTABLE]
    if unknown or not adapt:
        raise UsageError(f"--adapt {text!r}: give a comma-separated list of {', '.join(ADAPTABLE)} "
                         "(usually means alone)")
    return adapt


def _check_cluster_learning(args):
    if (args.workers or args.scheduler) and args.learning_method == "online":
        raise UsageError("--learning-method online is one sequential pass in one process; use --learning-method "
                         "batch with --workers or --scheduler, or leave them out.")


def cmd_train_ubm(args, out):
    from .frontend.cluster import dask_client
    from .evaluation.corpora import audio_paths, labelled_audio_paths
    from .operations import train_models
    from .frontend.config import FeatureConfig
    from .models.ivector_backend import IvectorBackend
    from .models.ubm import check_learning_method
    from .store import SpeakerStore

    ivector_options = _ivector_options(args)
    vtln_warps = _vtln_warps(args)
    adapt = _adapted_parameters(args.adapt)
    SpeakerStore.check_can_create(args.store, overwrite=args.overwrite)  # before the UBM's minutes
    if args.backend == "ivector":
        paths, speakers = labelled_audio_paths(args.audio)
        IvectorBackend(**ivector_options).check_speakers(len(set(speakers)), len(vtln_warps))
    else:
        paths = audio_paths(args.audio)
    config = FeatureConfig(sr=args.sr)
    check_learning_method(args.learning_method, _batch_size(args))
    _check_cluster_learning(args)
    with dask_client(args.scheduler, args.workers, timeout=args.connect_timeout) as client:
        ubm, backend, config = train_models(paths, config, speakers=speakers if args.backend == "ivector" else None,
                                    ivector_options=ivector_options, vtln_warps=vtln_warps, n_jobs=args.jobs,
                                    progress=not (args.quiet or args.json), n_components=args.components,
                                    max_iter=args.max_iter, learning_method=args.learning_method,
                                    batch_size=_batch_size(args), schedule=args.ubm_schedule, client=client)
    store = SpeakerStore.create(args.store, ubm, config, relevance_factor=args.relevance_factor,
                                adapt=adapt, overwrite=args.overwrite, backend=backend)
    result = {"store": str(store.path), "files": len(paths), "components": args.components,
              "learning_method": args.learning_method, "backend": args.backend, "iterations": ubm.n_iter_,
              "vtln_warps": list(vtln_warps) if args.backend == "ivector" else None,
              "ubm_schedule": args.ubm_schedule if args.learning_method == "batch" else None,
              "converged": bool(ubm.converged_), "log_likelihood_per_frame": float(ubm.lower_bound_)}
    if args.learning_method == "online":
        how = f"one online EM pass, {ubm.n_iter_} updates"
    elif ubm.schedule_log_.schedule.kind == "grow":
        first = ubm.schedule_log_.stages[0]
        how = (f"grown from {first.components} components on {first.frames} sampled frames, then "
               f"{ubm.n_iter_} EM passes over all the frames")
    else:
        how = f"{ubm.n_iter_} EM passes, {'converged' if ubm.converged_ else 'not converged'}"
    out(result, f"trained a {args.components}-component UBM on {len(paths)} files ({how}); "
                f"store created at {store.path}")
    return EXIT_OK


def cmd_enroll(args, out):
    from .evaluation.corpora import audio_paths
    from .operations import enroll_files
    from .store import SpeakerStore, check_speaker_name

    check_speaker_name(args.speaker)  # before the store and the audio are read
    store = SpeakerStore.open(args.store)
    paths = audio_paths(args.audio)
    entry = enroll_files(store, args.speaker, paths, mode="replace" if args.replace else "add")
    out(dict(entry, speaker=args.speaker),
        f"enrolled {args.speaker!r}: {entry['n_utterances']} utterances, {entry['n_frames']} speech frames in all")
    return EXIT_OK


def cmd_verify(args, out):
    from .operations import verify_file
    from .store import SpeakerStore

    store = SpeakerStore.open(args.store)
    result = verify_file(store, args.speaker, args.audio, threshold=args.threshold, top_c=_top_c(args, store.backend))
    verdict = "ACCEPT" if result["accepted"] else "REJECT"
    out(result, f"{verdict} {args.speaker!r}: score {result['score']:+.3f} (threshold {args.threshold:+.3f})")
    return EXIT_OK if result["accepted"] else EXIT_NEGATIVE


def cmd_identify(args, out):
    from .operations import identify_file
    from .store import SpeakerStore

    store = SpeakerStore.open(args.store)
    result = identify_file(store, args.audio, threshold=args.threshold, top_c=_top_c(args, store.backend))
    ranking = ", ".join(f"{name} {score:+.3f}" for name, score in list(result["scores"].items())[:5])
    who = result["speaker"] if result["speaker"] is not None else "unknown"
    out(result, f"{who} (score {result['score']:+.3f}); best: {ranking}")
    return EXIT_OK if result["speaker"] is not None else EXIT_NEGATIVE


class _Terminated(Exception):
    """SIGTERM asked a stream to stop."""


class _StopOnSigterm:
    """SIGTERM handler of ``stream``: a clean stop, with the end summary, instead of death.

    While the stream waits for audio the signal interrupts the wait at once;
    while a chunk is being scored, the stream stops right after it, so the
    scorer is never left half-updated.
    """

    def __init__(self):
        self.requested = False
        self.busy = False

    def __call__(self, signum, frame):
        self.requested = True
        if not self.busy:
            raise _Terminated()

    def check(self):
        if self.requested:
            raise _Terminated()


@contextmanager
def _sigterm_handled(handler):
    """Install ``handler`` for SIGTERM while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_stream(args, out):
    from .frontend.sources import open_source
    from .scoring.stream import StreamScorer
    from .store import SpeakerStore

    if args.min_speech > args.window:
        raise UsageError(f"--min-speech {args.min_speech:g} is longer than --window {args.window:g}: the window "
                         "could never hold enough speech to decide; lower --min-speech or lengthen --window")
    store = SpeakerStore.open(args.store)
    config = store.feature_config
    source = open_source(args.source, chunk_ms=args.chunk_ms, realtime=args.realtime, rate=args.rate,
                         channels=args.channels, sample_format=args.sample_format,
                         stall_timeout=args.stall_timeout or None, default_rate=config.sr)
    with source:
        scorer = StreamScorer.from_store(store, sr=source.sr, resample=not args.no_resample, window_s=args.window,
                                         min_speech_s=args.min_speech, decision_interval_s=args.decision_interval,
                                         threshold=args.threshold, switch_margin=args.switch_margin,
                                         top_c=_top_c(args, store.backend))
        if source.sr != config.sr and not args.json:
            print(f"# {source.name}: {source.sr} Hz, resampled to the models' {config.sr} Hz", file=sys.stderr)
        reason, failure, last, n_events = _run_stream(source, scorer, args)
    _print_stream_summary(source, scorer, last, n_events, reason, args, out)
    if failure is not None:
        raise failure
    return EXIT_OK


def _run_stream(source, scorer, args):
    """Score ``source`` until it ends, stalls, Ctrl-C or SIGTERM; return (reason, failure, last update, events)."""
    from .frontend.sources import SourceError, StallError

    reason, failure, n_events = "end of stream", None, 0
    stop = _StopOnSigterm()
    with _sigterm_handled(stop):
        try:
            for chunk in source:
                stop.busy = True
                update = scorer.push(chunk)
                n_events += len(update.events)
                _show_update(update, args)
                stop.busy = False
                stop.check()
        except KeyboardInterrupt:
            reason = "interrupted"
        except _Terminated:
            reason = "terminated"
        except SourceError as exc:  # the input stalled or failed: report what was scored, then the error
            reason, failure = ("stalled" if isinstance(exc, StallError) else "input failed"), exc
        stop.busy = True  # from here on, SIGTERM waits for the summary
        last = scorer.flush()
        n_events += len(last.events)
        _show_update(last, args)
    return reason, failure, last, n_events


def _show_update(update, args):
    if args.events_only and not update.events:
        return
    if args.json:
        print(json.dumps(update.to_dict(args.top)), flush=True)
        return
    for event in update.events:
        print(f"# {event.describe()}", flush=True)
    if not args.events_only:
        print(update.describe(args.top), flush=True)


def _print_stream_summary(source, scorer, last, n_events, reason, args, out):
    extractor = scorer.extractor
    notes = list(source.notes)
    if extractor.n_nonfinite_:
        notes.append(f"{extractor.n_nonfinite_} NaN or infinite samples were replaced by silence")
    if extractor.n_out_of_range_:
        notes.append(f"{extractor.n_out_of_range_} samples far beyond full scale (invalid floats) were replaced by "
                     "silence; check --format")
    if extractor.n_clipped_:
        notes.append(f"{extractor.n_clipped_} samples at full scale: the input is clipping; lower the gain")
    for note in notes:
        print(f"speaker-id: note: {note}", file=sys.stderr)
    ranking = last.ranking(args.top, by="total")
    summary = {"end": reason, "audio_seconds": round(extractor.time_s, 3), "speech_frames": last.total_frames,
               "n_events": n_events, "total": [{"speaker": n, "score": t} for n, _, t in ranking], "notes": notes}
    best = ", ".join(f"{n} {t:+.3f}" for n, _, t in ranking if t is not None) or "no speech"
    out(summary, f"# {reason} after {extractor.time_s:.2f} s of audio, {last.total_frames} speech frames; "
                 f"whole-stream scores: {best}")


def cmd_list(args, out):
    from .store import SpeakerStore

    store = SpeakerStore.open(args.store)
    entries = [store.info(name) for name in store.speakers()]
    lines = [f"{e['name']}\t{e['n_utterances']} utterances\t{e['n_frames']} frames\tupdated {e['updated']}"
             for e in entries]
    out({"store": str(store.path), "speakers": entries},
        "\n".join(lines) if lines else f"no speakers enrolled in {store.path}")
    return EXIT_OK


def cmd_remove(args, out):
    from .store import SpeakerStore

    store = SpeakerStore.open(args.store)
    store.remove(args.speaker)
    out({"removed": args.speaker}, f"removed {args.speaker!r}")
    return EXIT_OK


def _print_evaluation(result, out):
    summary = result.summary()
    def dcf(values):
        return ", ".join(f"{value:.4f} at p_target {p:g}" for p, value in values.items())

    if result.norm == "none":
        normalised = "no normalisation"
    else:
        normalised = f"{result.norm}, cohort {result.cohort} ({result.n_cohort_speakers} speakers)"
    text = (
        f"protocol {result.protocol}: {result.n_speakers} speakers, {result.n_train_utterances} UBM "
        f"utterances, {result.n_enroll_utterances} enrollment, {result.n_test_utterances} test; "
        f"{summary['n_trials']} trials ({summary['n_target_trials']} target)\n"
        f"raw scores:        EER {100 * result.raw_eer:5.2f} %, minDCF {dcf(result.raw_min_dcf)}, "
        f"identification {100 * result.accuracy:.2f} % (closed set)\n"
        f"normalised scores: EER {100 * result.eer:5.2f} %, minDCF {dcf(result.min_dcf)}, "
        f"identification {100 * result.norm_accuracy:.2f} % ({normalised})\n"
        f"time: features {result.seconds['features']:.1f}s, UBM {result.seconds['ubm']:.1f}s "
        f"({result.settings['ubm_iterations']} passes), {result.settings['backend']} back end "
        f"{result.seconds['backend']:.1f}s, enroll+score {result.seconds['enroll_and_score']:.1f}s, "
        f"normalisation {result.seconds['normalisation']:.1f}s"
    )
    out(summary, text)


def _check_output_file(path, option):
    """Refuse an output path that cannot be written, before the work that would fill it.

    Its directory must exist and accept a new file (tried with a temporary
    file, which also catches read-only file systems), and the path must not
    be a directory.
    """
    target = Path(path)
    directory = target.parent
    shown = display_path(path)
    if target.is_dir():
        raise ValueError(f"{option} {shown}: is a directory; give a file name inside it")
    if not directory.is_dir():
        raise ValueError(f"{option} {shown}: the directory {display_path(directory)} does not exist; create it "
                         f"(mkdir -p {display_path(directory)}) or choose another path")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {shown}: cannot write in {display_path(directory)}: "
                         f"{describe_os_error(exc)}") from None


def cmd_evaluate(args, out):
    import importlib.util

    from .evaluation.protocols import evaluate
    from .frontend.cluster import dask_client

    ivector_options = _ivector_options(args)
    vtln_warps = _vtln_warps(args)
    _check_cluster_learning(args)
    for option, path in (("--scores-out", args.scores_out), ("--det", args.det)):
        if path:
            _check_output_file(path, option)
    if args.det and importlib.util.find_spec("matplotlib") is None:
        raise ImportError("--det needs matplotlib, which is not installed: pip install 'streamgmm[plot]', "
                          "or leave out --det")
    with dask_client(args.scheduler, args.workers, timeout=args.connect_timeout) as client:
        result = evaluate(args.protocol, args.directory, n_components=args.components, sr=args.sr,
                          learning_method=args.learning_method, batch_size=_batch_size(args),
                          ubm_schedule=args.ubm_schedule,
                          relevance_factor=args.relevance_factor, top_c=_top_c(args, args.backend), norm=args.norm,
                          cohort=args.cohort, top_n=args.top_n, n_jobs=args.jobs, p_targets=args.p_target,
                          backend=args.backend, ivector_options=ivector_options, vtln_warps=vtln_warps,
                          random_state=args.seed,
                          client=client)
    if args.scores_out:
        result.write_trials(args.scores_out)
    if args.det:
        from .evaluation import plots

        scores = [t[2] for t in result.trials]
        labels = [t[3] for t in result.trials]
        system = ("GMM-UBM" if args.backend == "gmm"
                  else f"i-vector {ivector_options['rank']} + {ivector_options['scoring']}")
        plots.plot_det({f"{system}, {args.components} components ({result.norm})": (scores, labels)}, args.det)
    _print_evaluation(result, out)
    return EXIT_OK


def cmd_demo(args, out):
    from .demo import run_demo, run_fsdd_demo

    if args.fsdd:
        result = run_fsdd_demo(args.fsdd, progress=not args.json)
        _print_evaluation(result, out)
        return EXIT_OK
    report = run_demo(n_speakers=args.speakers, seed=args.seed, log=None if args.json else print)
    out(report, report["summary"])
    return EXIT_OK


COMMANDS = {
    "train-ubm": cmd_train_ubm, "enroll": cmd_enroll, "verify": cmd_verify, "identify": cmd_identify,
    "stream": cmd_stream, "list": cmd_list, "remove": cmd_remove, "evaluate": cmd_evaluate, "demo": cmd_demo,
}


def exit_code_for(exc) -> int:
    """The exit code of an exception that ended a command: the one place classes of errors map to codes.

    Usage errors -> 2; bad input (audio, corpus, invalid or unknown speaker
    names, other files the user named) -> 3; store problems (damaged,
    foreign, locked, unreadable or unwritable store) -> 4; the cluster
    (Dask missing, scheduler unreachable, workers lost) -> 5; anything else
    is a bug -> 70.
    """
    from .frontend.cluster import ClusterError
    from .store import InvalidSpeakerNameError, StoreError, UnknownSpeakerError

    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, ClusterError) or type(exc).__name__ == "KilledWorker":  # dask's: a task killed its workers
        return EXIT_CLUSTER
    if isinstance(exc, (InvalidSpeakerNameError, UnknownSpeakerError)):
        return EXIT_INPUT
    if isinstance(exc, StoreError):
        return EXIT_STORE
    if isinstance(exc, (ValueError, OSError, ImportError)):
        return EXIT_INPUT
    return EXIT_INTERNAL


def _message(exc, code) -> str:
    """One printable line saying what went wrong (and, for a bug, where to report it)."""
    from .store import StoreError

    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and not isinstance(exc, StoreError) and exc.filename is not None:
        text = f"{display_path(exc.filename)}: {describe_os_error(exc)}"
    else:
        text = str(exc)
    if code == EXIT_INTERNAL:
        text = (f"{type(exc).__name__}: {text or 'no message'}; this is a bug: please report it with the command "
                f"you ran ({REPORT_TO}); SPEAKER_ID_DEBUG=1 prints the traceback")
    return _printable(" ".join(text.split()))  # one line


def _printable(text) -> str:
    """``text`` with the undecodable bytes of file names (lone surrogates) shown as ``\\udcNN``, never failing."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def out(payload, text):
        if args.json:
            print(json.dumps(payload, default=str))
        else:
            print(_printable(text))

    try:
        return COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        print("speaker-id: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `speaker-id stream ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        return _report(exc, args.json)


def _report(exc, as_json) -> int:
    """Print one line for the exception that ended a command; return its exit code."""
    code = exit_code_for(exc)
    message = _message(exc, code)
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    kind = "internal error" if code == EXIT_INTERNAL else "error"
    print(f"speaker-id: {kind}: {message}", file=sys.stderr)
    if os.environ.get("SPEAKER_ID_DEBUG", "") not in ("", "0"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
