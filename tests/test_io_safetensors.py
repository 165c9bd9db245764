"""safetensors reader/writer (csrc/io/safetensors*.c) against the safetensors library.

Tolerance: none. Every comparison is bit-exact (F16/BF16 widen to float32 exactly)."""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as np_load_file
from safetensors.torch import save_file

from io_testutil import _C, cut_points, run_isolated
from visionc.io import load_state_dict, save_state_dict

ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
              torch.int8, torch.uint8, torch.bool]


def expected(t):
    """What the loader must return for torch tensor t: float32 for half types, else same dtype."""
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.float().numpy()
    return t.numpy()


def assert_bitexact(arr, ref, name=""):
    assert arr.dtype == ref.dtype, name
    assert arr.shape == ref.shape, name
    assert arr.tobytes() == ref.tobytes(), name


def header(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return n, json.loads(raw[8:8 + n])


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_raw(path, hdr, data=b"", pad=True):
    """A safetensors file from a header (dict or raw bytes) and a data buffer."""
    h = hdr if isinstance(hdr, bytes) else json.dumps(hdr).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


@pytest.fixture
def mixed(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i, dt in enumerate(ALL_DTYPES):
        if dt.is_floating_point:
            t = torch.randn(3, 5, generator=g).to(dt)
        elif dt == torch.bool:
            t = torch.randint(0, 2, (4, 3), generator=g).bool()
        else:
            info = torch.iinfo(dt)
            t = torch.randint(max(info.min, -1000), min(info.max, 1000), (2, 7), generator=g).to(dt)
        sd[f"t{i}.{str(dt).split('.')[1]}"] = t
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 4)
    sd["empty_h"] = torch.zeros(5, 0).half()
    sd["special_h"] = torch.tensor([0.0, -0.0, 6.1e-5, 5.96e-8, 65504.0, float("inf"), -float("inf")]).half()
    sd["big"] = torch.randn(512, 1024, generator=g)  # 2 MiB
    path = tmp_path / "mixed.safetensors"
    save_file(sd, str(path), metadata={"format": "pt", "note": "h\u00e9llo \"q\""})
    return path, sd


def test_parity_every_dtype_and_order(mixed):
    path, sd = mixed
    tensors, meta = _C.safetensors_load(str(path))
    assert meta == {"format": "pt", "note": "h\u00e9llo \"q\""}
    _, hdr = header(path)
    assert list(tensors) == [k for k in hdr if k != "__metadata__"]  # file (header) order
    assert set(tensors) == set(sd)
    for name, t in sd.items():
        assert_bitexact(tensors[name], expected(t), name)
    assert tensors["scalar"].shape == () and tensors["scalar"] == np.float32(3.25)
    assert tensors["empty"].shape == (0, 4) and tensors["empty_h"].shape == (5, 0)
    assert tensors["empty_h"].dtype == np.float32


def test_half_edge_values_convert_exactly(tmp_path):
    """Subnormals, signed zeros, infinities and NaNs. Non-NaN values match torch bit for bit;
    NaNs keep their payload (torch canonicalises them): F16 like NumPy's astype, BF16 as bits << 16."""
    bits = np.array([0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7C01, 0xFE00, 0x7E00,
                     0x3C00, 0xC000], dtype=np.uint16)
    for dt in (torch.float16, torch.bfloat16):
        t = torch.from_numpy(bits.view(np.int16).copy()).view(dt)
        p = tmp_path / f"{str(dt)}.safetensors"
        save_file({"x": t}, str(p))
        got = _C.safetensors_load(str(p))[0]["x"]
        ref = t.float().numpy()
        nan = np.isnan(ref)
        assert np.array_equal(np.isnan(got), nan)
        assert got[~nan].view(np.uint32).tolist() == ref[~nan].view(np.uint32).tolist()
        if dt == torch.float16:
            assert got.view(np.uint32).tolist() == bits.view(np.float16).astype(np.float32).view(np.uint32).tolist()
        else:
            assert got.view(np.uint32).tolist() == (bits.astype(np.uint32) << 16).tolist()


def test_float32_is_zero_copy_and_copy_on_write(mixed):
    path, sd = mixed
    before = sha(path)
    tensors, _ = _C.safetensors_load(str(path))
    big = tensors["big"]
    base = big.base
    assert isinstance(base, _C.MappedFile) and base.path == str(path) and base.size == os.path.getsize(path)
    assert big.flags.writeable and big.flags.c_contiguous and big.flags.aligned
    # The array's memory lies inside the mapping's range: same base object for every view.
    assert tensors["t1.float32"].base is base and tensors["t4.int64"].base is base
    assert tensors["t2.float16"].base is None  # converted: owns its float32 memory
    big[:] = 7.0
    tensors["t4.int64"][0, 0] = -1
    assert sha(path) == before  # private pages: the file is untouched
    again, _ = _C.safetensors_load(str(path))
    assert_bitexact(again["big"], sd["big"].numpy())


def test_mapping_outlives_dict_and_other_arrays(mixed):
    path, sd = mixed
    tensors, _ = _C.safetensors_load(str(path))
    keep = tensors["big"]
    del tensors
    import gc
    gc.collect()
    assert_bitexact(keep, sd["big"].numpy())  # still mapped: the array holds the MappedFile


def test_save_roundtrip_with_safetensors_library(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "h": rng.standard_normal(3).astype(np.float16),  # 2-byte element first, to test layout order
        "w": rng.standard_normal((4, 5)).astype(np.float32),
        "d": rng.standard_normal(2),
        "i8": np.arange(-3, 4, dtype=np.int8),
        "i64": np.arange(5, dtype=np.int64),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "i16": np.arange(3, dtype=np.int16),
        "u8": np.arange(9, dtype=np.uint8),
        "b": np.array([True, False, True]),
        "s": np.array(2.5, dtype=np.float32),
        "e": np.zeros((0, 3), dtype=np.float32),
        "nc": rng.standard_normal((6, 4)).astype(np.float32).T,           # non-contiguous
        "be": np.arange(4, dtype=">i4"),                                    # big-endian
        "name with \"quotes\" and \u00e9": np.ones(2, dtype=np.float32),
    }
    path = tmp_path / "out.safetensors"
    _C.safetensors_save(str(path), arrays, {"k": "v"})
    n, hdr = header(path)
    assert (8 + n) % 8 == 0  # header padded like the safetensors library does
    assert list(k for k in hdr if k != "__metadata__") == list(arrays)
    data_start = 8 + n
    for k, info in hdr.items():
        if k != "__metadata__":
            size = np.dtype(arrays[k].dtype).itemsize
            assert (data_start + info["data_offsets"][0]) % size == 0, k  # every tensor aligned
    ref = np_load_file(str(path))  # the library validates offsets and full coverage
    for k, a in arrays.items():
        assert np.array_equal(ref[k], a) and ref[k].dtype == a.dtype.newbyteorder("="), k
    ours, meta = _C.safetensors_load(str(path))
    assert meta == {"k": "v"}
    for k, a in arrays.items():
        exp = a.astype(np.float32) if a.dtype == np.float16 else a
        assert np.array_equal(ours[k], exp), k
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]  # no temporary left behind


