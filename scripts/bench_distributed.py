"""Batch EM in one process vs on a Dask LocalCluster of 1 and 2 worker processes.

Two workloads, each run with the same settings (diagonal covariances, the
same seed, ``tol=0`` so every side runs exactly ``--iterations`` EM passes):

* librispeech-mini UBM: the features (``FeatureConfig(sr=16000)``, 60
  dimensions) of the training files of the corpus' Kaldi directory (built as
  ``scripts/evaluate_corpora.py`` builds it: ``train/wav.scp``), 128
  components. On the cluster the sources are groups of files whose features
  are extracted on the workers (a ``functools.partial`` of
  :func:`extract_group`) and kept there; the single process extracts the
  same files, then fits on the same frames in the same order.
* a generated corpus of ``--frames`` frames (``--dims`` float32 columns,
  files of about 1 M frames in a temporary folder under /tmp, removed
  afterwards), 64 components. The sources are the file paths, read with
  ``numpy.load`` on the workers in every pass (``keep_loaded=False``) or
  once (``keep_loaded=True``); the single process streams the same files
  in every pass. The files were just written, so "from disk" here means
  from the page cache.

Every configuration runs in fresh processes (the single process in a
spawned child, each cluster a new LocalCluster with ``processes=True,
threads_per_worker=1``), so the peak resident memory is that
configuration's own. Printed per configuration:

* ``s/iter``: wall time of one E-step pass (map + tree reduce + gather on
  the cluster; the M-step, on the client in both cases, is not included),
  median over the iterations;
* ``overhead``: the share of that wall time NOT spent computing,
  ``1 - (compute / n_workers) / wall``, where ``compute`` is the task seconds
  summed over the map and reduce tasks (scheduling, transfer, reduction
  and idle workers);
* ``reduce``: the statistics each source sends into the reduce,
  ``K x (2D + 1) x 8`` bytes, and in total per iteration;
* ``peak MiB``: peak resident memory (VmHWM) of the process, the largest
  worker's on the cluster;
* ``fit s``: the whole fit (feature extraction or first read, initialisation
  passes and all iterations; cluster start-up excluded);
* ``speed-up``: single-process s/iter divided by this row's;
* ``max rel. diff``: the largest elementwise relative difference between
  this model's means and the single process' (they must agree to rounding).

Dask's nanny limits BLAS and OpenMP to one thread per worker, but Numba's
parallel loops in a worker still use every core (printed at the start).

Run:  python scripts/bench_distributed.py                        (full, 7-9 minutes on 2 loaded cores)
      python scripts/bench_distributed.py --frames 2000000 --iterations 3 --files 40   (smoke, about 1 minute)
      python scripts/bench_distributed.py --skip-generated       (librispeech-mini only)
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------- sources
def extract_group(paths, sr):
    """Features of a group of audio files, one array per file, in order (run on a worker)."""
    from speaker_id.frontend.config import FeatureConfig
    from speaker_id.frontend.extraction import extract_file

    config = FeatureConfig(sr=sr)
    return [extract_file(p, config) for p in paths]


def librispeech_train_files(root, limit=None):
    """The audio files of the train part's ``wav.scp`` of librispeech-mini's Kaldi directory, by utterance id."""
    from speaker_id.evaluation.corpora import load_librispeech_dir, read_wav_scp, write_kaldi_dir

    kaldi = Path(tempfile.mkdtemp(prefix="librispeech-mini-kaldi-"))
    try:
        write_kaldi_dir(load_librispeech_dir(root / "librispeech-mini" / "train-clean-100"), kaldi / "train", kaldi)
        table = read_wav_scp(kaldi / "train" / "wav.scp", kaldi)
    finally:
        shutil.rmtree(kaldi, ignore_errors=True)
    files = [str(Path(table[utt]).resolve()) for utt in sorted(table)]  # before the folder goes
    return files[:limit] if limit else files


def write_generated(folder, n_frames, dims, frames_per_file, seed=0):
    """Write ``n_frames`` rows of a 32-cluster mixture as float32 .npy files of ``frames_per_file`` rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (32, dims)) + 10.0  # an offset: means far from zero
    scales = rng.uniform(0.5, 1.5, (32, dims))
    paths = []
    for i, start in enumerate(range(0, n_frames, frames_per_file)):
        part = np.random.default_rng([seed, i])
        m = min(frames_per_file, n_frames - start)
        labels = part.integers(0, len(centres), m)
        X = (centres[labels] + scales[labels] * part.standard_normal((m, dims), dtype=np.float32)).astype(np.float32)
        paths.append(str(Path(folder) / f"frames-{i:04d}.npy"))
        np.save(paths[-1], X)
    return paths


