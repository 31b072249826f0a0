"""safetensors in pure NumPy: byte-identical to the reference, and no crafted file gets past the reader."""

import os
import pickle
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import SafetensorError
from safetensors.numpy import load as ref_load
from safetensors.numpy import load_file as ref_load_file
from safetensors.numpy import save as ref_save
from safetensors.numpy import save_file as ref_save_file

from bptt import BpttError, load_safetensors, save_safetensors
from bptt.io.safetensors_io import read_safetensors
from tests.helpers import Evil, assert_same, craft, entry, sample_arrays


@pytest.fixture
def good(tmp_path):
    """A valid file and its arrays."""
    path = tmp_path / "weights.safetensors"
    arrays = sample_arrays()
    save_safetensors(path, arrays, {"scheme": "BIO"})
    return path, arrays


def test_round_trip_bit_exact(good):
    path, arrays = good
    got, meta = load_safetensors(path)
    assert_same(got, arrays)
    assert meta == {"scheme": "BIO"}
    assert list(got) == sorted(arrays)
    assert all(a.flags.c_contiguous and a.flags.writeable and a.dtype.isnative for a in got.values())


def test_bytes_identical_to_reference(tmp_path):
    arrays = sample_arrays()
    path = tmp_path / "a.safetensors"
    save_safetensors(path, arrays, {"k": "v"})
    assert path.read_bytes() == ref_save(arrays, metadata={"k": "v"})
    save_safetensors(path, arrays)
    assert path.read_bytes() == ref_save(arrays)


def test_reference_reads_ours_and_we_read_theirs(tmp_path):
    arrays = sample_arrays()
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    save_safetensors(ours, arrays)
    assert_same(ref_load_file(ours), arrays)
    ref_save_file(arrays, theirs, metadata={"format": "np"})
    got, meta = load_safetensors(theirs)
    assert_same(got, arrays)
    assert meta == {"format": "np"}


