"""Damaged and hostile files: every reader raises ValueError, and costs no more than the file's size.

Issue 10, part A.2. Valid model, statistics and speaker-store files are
mutated (member dtypes and shapes, scalars stored as vectors, members whose
header declares far more data than the file holds, extra members, nested
JSON settings, truncation, flipped bytes); loading must raise ValueError and
nothing else, and its peak memory (tracemalloc, which sees numpy's
allocations) must stay far below what the hostile headers declare.
"""

import io
import json
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speaker_id.frontend.config import FeatureConfig
from speaker_id.models.ivector_backend import IvectorBackend
from speaker_id.models.plda import LDA, PLDA
from speaker_id.store.errors import InvalidStoreError
from speaker_id.store.speaker_store import SpeakerStore
from streamgmm import OnlineGMM, SufficientStats, accumulate, load
from streamgmm.io import parse_json, read_npz

# Valid files here are a few kB; every hostile header declares at least 1 GB.
MEMORY_BOUND = 16 * 2**20
HUGE = 2**30


# ----------------------------------------------------------------- helpers
def npy(value, *, allow_pickle=False):
    """The ``.npy`` bytes of an array."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_declaring(shape, descr="<f8", data=b""):
    """``.npy`` bytes whose header declares ``shape`` of ``descr`` but which hold only ``data``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    buffer.write(data)
    return buffer.getvalue()


def members_of(path):
    """The ``.npy`` bytes of each member of an ``.npz`` file, by member name."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def zip_bytes(members, compression=zipfile.ZIP_STORED, duplicate=None):
    """An ``.npz`` archive of ``.npy`` members (and one repeated name, if asked)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name + ".npy", data)
        if duplicate in members:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns of the duplicate name: the point here
                archive.writestr(duplicate + ".npy", members[duplicate])
    return buffer.getvalue()


def attempt(read, path):
    """Call ``read(path)``; return (the result or the ValueError, peak traced memory in bytes)."""
    tracemalloc.start()
    try:
        try:
            result = read(path)
        except ValueError as exc:
            result = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def assert_refused(read, path, match=None):
    result, peak = attempt(read, path)
    assert isinstance(result, ValueError), f"{path.name} was read: {result!r}"
    if match is not None:
        assert match in str(result), str(result)
    assert peak < MEMORY_BOUND, peak
    return result