def test_save_replaces_atomically_and_reports_errors(tmp_path):
    path = tmp_path / "w.safetensors"
    _C.safetensors_save(str(path), {"a": np.zeros(2, np.float32)})
    old = sha(path)
    with pytest.raises(TypeError, match="tensor 'bad'.*complex"):
        _C.safetensors_save(str(path), {"a": np.ones(2, np.float32), "bad": np.zeros(2, np.complex64)})
    with pytest.raises(ValueError, match="__metadata__"):
        _C.safetensors_save(str(path), {"__metadata__": np.ones(2, np.float32)})
    with pytest.raises(TypeError, match="metadata"):
        _C.safetensors_save(str(path), {"a": np.ones(2, np.float32)}, {"k": 1})
    with pytest.raises(OSError, match="nonexistent"):
        _C.safetensors_save(str(tmp_path / "nonexistent" / "x.safetensors"), {"a": np.ones(1, np.float32)})
    assert sha(path) == old and sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    # Overwriting a file while its own zero-copy arrays are alive: the old mapping stays valid.
    arr = _C.safetensors_load(str(path))[0]["a"]
    _C.safetensors_save(str(path), {"a": arr + 1})
    assert arr.tolist() == [0.0, 0.0] and _C.safetensors_load(str(path))[0]["a"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("killed", [True, False])
def test_interrupted_save_leaves_old_file(tmp_path, killed):
    """A file-size limit stops the save mid-write: either SIGXFSZ kills the process (killed=True:
    the default action, which Python normally ignores) or write() fails with EFBIG (the error
    path must delete its temporary). Either way the final name still holds the old file."""
    path = tmp_path / "k.safetensors"
    _C.safetensors_save(str(path), {"a": np.arange(4, dtype=np.float32)})
    old = sha(path)
    code = (
        "import resource, signal, numpy as np\n"
        "from visionc import _C\n"
        + ("signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n" if killed else "")
        + "resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))\n"
        f"_C.safetensors_save({str(path)!r}, {{'a': np.zeros(1000000, np.float32)}})\n"
    )
    r = run_isolated(code)
    assert sha(path) == old
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "k.safetensors")
    if killed:
        assert r.returncode == -25  # SIGXFSZ
        assert len(leftovers) == 1 and leftovers[0].startswith("k.safetensors.tmp.")  # the half file, aside
    else:
        assert r.returncode == 1 and "k.safetensors: write failed" in r.stderr
        assert leftovers == []


