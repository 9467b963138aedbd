"""``speaker-id demo``: the whole pipeline end to end on an embedded default.

Without a corpus, speakers are synthesised in-process with a source-filter
voice model (:mod:`speaker_id.demo.synth`) and written as WAV files to a
temporary directory; then exactly the steps a user runs happen on them:
train a UBM on background speakers, create a store, enroll the target
speakers, verify and identify held-out recordings, and report accuracy and
EER. Last, a conversation of three enrolled speakers' held-out recordings is
streamed 100 ms at a time through :class:`~speaker_id.scoring.stream.StreamScorer`,
as ``speaker-id stream`` would, printing each change of decision. With
FSDD's recordings it runs the FSDD protocol instead.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..evaluation import metrics
from ..evaluation.protocols import evaluate
from ..frontend.config import FeatureConfig
from ..models.ubm import train_ubm
from ..operations import enroll_files, identify_file
from ..store import SpeakerStore
from .synth import make_corpus

SR = 16000


def _write(directory: Path, corpus):
    paths = {}
    for utt in corpus:
        path = directory / f"{utt.utt_id}.wav"
        sf.write(path, utt.audio, SR, subtype="PCM_16")
        paths.setdefault(utt.speaker_id, []).append(path)
    return paths


def run_demo(n_speakers=8, seed=0, n_background=16, log=print):
    """Synthesise, train, enroll, identify; return a report dict (with a ``summary`` text)."""
    say = log or (lambda *a, **k: None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="speaker-id-demo-") as tmp:
        tmp = Path(tmp)
        say(f"synthesising {n_background} background and {n_speakers} enrolled speakers ...")
        # speakers 0..n_speakers-1 enroll; the next n_background only train the UBM
        corpus = make_corpus(n_speakers + n_background, 6, (2.5, 3.5), sr=SR, seed=seed)
        (tmp / "audio").mkdir()
        by_speaker = _write(tmp / "audio", corpus)
        names = sorted(by_speaker)
        targets, background = names[:n_speakers], names[n_speakers:]
        ubm_paths = [p for s in background for p in by_speaker[s]]
        say(f"training a 64-component UBM on {len(ubm_paths)} background recordings ...")
        config = FeatureConfig(sr=SR)
        ubm, config = train_ubm(ubm_paths, config, n_components=64, max_iter=30, n_jobs=1, return_config=True)
        store = SpeakerStore.create(tmp / "store", ubm, config)
        for name in targets:
            enroll_files(store, name, by_speaker[name][:4])
        say(f"enrolled {len(targets)} speakers on 4 recordings each; identifying 2 held-out recordings each:")
        rows, scores, labels = [], [], []
        for name in targets:
            for path in by_speaker[name][4:]:
                result = identify_file(store, path)
                rows.append((name, path.name, result["speaker"], result["score"]))
                for other, score in result["scores"].items():
                    scores.append(score)
                    labels.append(int(other == name))
                say(f"  {path.name:18s} spoken by {name:7s} -> identified {result['speaker']:7s} "
                    f"(score {result['score']:+.2f}) {'ok' if result['speaker'] == name else 'WRONG'}")
        accuracy = float(np.mean([truth == guess for truth, _, guess, _ in rows]))
        eer, threshold = metrics.eer(scores, labels)
        live = _live_demo(store, {name: by_speaker[name][4:] for name in targets[:3]}, say)
    seconds = time.perf_counter() - started
    summary = (f"identification accuracy {100 * accuracy:.1f} % over {len(rows)} recordings, "
               f"verification EER {100 * eer:.1f} % over {len(scores)} trials (raw scores); "
               f"live: {live['turns_named']} of {live['turns']} speaker turns named; {seconds:.1f}s in all")
    return {"n_speakers": n_speakers, "accuracy": accuracy, "eer": float(eer), "eer_threshold": float(threshold),
            "trials": len(scores), "live": live, "seconds": seconds, "summary": summary}


def _live_demo(store, held_out, say):
    """Stream a conversation of held-out recordings 100 ms at a time; print the decision changes."""
    from ..frontend.audio import load_audio
    from ..scoring.stream import StreamScorer

    pause = np.zeros(SR, np.float32)
    pieces, turns, t = [], [], 0.0
    for name, paths in held_out.items():
        y = np.concatenate([load_audio(path, SR) for path in paths])
        turns.append((t, t + len(y) / SR, name))
        pieces += [y, pause]
        t += (len(y) + len(pause)) / SR
    audio = np.concatenate(pieces)
    say(f"live: streaming a {len(audio) / SR:.0f} s conversation of {len(turns)} speakers 100 ms at a time "
        f"(turns: {', '.join(f'{name} {start:.1f}-{end:.1f} s' for start, end, name in turns)}):")
    scorer = StreamScorer.from_store(store, threshold=-np.inf)
    named, right, inside = set(), 0, 0
    step = SR // 10
    for update in [scorer.push(audio[i:i + step]) for i in range(0, len(audio), step)] + [scorer.flush()]:
        for event in update.events:
            say(f"  {event.describe()}")
        for start, end, name in turns:
            if start <= update.time <= end:
                inside += 1
                right += update.speaker == name
                if update.speaker == name:
                    named.add(name)
    say(f"  the decision named the speaker talking on {100 * right / inside:.0f} % of the updates inside the turns")
    return {"turns": len(turns), "turns_named": len(named), "right_share": right / inside,
            "seconds_of_audio": len(audio) / SR}


def run_fsdd_demo(directory, progress=True):
    """The FSDD protocol (see :func:`speaker_id.evaluation.protocols.evaluate`)."""
    return evaluate("fsdd", directory, progress=progress)