# ----------------------------------------------------------------- the files
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Valid files: a model of each covariance type (with running statistics) and statistics."""
    root = tmp_path_factory.mktemp("valid")
    X = np.random.default_rng(0).normal(size=(400, 3))
    paths = {}
    for covariance_type in ("full", "tied", "diag", "spherical"):
        model = OnlineGMM(2, covariance_type=covariance_type, random_state=0).fit(X)
        paths[covariance_type] = root / f"{covariance_type}.npz"
        model.save(paths[covariance_type])
    paths["stats"] = root / "stats.npz"
    accumulate(model, X).save(paths["stats"])
    return paths


READERS = {"model": load, "stats": SufficientStats.load}


def _valid(files, which):
    return files["diag" if which == "model" else "stats"]


# ------------------------------------------------------------ the issue's triggers
@pytest.mark.parametrize("which, name", [("model", "format_version"), ("stats", "format_version"),
                                         ("stats", "n_frames"), ("model", "n_iter"), ("model", "stats_n_frames")])
def test_a_scalar_stored_as_a_vector_is_refused(files, tmp_path, which, name):
    members = members_of(_valid(files, which))
    members[name] = npy(np.array([1, 1]))
    path = tmp_path / "vector.npz"
    path.write_bytes(zip_bytes(members))
    assert_refused(READERS[which], path, f"member {name!r} is a scalar stored as an array")


@pytest.mark.parametrize("which", ["model", "stats"])
def test_structured_and_object_members_are_refused(files, tmp_path, which):
    members = members_of(_valid(files, which))
    name = "means" if which == "model" else "first"
    path = tmp_path / "structured.npz"
    path.write_bytes(zip_bytes(dict(members, **{name: npy(np.zeros((2, 3), dtype=[("a", "<f8")]))})))
    assert_refused(READERS[which], path, f"member {name!r} has dtype")
    path.write_bytes(zip_bytes(dict(members, **{name: npy(np.array([{"evil": 1}], dtype=object), allow_pickle=True)})))
    assert_refused(READERS[which], path, "pickled objects")


@pytest.mark.parametrize("settings_text", [
    "[" * 200_000, "[" * 30_000, '{"a": ' * 20_000, "[1, 2]", '{"n_components": ', '{"n_components": [2]}',
    '{"verbose": "loud"}', '{"weights_init": [0.5, 0.5]}', '{"bogus": 1}', '{"tol": NaN}',
])
def test_nested_or_foreign_settings_json_is_refused(files, tmp_path, settings_text):
    members = members_of(files["full"])
    members["params_json"] = npy(np.array(settings_text))
    path = tmp_path / "nested.npz"
    path.write_bytes(zip_bytes(members))
    assert_refused(load, path, "params_json")


@pytest.mark.parametrize("which", ["model", "stats"])
def test_a_member_declaring_a_trillion_elements_is_refused_before_its_data(files, tmp_path, which):
    members = members_of(_valid(files, which))
    name = "weights" if which == "model" else "zeroth"
    members[name] = npy_declaring((10**12,))  # 7 TiB of float64
    path = tmp_path / "huge.npz"
    path.write_bytes(zip_bytes(members))
    assert_refused(READERS[which], path, "8000000000000 bytes")


@pytest.mark.parametrize("which", ["model", "stats"])
def test_an_extra_huge_member_is_never_read(files, tmp_path, which):
    members = members_of(_valid(files, which))
    # 256 MiB of zeros, deflated to a quarter of a megabyte
    extra = npy_declaring((2**25,), data=bytes(2**28))
    path = tmp_path / "extra.npz"
    path.write_bytes(zip_bytes(dict(members, extra=extra), zipfile.ZIP_DEFLATED))
    assert path.stat().st_size < 2**20
    result, peak = attempt(READERS[which], path)
    assert not isinstance(result, Exception), result
    assert peak < MEMORY_BOUND
    np.testing.assert_array_equal(result.zeroth if which == "stats" else result.weights_,
                                  READERS[which](_valid(files, which)).zeroth if which == "stats"
                                  else load(_valid(files, which)).weights_)


def test_consistent_but_compressed_beyond_the_file_size_is_refused(tmp_path):
    # Every shape agrees, but 64 MiB of statistics come from a 100 kB file.
    k, d = 2048, 4096
    stats = SufficientStats.zeros(k, d)
    members = {name: npy(value) for name, value in stats.to_arrays().items()}
    path = tmp_path / "bomb.npz"
    path.write_bytes(zip_bytes(members, zipfile.ZIP_DEFLATED))
    assert path.stat().st_size < 2**20
    assert_refused(SufficientStats.load, path, "more than the file's")


def test_a_model_of_zero_features_is_refused(files, tmp_path):
    members = members_of(files["diag"])
    for name in ("means", "covariances", "stats_first", "stats_second"):
        members[name] = npy(np.zeros((2, 0)))
    for name in ("shift", "stats_shift", "variance_floor"):
        members[name] = npy(np.zeros(0))
    path = tmp_path / "empty.npz"
    path.write_bytes(zip_bytes(members))
    assert_refused(load, path, "0 features")


def test_a_member_listed_twice_is_refused(files, tmp_path):
    path = tmp_path / "twice.npz"
    path.write_bytes(zip_bytes(members_of(files["stats"]), duplicate="zeroth"))
    assert_refused(SufficientStats.load, path, "twice")


def test_reading_every_member_still_refuses_pickles_and_undeclared_sizes(files, tmp_path):
    arrays = read_npz(files["stats"])
    assert set(arrays) == {"kind", "format_version", "zeroth", "first", "second", "shift", "log_likelihood", "n_frames"}
    path = tmp_path / "any.npz"
    path.write_bytes(zip_bytes({"a": npy(np.array([{"evil": 1}], dtype=object), allow_pickle=True)}))
    assert_refused(read_npz, path, "pickled objects")
    path.write_bytes(zip_bytes({"a": npy_declaring((10**10,))}))
    assert_refused(read_npz, path, "80000000000 bytes")


def test_parse_json_bounds_depth_and_length():
    assert parse_json('{"a": {"b": [1]}}', "f", max_depth=3) == {"a": {"b": [1]}}
    with pytest.raises(ValueError, match="nested 3 levels deep, more than 2"):
        parse_json('{"a": {"b": [1]}}', "f", max_depth=2)
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000, "f")
    with pytest.raises(ValueError, match="more than the 10"):
        parse_json("[" + "1," * 10 + "1]", "f", max_chars=10)


# ------------------------------------------------------------------ fuzzing
DTYPES = ["<f4", ">f8", "<f2", "<i8", "<u1", "|b1", "<c16", "<U7", "|S3", "structured", "object"]


def _as_dtype(value, dtype):
    value = np.asarray(value)
    if dtype == "structured":
        return npy(np.zeros(value.shape, dtype=[("a", "<f8"), ("b", "<i4")]))
    if dtype == "object":
        return npy(np.array([1, "x"], dtype=object), allow_pickle=True)
    if value.dtype.kind == "U" and dtype[1] not in "US":
        value = np.zeros(value.shape)
    return npy(value.astype(dtype))


def _reshaped(value, shape):
    value = np.asarray(value)
    if value.dtype.kind == "U":
        return npy(np.full(shape, str(value.reshape(-1)[0]) if value.size else ""))
    flat = value.astype(np.float64).reshape(-1)
    return npy(np.resize(flat if flat.size else np.zeros(1), shape))


def _nested(depth, leaf):
    return "[" * depth + leaf + "]" * depth


json_texts = st.one_of(
    st.integers(1, 100_000).map(lambda depth: "[" * depth),
    st.integers(1, 5_000).map(lambda depth: _nested(depth, "1")),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=8).map(json.dumps),
    st.dictionaries(st.sampled_from(["n_components", "covariance_type", "tol", "reg_covar", "verbose",
                                     "random_state", "weights_init", "block_size", "init_size", "bogus"]),
                    st.none() | st.integers(-5, 10**6) | st.floats() | st.text(max_size=4) | st.lists(st.integers(),
                                                                                                       max_size=2),
                    max_size=4).map(json.dumps),
    st.text(max_size=40),
)
shapes = st.lists(st.integers(0, 5), max_size=3).map(tuple)
huge_shapes = st.lists(st.integers(1, 10**7), min_size=1, max_size=3).map(tuple).filter(
    lambda shape: np.prod(shape, dtype=object) * 8 >= HUGE)


@st.composite
def mutations(draw, names):
    kind = draw(st.sampled_from(["dtype", "shape", "declare", "delete", "json", "duplicate", "truncate", "flip"]))
    target = draw(st.sampled_from(names + ["extra"]))
    if kind == "dtype":
        return kind, target, draw(st.sampled_from(DTYPES))
    if kind == "shape":
        return kind, target, draw(shapes)
    if kind == "declare":
        return kind, target, (draw(huge_shapes), draw(st.sampled_from(["<f8", "<U100000", "<i4"])))
    if kind == "json":
        return kind, "params_json", draw(json_texts)
    if kind in ("truncate", "flip"):
        return kind, None, (draw(st.floats(0.0, 1.0)), draw(st.integers(0, 255)))
    return kind, target, None


def _mutated_file(valid, edits, compression):
    members = members_of(valid)
    originals = {}
    with zipfile.ZipFile(valid) as archive:
        for name in members:
            originals[name] = np.lib.format.read_array(archive.open(name + ".npy"))
    duplicate, damage = None, []
    for kind, target, argument in edits:
        value = originals.get(target, np.zeros(3))
        if kind == "dtype":
            members[target] = _as_dtype(value, argument)
        elif kind == "shape":
            members[target] = _reshaped(value, argument)
        elif kind == "declare":
            shape, descr = argument
            members[target] = npy_declaring(shape, descr, data=bytes(64))
        elif kind == "json":
            members[target] = npy(np.array(argument))
        elif kind == "delete":
            members.pop(target, None)
        elif kind == "duplicate" and target in members:
            duplicate = target
        elif kind in ("truncate", "flip"):
            damage.append((kind, argument))
    data = bytearray(zip_bytes(members, compression, duplicate))
    for kind, (where, byte) in damage:
        if not data:
            break
        position = min(int(where * len(data)), len(data) - 1)
        if kind == "truncate":
            del data[position:]
        else:
            data[position] ^= byte or 1
    return bytes(data)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def _fuzz(files, tmp_path, which, edits, compression):
    valid = files[which]
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(_mutated_file(valid, edits, compression))
    read = SufficientStats.load if which == "stats" else load
    result, peak = attempt(read, path)  # any other exception fails the test
    assert peak < MEMORY_BOUND, (edits, peak)
    if not isinstance(result, ValueError):  # a harmless mutation (e.g. float32 means): a usable object
        if which == "stats":
            assert not result.non_finite_fields()
        else:
            assert np.isfinite(result.score_samples(np.zeros((2, result.n_features_in_)))).all()


_MODEL_NAMES = ["kind", "format_version", "params_json", "weights", "means", "covariances", "shift",
                "variance_floor", "n_updates", "converged", "n_iter", "lower_bound", "stats_zeroth",
                "stats_first", "stats_second", "stats_shift", "stats_log_likelihood", "stats_n_frames"]
_STATS_NAMES = ["kind", "format_version", "zeroth", "first", "second", "shift", "log_likelihood", "n_frames"]
_compression = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])


@pytest.mark.filterwarnings("ignore::UserWarning")
@FUZZ
@given(which=st.sampled_from(["full", "tied", "diag", "spherical"]), data=st.data(), compression=_compression)
def test_fuzzed_model_files_raise_only_value_error_in_bounded_memory(files, tmp_path, which, data, compression):
    edits = data.draw(st.lists(mutations(_MODEL_NAMES), min_size=1, max_size=3))
    _fuzz(files, tmp_path, which, edits, compression)


@pytest.mark.filterwarnings("ignore::UserWarning")
@FUZZ
@given(data=st.data(), compression=_compression)
def test_fuzzed_statistics_files_raise_only_value_error_in_bounded_memory(files, tmp_path, data, compression):
    edits = data.draw(st.lists(mutations(_STATS_NAMES), min_size=1, max_size=3))
    _fuzz(files, tmp_path, "stats", edits, compression)


# ------------------------------------------------------------ speaker_id files
CONFIG = FeatureConfig(n_mfcc=3, deltas=False)


@pytest.fixture(scope="module")
def ivector_store(tmp_path_factory):
    """An i-vector store with one enrolled speaker, and its back end's parts saved alone."""
    rng = np.random.default_rng(0)
    ubm = OnlineGMM(4, covariance_type="diag", random_state=0).fit(rng.normal(size=(2000, 3)))
    centres = rng.normal(size=(8, 3))
    stats = [accumulate(ubm, rng.normal(centres[s], 1.0, (60, 3))) for s in range(8) for _ in range(4)]
    backend = IvectorBackend(rank=4, lda_dim=3, max_iter=3).fit(ubm, stats, np.repeat(np.arange(8), 4))
    root = tmp_path_factory.mktemp("store")
    store = SpeakerStore.create(root / "store", ubm, CONFIG, backend=backend)
    store.enroll_stats("alice", stats[0], vectors=backend.vectors([stats[0]]))
    parts = {}
    for name, part in (("extractor", backend.extractor_), ("lda", backend.lda_), ("plda", backend.plda_)):
        parts[name] = root / f"{name}.npz"
        part.save(parts[name])
    return store.path, parts