# ---- malformed files ----

def good_file(tmp_path):
    sd = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(4, dtype=torch.float16)}
    path = tmp_path / "good.safetensors"
    save_file(sd, str(path))
    return path


def test_truncated_at_every_region(tmp_path):
    raw = good_file(tmp_path).read_bytes()
    bad = tmp_path / "cut.safetensors"
    for cut in cut_points(len(raw), 80):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="cut.safetensors"):
            _C.safetensors_load(str(bad))


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="e.safetensors"):
        _C.safetensors_load(str(tmp_path / "e.safetensors"))
    with pytest.raises(OSError, match="missing.safetensors"):
        _C.safetensors_load(str(tmp_path / "missing.safetensors"))
    with pytest.raises(OSError, match="not a regular file"):
        _C.safetensors_load(str(tmp_path))


def test_header_length_checks(tmp_path):
    p = tmp_path / "len.safetensors"
    p.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(ValueError, match="len.safetensors: header length 1000 exceeds the file size"):
        _C.safetensors_load(str(p))
    p.write_bytes(struct.pack("<Q", 2**64 - 1) + b"{}")
    with pytest.raises(ValueError, match="exceeds the file size"):
        _C.safetensors_load(str(p))
    # > 100 MB header inside a (sparse) file that is big enough for it.
    big = tmp_path / "huge.safetensors"
    with open(big, "wb") as f:
        f.write(struct.pack("<Q", 100_000_001) + b"{")
        f.truncate(8 + 100_000_001)
    with pytest.raises(ValueError, match="huge.safetensors: header length 100000001 exceeds the 100000000-byte limit"):
        _C.safetensors_load(str(big))


F32_2x2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}

