"""The initialisation sample: uniform, and the same however the rows are chunked, spread or merged."""

import numpy as np

from streamgmm.init import UniformSample, row_keys


def _rows(n=3000, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_tiny_chunks_give_the_sample_of_one_array():
    X = _rows()
    whole = UniformSample(500, seed=11)
    whole.add(X)
    chunked = UniformSample(500, seed=11)
    cuts = np.cumsum(np.random.default_rng(1).integers(1, 20, size=400))
    for part in np.split(X, cuts[cuts < len(X)]):
        chunked.add(part)
    np.testing.assert_array_equal(chunked.sample(), whole.sample())
    assert chunked.seen == whole.seen == len(X)


def test_merging_in_any_order_gives_the_same_sample():
    X = _rows()
    parts = np.array_split(X, 7)
    starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])[:-1]])
    samples = []
    for order in (range(7), reversed(range(7)), [3, 0, 6, 1, 5, 2, 4]):
        total = UniformSample(300, seed=5)
        for i in order:
            part = UniformSample(300, seed=5)
            part.add(parts[i], first_row=starts[i])
            total.merge(part)
        samples.append(total.sample())
    for other in samples[1:]:
        np.testing.assert_array_equal(other, samples[0])


def test_the_sample_is_rows_of_the_stream_in_stream_order():
    X = np.arange(2000.0)[:, None] * np.ones((1, 2))
    sample = UniformSample(250, seed=3)
    for part in np.array_split(X, 13):
        sample.add(part)
    rows = sample.sample()
    assert rows.shape == (250, 2)
    assert np.all(np.diff(rows[:, 0]) > 0)  # increasing row numbers: stream order, no repeats
    assert sample.sample().shape == (250, 2)  # asking again changes nothing
    few = UniformSample(10_000, seed=3)
    few.add(X)
    np.testing.assert_array_equal(few.sample(), X)  # fewer rows than the size: all of them


def test_every_row_is_equally_likely():
    # inclusion of each of 200 rows in a sample of 50 over 2000 seeds: binomial(2000, 1/4) each
    n, size, seeds = 200, 50, 2000
    counts = np.zeros(n)
    X = np.arange(float(n))[:, None]
    for seed in range(seeds):
        s = UniformSample(size, seed=seed)
        s.add(X)
        counts[s.sample()[:, 0].astype(int)] += 1
    expected = seeds * size / n
    sd = np.sqrt(seeds * (size / n) * (1 - size / n))
    assert np.all(np.abs(counts - expected) < 5 * sd)
    # and no trend along the stream: the first and last halves are sampled alike
    assert abs(counts[: n // 2].sum() - counts[n // 2:].sum()) < 5 * sd * np.sqrt(n)


def test_row_keys_are_distinct_and_depend_on_the_seed():
    keys = row_keys(7, 0, 100_000)
    assert np.unique(keys).size == keys.size
    np.testing.assert_array_equal(row_keys(7, 500, 10), keys[500:510])
    assert not np.array_equal(row_keys(8, 0, 100), keys[:100])