def _speaker_file(root):
    return next((root / "speakers").glob("*.npz"))


def _replace(path, **members):
    data = members_of(path)
    data.update(members)
    path.write_bytes(zip_bytes(data, zipfile.ZIP_DEFLATED))


def test_store_files_with_an_extra_huge_member_are_read_in_bounded_memory(ivector_store, tmp_path):
    import shutil
    root = tmp_path / "store"
    shutil.copytree(ivector_store[0], root)
    extra = npy_declaring((2**25,), data=bytes(2**28))
    for path in (_speaker_file(root), root / "backend.npz"):
        _replace(path, extra=extra)

    def read(root):
        store = SpeakerStore.open(root)
        return store.speaker_enrollment("alice"), store.load_stats("alice")
    result, peak = attempt(read, root)
    assert not isinstance(result, Exception), result
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize("member", ["zeroth", "speaker_name", "ubm_fingerprint", "ivector_sum", "ivector_count"])
def test_hostile_speaker_file_members_make_the_store_refuse_the_speaker(ivector_store, tmp_path, member):
    import shutil
    root = tmp_path / "store"
    shutil.copytree(ivector_store[0], root)
    descr = "<U100000000" if member in ("speaker_name", "ubm_fingerprint") else "<f8"
    _replace(_speaker_file(root), **{member: npy_declaring((10**5,) if descr == "<f8" else (), descr)})
    error = assert_refused(lambda root: SpeakerStore.open(root).speaker_enrollment("alice"), root)
    assert isinstance(error, InvalidStoreError) and member in str(error)