MALFORMED = [
    # (header, data, expected message fragment)
    (b"{not json}", b"", "header: invalid JSON"),
    (b"[1, 2]", b"", "header is a JSON array"),
    ({"t": {**F32_2x2, "data_offsets": [0, 32]}}, bytes(16), "tensor 't': data_offsets end 32 is past"),
    ({"t": {**F32_2x2, "data_offsets": [8, 4]}}, bytes(16), "tensor 't': data_offsets begin 8 > end 4"),
    ({"t": {**F32_2x2, "data_offsets": [0, 12]}}, bytes(16), "tensor 't': data_offsets span 12 bytes but"),
    ({"t": {**F32_2x2, "shape": [3, 2]}}, bytes(16), "tensor 't': data_offsets span 16 bytes but dtype F32"),
    ({"t": {**F32_2x2, "dtype": "F8_E4M3"}}, bytes(16), "tensor 't': unsupported dtype 'F8_E4M3'"),
    ({"t": {**F32_2x2, "dtype": "C64"}}, bytes(16), "tensor 't': unsupported dtype 'C64'"),
    ({"t": {**F32_2x2, "shape": [2, -2]}}, bytes(16), "tensor 't': shape[1] is not a non-negative integer"),
    ({"t": {**F32_2x2, "shape": [2.0, 2]}}, bytes(16), "tensor 't': shape[0] is not"),
    ({"t": {**F32_2x2, "shape": [2**62, 2**62]}}, bytes(16), "tensor 't': shape product overflows"),
    ({"t": {**F32_2x2, "shape": [2**61, 4]}}, bytes(16), "tensor 't': byte size overflows"),
    ({"t": {**F32_2x2, "shape": [0, 2**61], "data_offsets": [0, 0]}}, b"", "tensor 't': byte size overflows"),
    ({"t": {**F32_2x2, "shape": [1] * 65}}, bytes(16), "tensor 't': 65 dimensions"),
    ({"t": {"shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16), "tensor 't': missing or non-string \"dtype\""),
    ({"t": {"dtype": "F32", "data_offsets": [0, 16]}}, bytes(16), "tensor 't': missing or non-array \"shape\""),
    ({"t": {"dtype": "F32", "shape": [2, 2]}}, bytes(16), "tensor 't': \"data_offsets\" must be"),
    ({"t": {**F32_2x2, "data_offsets": [0, 16, 3]}}, bytes(16), "tensor 't': \"data_offsets\" must be"),
    ({"t": {**F32_2x2, "data_offsets": [-16, 0]}}, bytes(16), "tensor 't': \"data_offsets\" must be"),
    ({"t": [1]}, b"", "tensor 't': entry must be an object"),
    ({"a": F32_2x2, "b": {**F32_2x2, "data_offsets": [8, 24]}}, bytes(24), "tensors 'a' and 'b' overlap"),
    ({"a": F32_2x2, "b": F32_2x2}, bytes(16), "tensors 'a' and 'b' overlap"),
    ({"__metadata__": {"k": 1}}, b"", "__metadata__ value for key 'k' is not a string"),
    ({"__metadata__": [1]}, b"", "__metadata__ must be an object"),
    (b'{"t":' + json.dumps(F32_2x2).encode() + b',"t":' + json.dumps(F32_2x2).encode() + b"}", bytes(16),
     'duplicate key "t"'),
]


@pytest.mark.parametrize("hdr,data,msg", MALFORMED, ids=[m[2][:40] for m in MALFORMED])
def test_malformed_header_rejected(tmp_path, hdr, data, msg):
    p = write_raw(tmp_path / "bad.safetensors", hdr, data)
    with pytest.raises(ValueError) as e:
        _C.safetensors_load(str(p))
    assert "bad.safetensors" in str(e.value) and msg in str(e.value), str(e.value)


def test_empty_tensors_may_share_offsets_and_holes_are_allowed(tmp_path):
    hdr = {"e1": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
           "e2": {"dtype": "I64", "shape": [0, 3], "data_offsets": [4, 4]},
           "x": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}}
    t, _ = _C.safetensors_load(str(write_raw(tmp_path / "h.safetensors", hdr, bytes(range(8)))))
    assert t["e1"].shape == (0,) and t["e2"].shape == (0, 3) and t["x"].tolist() == [6, 7]


def test_unaligned_float32_is_copied_not_misread(tmp_path):
    hdr = {"u8": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
           "f": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}}
    payload = b"\x07" + np.array([1.5, -2.0], np.float32).tobytes()
    t, _ = _C.safetensors_load(str(write_raw(tmp_path / "u.safetensors", hdr, payload)))
    assert t["f"].tolist() == [1.5, -2.0] and t["f"].flags.aligned and t["f"].base is None


def test_bit_flips_in_header_never_misbehave(tmp_path):
    """Flip each bit of the length field and a sample of header bits: every result is either a
    clean ValueError naming the file or a load whose arrays match their header."""
    raw = bytearray(good_file(tmp_path).read_bytes())
    hlen = struct.unpack("<Q", raw[:8])[0]
    p = tmp_path / "flip.safetensors"
    positions = list(range(64)) + list(range(64, (8 + hlen) * 8, 5))
    errors = 0
    for bit in positions:
        b = bytearray(raw)
        b[bit // 8] ^= 1 << (bit % 8)
        p.write_bytes(bytes(b))
        try:
            t, _ = _C.safetensors_load(str(p))
        except ValueError as e:
            assert "flip.safetensors" in str(e)
            errors += 1
            continue
        for a in t.values():
            assert a.size * a.itemsize <= len(raw)
    assert errors > len(positions) // 2


def test_malformed_files_do_not_crash_the_interpreter(tmp_path):
    for i, (hdr, data, _) in enumerate(MALFORMED):
        write_raw(tmp_path / f"m{i}.safetensors", hdr, data)
    raw = good_file(tmp_path).read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:len(raw) - 3])
    (tmp_path / "len.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    code = (
        "import glob\nfrom visionc import _C\nn = 0\n"
        "for f in sorted(glob.glob('*.safetensors')):\n"
        "    if f == 'good.safetensors': continue\n"
        "    try: _C.safetensors_load(f)\n"
        "    except ValueError as e: assert f in str(e), e; n += 1\n"
        "print('rejected', n)\n"
    )
    r = run_isolated(code, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"rejected {len(MALFORMED) + 2}"


# ---- visionc.io on files and directories ----

@pytest.fixture(scope="module")
def tiny_vit():
    from transformers import ViTConfig, ViTForImageClassification
    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                    patch_size=8)
    return ViTForImageClassification(cfg)