def _read_files(paths):
    for p in paths:
        yield np.load(p, allow_pickle=False)


# ---------------------------------------------------------------- runs
def settings(k, iterations):
    return dict(n_components=k, covariance_type="diag", max_iter=iterations, tol=0.0, random_state=0)


class TimedPasses:
    """A :class:`~streamgmm.estimators.LocalPasses` whose E-step passes are timed."""

    def __init__(self, passes):
        self.passes, self.walls = passes, []

    def scan(self, size, seed):
        return self.passes.scan(size, seed)

    def accumulate(self, model):
        started = time.perf_counter()
        stats = self.passes.accumulate(model)
        self.walls.append(time.perf_counter() - started)
        return stats

    def close(self):
        self.passes.close()


def single_process(workload, payload, k, iterations):
    """One configuration in this (fresh) process: fit on the frames in one process. Returns a result dict."""
    from streamgmm import ConvergenceWarning, OnlineGMM
    from streamgmm.estimators import LocalPasses, chunk_source

    started = time.perf_counter()
    if workload == "librispeech":
        X = [a for group in payload for a in extract_group(*group.args)]
    else:
        X = functools.partial(_read_files, payload)
    model = OnlineGMM(**settings(k, iterations))
    passes = TimedPasses(LocalPasses(chunk_source(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model._validate_params()
        model._fit_passes(lambda: passes, X)  # what fit(X) does, with the passes timed
    total = time.perf_counter() - started
    return {"walls": passes.walls, "compute": None, "n_workers": 1, "fit": total, "means": model.means_,
            "peak": _peak_rss(), "n_iter": model.n_iter_}


def _peak_rss():
    """Peak resident bytes of this process: VmHWM, the high-water mark of its own address space.

    Not ``ru_maxrss``: on Linux a spawned process (and a Dask worker) starts
    with the peak of the process that forked it, here the benchmark's.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_child(fn, *args):
    """Run ``fn(*args)`` in a freshly spawned process (its own peak memory)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _worker_info():
    import numba
    from threadpoolctl import threadpool_info

    import streamgmm  # noqa: F401  (sets OMP_WAIT_POLICY as in a fit)
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return numba.get_num_threads(), max(blas) if blas else None




def on_cluster(n_workers, sources, k, iterations, keep_loaded, report_threads=False, numba_threads=None):
    """One configuration on a new LocalCluster of ``n_workers`` processes. Returns a result dict."""
    from dask.distributed import Client, LocalCluster

    from streamgmm import ConvergenceWarning, OnlineGMM
    from streamgmm.distributed import fit

    env = {"NUMBA_NUM_THREADS": str(numba_threads)} if numba_threads else None
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50, env=env)
    with cluster, Client(cluster) as client:
        client.wait_for_workers(n_workers)
        if report_threads:
            threads = sorted(client.run(_worker_info).values())[0]
            print(f"  (each worker: {threads[0]} Numba threads, {threads[1]} BLAS thread(s))", flush=True)
        events = []
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = fit(OnlineGMM(**settings(k, iterations)), sources, client, keep_loaded=keep_loaded,
                        callback=lambda event, info: events.append((event, info)))
        total = time.perf_counter() - started
        peaks = client.run(_peak_rss)
    iterations_info = [info for event, info in events if event == "iteration"]
    return {"walls": [i["wall"] for i in iterations_info], "compute": [i["compute"] for i in iterations_info],
            "n_workers": n_workers, "fit": total, "means": model.means_, "peak": max(peaks.values()),
            "n_iter": model.n_iter_}


# ---------------------------------------------------------------- per-frame costs (for the README's cost model)
def estep_cost(k, d, n, repeats):
    """Seconds per frame of one E-step (``accumulate``) of a diagonal K-component model, float32 frames."""
    from streamgmm import ConvergenceWarning, OnlineGMM, accumulate

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (64, d))
    X = (centres[rng.integers(0, 64, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = OnlineGMM(k, covariance_type="diag", max_iter=1, random_state=0, init_size=20 * k).fit(X[:40 * k])
    accumulate(model, X[:20_000])  # warm-up: Numba's cache, BLAS threads
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        accumulate(model, X)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) / n


def estep_costs(ks, d, n, repeats):
    """Per-frame E-step cost with one thread (a worker's core) and with every core, each in a fresh process."""
    costs = {}
    for threads in (1, None):
        saved = {v: os.environ.get(v) for v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
        try:
            if threads:
                os.environ.update({v: str(threads) for v in saved})
            for k in ks:
                costs[k, threads] = in_child(estep_cost, k, d, n, repeats)
        finally:
            for v, value in saved.items():
                if value is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = value
    print(f"\nE-step cost per frame, diag, D={d}, float32 frames, {n:,} frames, median of {repeats} "
          "(one process; no M-step, no I/O):")
    print(f"{'K':>6s} {'1 thread us/frame':>18s} {'all cores us/frame':>19s} {'1 thread frames/s':>18s}")
    for k in ks:
        one, every = costs[k, 1], costs[k, None]
        print(f"{k:6d} {one * 1e6:18.3f} {every * 1e6:19.3f} {1 / one:18,.0f}")


# ---------------------------------------------------------------- table
HEADER = (f"{'workload':34s} {'side':22s} {'s/iter':>8s} {'overhead':>9s} {'reduce/src':>11s} {'reduce/iter':>12s} "
          f"{'peak MiB':>9s} {'fit s':>7s} {'speed-up':>9s} {'max rel. diff':>14s}")


def row(title, side, result, reference, k, d, n_sources):
    wall = float(np.median(result["walls"]))
    if result["compute"] is None:
        overhead = "-"
    else:
        shares = [1 - (c / result["n_workers"]) / w for c, w in zip(result["compute"], result["walls"])]
        overhead = f"{100 * float(np.median(shares)):.1f}%"
    payload = k * (2 * d + 1) * 8
    if reference is None:
        ratio, diff = "1.00x", "-"
    else:
        ratio = f"{float(np.median(reference['walls'])) / wall:.2f}x"
        a, b = result["means"], reference["means"]
        diff = f"{float(np.max(np.abs(a - b) / np.abs(b))):.1e}"
    sources = n_sources if result["compute"] is not None else 1
    return (f"{title:34s} {side:22s} {wall:8.3f} {overhead:>9s} {payload / 1024:8.1f} KiB {sources * payload / 1024:8.1f} KiB "
            f"{result['peak'] / 2**20:9.0f} {result['fit']:7.1f} {ratio:>9s} {diff:>14s}")


def run_workload(title, single, sources, k, d, iterations, workers, keep, numba_threads=None):
    print(f"\n{title}: single process ... (load average {os.getloadavg()[0]:.1f})", flush=True)
    reference = single()
    lines = [row(title, "1 process", reference, None, k, d, len(sources))]
    for keep_loaded in keep:
        for n in workers:
            side = f"{n} worker{'s' if n > 1 else ''}" + ("" if keep_loaded else ", re-read")
            print(f"{title}: {side} ... (load average {os.getloadavg()[0]:.1f})", flush=True)
            result = on_cluster(n, sources, k, iterations, keep_loaded, report_threads=(n == workers[0]),
                                numba_threads=numba_threads)
            assert result["n_iter"] == reference["n_iter"] == iterations
            lines.append(row(title, side, result, reference, k, d, len(sources)))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=None, help="corpora root (default: find_dataset_root())")
    parser.add_argument("--iterations", type=int, default=10, help="EM iterations of every fit (tol=0)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes")
    parser.add_argument("--groups", type=int, default=16, help="librispeech-mini: sources (groups of files)")
    parser.add_argument("--files", type=int, default=None, help="librispeech-mini: only the first N files")
    parser.add_argument("--components", type=int, default=128, help="librispeech-mini UBM components")
    parser.add_argument("--skip-librispeech", action="store_true")
    parser.add_argument("--frames", type=int, default=20_000_000, help="generated corpus: frames")
    parser.add_argument("--dims", type=int, default=20, help="generated corpus: dimensions")
    parser.add_argument("--frames-per-file", type=int, default=1_000_000)
    parser.add_argument("--generated-components", type=int, default=64)
    parser.add_argument("--generated-iterations", type=int, default=3)
    parser.add_argument("--skip-generated", action="store_true")
    parser.add_argument("--worker-numba-threads", type=int, default=None,
                        help="NUMBA_NUM_THREADS of the workers (default: Numba's, every core)")
    parser.add_argument("--skip-keep-loaded", action="store_true",
                        help="generated corpus: only keep_loaded=False (re-read in every pass)")
    parser.add_argument("--estep-cost", type=int, nargs="*", default=None, metavar="K",
                        help="also measure the E-step cost per frame at D=60 for these K (e.g. 256 512)")
    parser.add_argument("--estep-cost-only", action="store_true", help="only that measurement")
    args = parser.parse_args()
    if args.estep_cost_only:
        args.skip_librispeech = args.skip_generated = True

    import dask
    import distributed

    print(f"dask {dask.__version__}, distributed {distributed.__version__}; {multiprocessing.cpu_count()} cores; "
          "LocalCluster(processes=True, threads_per_worker=1); medians over iterations")
    lines = []
    if not args.skip_librispeech:
        from speaker_id.evaluation.corpora import find_dataset_root

        root = args.datasets or find_dataset_root()
        if root is None:
            sys.exit("no corpora: pass --datasets DIR or set SPEAKER_ID_DATASETS (or --skip-librispeech)")
        files = librispeech_train_files(root, args.files)
        groups = [functools.partial(extract_group, list(g), 16000)
                  for g in np.array_split(np.array(files, dtype=object), min(args.groups, len(files)))]
        title = f"librispeech-mini UBM K={args.components}"
        lines += run_workload(title, lambda: in_child(single_process, "librispeech", groups, args.components,
                                                      args.iterations),
                              groups, args.components, 60, args.iterations, args.workers, [True],
                              args.worker_numba_threads)
    if not args.skip_generated:
        folder = tempfile.mkdtemp(prefix="bench-distributed-", dir="/tmp")
        try:
            started = time.perf_counter()
            paths = write_generated(folder, args.frames, args.dims, args.frames_per_file)
            size = args.frames * args.dims * 4
            print(f"\ngenerated {args.frames:,} frames x {args.dims} float32 ({size / 1e9:.2f} GB) in "
                  f"{len(paths)} files in {time.perf_counter() - started:.0f} s", flush=True)
            k = args.generated_components
            title = f"generated {args.frames / 1e6:g}M x {args.dims} K={k}"
            keep = [False] if args.skip_keep_loaded else [False, True]
            lines += run_workload(title, lambda: in_child(single_process, "generated", paths, k,
                                                          args.generated_iterations),
                                  paths, k, args.dims, args.generated_iterations, args.workers, keep,
                                  args.worker_numba_threads)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if lines:
        print()
        print(HEADER)
        for line in lines:
            print(line)
    if args.estep_cost is not None:
        estep_costs(args.estep_cost or [256, 512], 60, 200_000, 3)


if __name__ == "__main__":
    main()