def test_non_contiguous_and_big_endian_inputs_are_stored_little_endian_c_order(tmp_path):
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    arrays = {"t": a.T, "be": a.astype(">f4"), "s": np.float32(2.5)}
    save_safetensors(tmp_path / "x.safetensors", arrays)
    got, _ = load_safetensors(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(got["t"], a.T)
    assert got["be"].dtype == np.float32 and got["be"].dtype.isnative
    np.testing.assert_array_equal(got["be"], a)
    assert got["s"].shape == () and got["s"] == np.float32(2.5)


def test_a_digested_file_reads_back_and_any_changed_byte_of_it_is_refused(tmp_path):
    """digest=True: the file round-trips (the reference reads it too), and a change in any tensor byte or
    metadata value, sizes kept, is refused in one line naming the file; without the key nothing is checked."""
    arrays = {**sample_arrays(), "be": np.arange(3, dtype=">f8")}
    path = tmp_path / "m.safetensors"
    save_safetensors(path, arrays, {"cell": "lstm"}, digest=True)
    got, meta = load_safetensors(path)
    assert_same(got, {**arrays, "be": arrays["be"].astype("<f8")})
    assert meta["cell"] == "lstm" and len(meta["tensors_sha256"]) == 64
    assert_same(ref_load_file(path), got)
    raw = path.read_bytes()
    header_end = 8 + struct.unpack("<Q", raw[:8])[0]
    at = raw.index(b'"lstm"', 0, header_end) + 1
    for where, byte in (
        (len(raw) - 1, raw[-1] ^ 1),
        (header_end + 5, raw[header_end + 5] ^ 0x80),
        (at, ord("g")),
    ):
        path.write_bytes(raw[:where] + bytes([byte]) + raw[where + 1 :])
        with pytest.raises(BpttError, match=r"m\.safetensors: .*tensors_sha256 does not match.*damaged") as e:
            load_safetensors(path)
        assert "\n" not in str(e.value)
    save_safetensors(path, arrays, {"cell": "lstm"})  # no digest: read as it is
    assert "tensors_sha256" not in load_safetensors(path)[1]


@pytest.mark.parametrize(
    "arrays, metadata, match",
    [
        ([np.zeros(2)], None, "arrays: expected a dict"),
        ({"": np.zeros(2)}, None, "tensor name ''"),
        ({"a\nb": np.zeros(2)}, None, "printable"),
        ({"__metadata__": np.zeros(2)}, None, "__metadata__"),
        ({"x": [1.0, 2.0]}, None, r"arrays\['x'\]: expected a NumPy array"),
        ({"x": np.zeros(2, complex)}, None, "no safetensors equivalent"),
        ({"x": np.array(["a"])}, None, "no safetensors equivalent"),
        ({"x": np.zeros(2)}, {"k": 1}, "metadata: expected str -> str"),
        ({"x": np.zeros(2)}, {"k": "\ud800"}, "metadata"),
    ],
)
def test_bad_arguments_to_save(tmp_path, arrays, metadata, match):
    path = tmp_path / "x.safetensors"
    with pytest.raises(BpttError, match=match):
        save_safetensors(path, arrays, metadata)
    assert os.listdir(tmp_path) == []  # nothing written, no temporary left


def test_save_into_missing_directory_names_the_file(tmp_path):
    path = tmp_path / "nope" / "x.safetensors"
    with pytest.raises(BpttError, match=f"{path}: cannot write"):
        save_safetensors(path, {"x": np.zeros(2)})


# ------------------------------------------------------------------------------------------- crafted files


BAD_FILES = {
    "empty file": (b"", "not a safetensors file"),
    "shorter than the length": (b"\x08\x00\x00", "not a safetensors file"),
    "header length huge": (struct.pack("<Q", 2**63) + b"{}      ", "over the 100000000 allowed"),
    "header length past the end": (craft({}, length=64), "declares a 64-byte header but only 8 bytes follow"),
    "header not JSON": (craft(b"{nope}  "), "header: not valid JSON"),
    "header not UTF-8": (craft(b'{"\xff":1}'), "header: not UTF-8"),
    "header a JSON list": (craft([]), "header is a JSON list"),
    "NaN in header": (craft(b'{"a": NaN}'), "NaN is not valid JSON"),
    "deep nesting": (craft(b"[" * 100_000), "nests too deeply|not valid JSON"),
    "repeated key": (
        craft(
            b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
            b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
            b"\x01\x02",
        ),
        "repeats the key 'a'",
    ),
    "unknown dtype": (
        craft({"a": entry("F8_E4M3", [1], 0, 1)}, b"\x00"),
        "tensor 'a' has an unknown dtype 'F8_E4M3'",
    ),
    "dtype not a string": (craft({"a": entry(4, [1], 0, 4)}, b"\x00" * 4), "unknown dtype 4"),
    "negative dimension": (craft({"a": entry("U8", [-1], 0, 0)}), "non-negative integers"),
    "float dimension": (craft({"a": entry("U8", [1.0], 0, 1)}, b"\x00"), "non-negative integers"),
    "bool dimension": (craft({"a": entry("U8", [True], 0, 1)}, b"\x00"), "non-negative integers"),
    "too many dimensions": (craft({"a": entry("U8", [1] * 33, 0, 1)}, b"\x00"), "at most 32"),
    "shape overflow": (
        craft({"W_aa": entry("F32", [2**40, 2**40], 0, 8)}, b"\x00" * 8),
        r"tensor 'W_aa' declares shape \[1099511627776, 1099511627776\] needing 4835703278458516698824704 "
        "bytes but its offsets span 8",
    ),
    "huge shape with huge offsets": (
        craft({"a": entry("F64", [2**30], 0, 2**33)}, b"\x00" * 8),
        "tensor 'a' ends at byte 8589934592 of the data but the data holds 8 bytes",
    ),
    "byte count mismatch": (craft({"a": entry("F32", [3], 0, 8)}, b"\x00" * 8), "needing 12 bytes"),
    "offsets reversed": (craft({"a": entry("U8", [0], 4, 0)}, b"\x00" * 4), "0 <= begin <= end"),
    "offsets not a pair": (
        craft({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0]}}, b"\x00"),
        "begin, end",
    ),
    "missing key": (craft({"a": {"dtype": "U8", "shape": [1]}}, b"\x00"), "exactly the keys"),
    "extra key": (
        craft({"a": {**entry("U8", [1], 0, 1), "path": "/etc/passwd"}}, b"\x00"),
        "exactly the keys",
    ),
    "entry not an object": (craft({"a": [1, 2]}), "exactly the keys"),
    "overlapping tensors": (
        craft({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 2, 6)}, b"\x00" * 6),
        r"tensor 'b' at data_offsets \[2, 6\] overlaps",
    ),
    "same bytes twice": (
        craft({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 0, 4)}, b"\x00" * 4),
        "overlaps",
    ),
    "gap between tensors": (
        craft({"a": entry("U8", [2], 0, 2), "b": entry("U8", [2], 4, 6)}, b"\x00" * 6),
        "leaves 2 unused bytes",
    ),
    "trailing garbage": (craft({"a": entry("U8", [2], 0, 2)}, b"\x00" * 2 + b"junk"), "end at byte 2"),
    "truncated data": (craft({"a": entry("F32", [2], 0, 8)}, b"\x00" * 5), "data holds 5 bytes"),
    "control character in name": (craft({"a\x07": entry("U8", [1], 0, 1)}, b"\x00"), "control characters"),
    "empty name": (craft({"": entry("U8", [1], 0, 1)}, b"\x00"), "tensor name ''"),
    "lone surrogate in name": (
        craft(b'{"\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\x00"),
        "control characters",
    ),
    "metadata not str": (craft({"__metadata__": {"a": 1}}), "__metadata__: expected str -> str"),
    "metadata a list": (craft({"__metadata__": ["a"]}), "__metadata__: expected a dict"),
    "bool byte 2": (craft({"m": entry("BOOL", [2], 0, 2)}, b"\x01\x02"), "bytes other than 0 and 1"),
    "pickle of arrays": (pickle.dumps({"W_aa": np.zeros((2, 2))}), "not a safetensors file"),
    "pickle payload": (pickle.dumps(Evil()), "not a safetensors file"),
    "zip file": (b"PK\x03\x04" + b"\x00" * 60, "not a safetensors file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_crafted_file_is_rejected_with_one_line_naming_it(tmp_path, case):
    data, match = BAD_FILES[case]
    Evil.marker = str(tmp_path / "pwned")
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    with pytest.raises(BpttError, match=match) as info:
        load_safetensors(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert not os.path.exists(Evil.marker)


def load_bytes(data, label="mem.safetensors"):
    """`read_safetensors` on ``data`` held in memory (rewriting a file on disk thousands of times is slow)."""
    if not hasattr(os, "memfd_create"):
        pytest.skip("needs os.memfd_create")
    with os.fdopen(os.memfd_create("st"), "r+b", buffering=0) as f:
        f.write(data)
        f.seek(0)
        return read_safetensors(f, label)


def test_every_truncation_is_rejected(good):
    path, arrays = good
    data = path.read_bytes()
    assert_same(load_bytes(data)[0], arrays)
    for cut in range(len(data)):
        with pytest.raises(BpttError, match="^mem.safetensors: "):
            load_bytes(data[:cut])


def test_max_bytes(good):
    path, arrays = good
    total = sum(a.nbytes for a in arrays.values())
    assert_same(load_safetensors(path, max_bytes=total)[0], arrays)
    with pytest.raises(BpttError, match=f"over the {total - 1} allowed"):
        load_safetensors(path, max_bytes=total - 1)


def test_a_huge_declaration_allocates_nothing(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(craft({"a": entry("F64", [2**27], 0, 2**30)}, b"\x00" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(BpttError):
            load_safetensors(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_not_a_file(tmp_path):
    with pytest.raises(BpttError, match="no such file"):
        load_safetensors(tmp_path / "missing.safetensors")
    with pytest.raises(BpttError, match="is a directory"):
        load_safetensors(tmp_path)
    if hasattr(os, "mkfifo"):  # a FIFO would block a naive reader forever
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(BpttError, match="not a regular file"):
            load_safetensors(tmp_path / "fifo")


def test_reading_never_unpickles(good, no_unpickling):
    path, arrays = good
    assert_same(load_safetensors(path)[0], arrays)


# ------------------------------------------------------------------------------------------------- fuzzing

FUZZ_ARRAYS = {
    "W": np.arange(6, dtype=np.float32).reshape(2, 3),
    "n": np.array([7, -1], dtype=np.int64),
    "m": np.array([True, False, True]),
    "e": np.zeros((0, 2), dtype=np.float64),
}
FUZZ_BYTES = ref_save(FUZZ_ARRAYS, metadata={"v": "1"})
HEADER_END = 8 + struct.unpack("<Q", FUZZ_BYTES[:8])[0]


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(FUZZ_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=4
    ),
    cut=st.one_of(st.none(), st.integers(0, len(FUZZ_BYTES))),
    extra=st.binary(max_size=3),
)
def test_fuzz_mutations_load_exactly_or_raise_bptt_error(edits, cut, extra):
    data = bytearray(FUZZ_BYTES)
    for pos, value in edits:
        data[pos] = value
    data = bytes(data[:cut]) + extra
    try:
        got, _ = load_bytes(data)
    except BpttError as e:
        assert str(e).startswith("mem.safetensors: ") and "\n" not in str(e)
        return
    # we accepted it, so the reference must accept it too and read the very same tensors
    try:
        assert_same(got, ref_load(data))
    except SafetensorError as e:
        raise AssertionError(f"we loaded a file the reference rejects: {e}") from None
    if data == FUZZ_BYTES or (len(data) == len(FUZZ_BYTES) and all(p >= HEADER_END for p, _ in edits)):
        # the header is intact, so only data bytes can differ: same names, dtypes, shapes
        assert {k: (a.dtype, a.shape) for k, a in got.items()} == {
            k: (a.dtype, a.shape) for k, a in FUZZ_ARRAYS.items()
        }
    if data == FUZZ_BYTES:
        assert_same(got, FUZZ_ARRAYS)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(header=st.binary(max_size=64), body=st.binary(max_size=64), length=st.integers(0, 2**64 - 1))
def test_fuzz_random_bytes_raise_only_bptt_error(header, body, length):
    for data in (struct.pack("<Q", length) + header + body, struct.pack("<Q", len(header)) + header + body):
        try:
            load_bytes(data)
        except BpttError:
            pass