def test_sharded_safetensors_directory(tmp_path, tiny_vit):
    tiny_vit.save_pretrained(str(tmp_path), safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    sd = load_state_dict(tmp_path)
    # transformers may rename keys on save, so the reference is the safetensors library
    # reading the same shards.
    ref = {}
    for shard in sorted(tmp_path.glob("model-*.safetensors")):
        ref.update(np_load_file(str(shard)))
    assert set(sd) == set(ref) and len(sd) >= len(tiny_vit.state_dict())
    for k, v in ref.items():
        assert_bitexact(sd[k], v, k)


def test_sharded_index_inconsistencies_name_the_file(tmp_path, tiny_vit):
    tiny_vit.save_pretrained(str(tmp_path), safe_serialization=True, max_shard_size="20KB")
    idx_path = tmp_path / "model.safetensors.index.json"
    idx = json.loads(idx_path.read_text())
    name, shard = next(iter(idx["weight_map"].items()))
    # An entry the shard does not contain.
    idx["weight_map"]["ghost.weight"] = shard
    idx_path.write_text(json.dumps(idx))
    with pytest.raises(ValueError, match=f"{shard}.*missing.*ghost.weight"):
        load_state_dict(tmp_path)
    # A tensor attributed to the wrong shard.
    del idx["weight_map"]["ghost.weight"]
    other = next(s for s in idx["weight_map"].values() if s != shard)
    idx["weight_map"][name] = other
    idx_path.write_text(json.dumps(idx))
    # Reported by whichever shard is read first: the one missing it, or the one holding it.
    with pytest.raises(ValueError, match=rf"model-\d+-of-\d+\.safetensors: .*('{name}' is listed under shard|"
                                         rf"are missing, e\.g\. '{name}')"):
        load_state_dict(tmp_path)
    # A shard path that escapes the directory.
    idx["weight_map"][name] = "../x.safetensors"
    idx_path.write_text(json.dumps(idx))
    with pytest.raises(ValueError, match="not a plain file name"):
        load_state_dict(tmp_path)


def test_duplicate_tensor_across_shards(tmp_path):
    save_file({"a": torch.ones(2)}, str(tmp_path / "s1.safetensors"))
    save_file({"a": torch.ones(2), "b": torch.ones(1)}, str(tmp_path / "s2.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}))
    with pytest.raises(ValueError, match="s2.safetensors: tensor 'a' is also in .*s1.safetensors"):
        load_state_dict(tmp_path)


def test_directory_prefers_safetensors_and_save_state_dict(tmp_path, tiny_vit):
    ref = {k: v.numpy() for k, v in tiny_vit.state_dict().items()}
    save_state_dict(tmp_path, ref, {"format": "np"})
    torch.save({k: torch.zeros_like(torch.from_numpy(v)) for k, v in ref.items()}, tmp_path / "pytorch_model.bin")
    sd = load_state_dict(tmp_path)  # model.safetensors wins over pytorch_model.bin
    assert list(sd) == list(ref) and all(np.array_equal(sd[k], ref[k]) for k in ref)
    assert _C.safetensors_load(str(tmp_path / "model.safetensors"))[1] == {"format": "np"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        load_state_dict(tmp_path / "empty")
    with pytest.raises(ValueError, match="writes safetensors"):
        save_state_dict(tmp_path / "x.bin", ref)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