@pytest.mark.parametrize("member", ["lda_dim", "scoring", "extractor.total_variability", "plda.psi", "lda.kind"])
def test_a_hostile_back_end_file_is_refused_in_bounded_memory(ivector_store, tmp_path, member):
    import shutil
    root = tmp_path / "store"
    shutil.copytree(ivector_store[0], root)
    _replace(root / "backend.npz", **{member: npy_declaring((10**9, 2))})
    error = assert_refused(lambda root: SpeakerStore.open(root).ivector_backend, root)
    assert isinstance(error, InvalidStoreError) and member in str(error)


def test_a_manifest_of_nested_brackets_is_refused(ivector_store, tmp_path):
    import shutil
    root = tmp_path / "store"
    shutil.copytree(ivector_store[0], root)
    (root / "manifest.json").write_text("[" * 100_000)
    with pytest.raises(InvalidStoreError, match="(?s)manifest.*nested too deeply.*damaged"):
        SpeakerStore.open(root)
    document = {"kind": "x", "deep": json.loads(_nested(50, "1"))}
    (root / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(InvalidStoreError, match="nested 51 levels deep"):
        SpeakerStore.open(root)


@pytest.mark.parametrize("part, cls, member", [("extractor", None, "total_variability"), ("lda", LDA, "components"),
                                               ("plda", PLDA, "transform")])
def test_back_end_part_files_refuse_hostile_members(ivector_store, tmp_path, part, cls, member):
    from speaker_id.models.ivector import IvectorExtractor
    cls = cls or IvectorExtractor
    path = tmp_path / f"{part}.npz"
    members = members_of(ivector_store[1][part])
    path.write_bytes(zip_bytes(dict(members, extra=npy_declaring((2**25,), data=bytes(2**28))), zipfile.ZIP_DEFLATED))
    result, peak = attempt(cls.load, path)
    assert isinstance(result, cls) and peak < MEMORY_BOUND
    path.write_bytes(zip_bytes(dict(members, **{member: npy_declaring((10**6, 10**3))})))
    assert_refused(cls.load, path, member)
    path.write_bytes(zip_bytes(dict(members, **{member: npy(np.zeros((2, 2), dtype=[("a", "<f8")]))})))
    assert_refused(cls.load, path, member)
