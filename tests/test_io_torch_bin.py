"""torch.save checkpoint reader (csrc/io/{zip,pickle,torch_bin}.c) against torch.load.

Tolerance: none. Every comparison is bit-exact (F16/BF16 widen to float32 exactly)."""
import collections
import hashlib
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np
import pytest
import torch

from io_testutil import (_C, FakeStorage, FakeTensor, cut_points, read_zip_entries, run_isolated, torch_pickle,
                         write_torch_zip, write_zip)
from visionc.io import load_state_dict


def expected(t):
    t = t.detach()
    return t.float().numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.contiguous().numpy()


def assert_bitexact(arr, ref, name=""):
    assert arr.dtype == ref.dtype and arr.shape == ref.shape, name
    assert arr.tobytes() == np.ascontiguousarray(ref).tobytes(), name


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def every_dtype_state_dict():
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        sd[f"f.{dt}"] = torch.randn(4, 3, generator=g).to(dt)
    for dt in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        sd[f"i.{dt}"] = torch.randint(0, 100, (5,), generator=g).to(dt)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(1.5)
    sd["scalar_i"] = torch.tensor(7)
    sd["empty"] = torch.zeros(0, 5)
    sd["large"] = torch.randn(256, 1024, generator=g)
    sd["transposed"] = torch.randn(6, 4, generator=g).t()                # non-contiguous
    sd["transposed_h"] = torch.randn(5, 3, generator=g).half().t()       # non-contiguous + conversion
    sd["expanded"] = torch.randn(3, 1, generator=g).expand(3, 4)         # stride 0
    sd["sliced"] = torch.arange(20, dtype=torch.float32)[5:15]           # storage offset
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    return sd


def test_parity_every_dtype_and_layout(tmp_path):
    sd = every_dtype_state_dict()
    path = tmp_path / "all.pt"
    torch.save(sd, path)
    got = _C.torch_bin_load(str(path))
    ref = torch.load(path, weights_only=True)
    assert list(got) == list(ref) == list(sd)  # order preserved
    for k, v in ref.items():
        assert_bitexact(got[k], expected(v), k)
    assert got["scalar"].shape == () and got["scalar_i"].dtype == np.int64
    assert got["f.torch.float16"].dtype == np.float32 and got["f.torch.bfloat16"].dtype == np.float32
    assert got["transposed"].flags.c_contiguous and got["transposed"].base is None  # gathered copy


def test_real_module_state_dict_with_metadata_and_buffers(tmp_path):
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    m[1](torch.randn(2, 4, 3, 3))  # a training step: running stats and num_batches_tracked move
    sd = m.state_dict()
    path = tmp_path / "pytorch_model.bin"
    torch.save(sd, path)
    assert b"_metadata" in zipfile.ZipFile(path).read("pytorch_model/data.pkl")  # BUILD with module versions
    got = _C.torch_bin_load(str(path))
    assert list(got) == list(sd)
    assert got["1.num_batches_tracked"].dtype == np.int64 and got["1.num_batches_tracked"].shape == ()
    for k, v in sd.items():
        assert_bitexact(got[k], expected(v), k)


def test_zero_copy_views_and_file_untouched(tmp_path):
    sd = every_dtype_state_dict()
    path = tmp_path / "zc.pt"
    torch.save(sd, path)
    before = sha(path)
    got = _C.torch_bin_load(str(path))
    big = got["large"]
    assert isinstance(big.base, _C.MappedFile) and big.base.path == str(path)
    assert big.flags.writeable and big.flags.aligned
    assert got["sliced"].base is big.base and got["i.torch.int64"].base is big.base
    big[:] = 0
    got["sliced"][0] = 123
    assert sha(path) == before
    assert_bitexact(_C.torch_bin_load(str(path))["large"], sd["large"].numpy())


def test_tied_weights_and_shared_storage(tmp_path):
    w = torch.randn(8, 4)
    sd = {"emb.weight": w, "head.weight": w, "half_view": w[2:4], "row_t": w[:, 1]}
    path = tmp_path / "tied.pt"
    torch.save(sd, path)
    got = _C.torch_bin_load(str(path))
    assert got["emb.weight"] is got["head.weight"]  # one tensor object in the pickle -> one array
    assert np.shares_memory(got["emb.weight"], got["half_view"])  # views of one storage stay views
    got["emb.weight"][2, 0] = 42.0
    assert got["half_view"][0, 0] == 42.0
    assert_bitexact(got["row_t"], w[:, 1].contiguous().numpy())


def test_nested_dicts_flattened_with_dots(tmp_path):
    inner = {"a": torch.ones(2), "sub": collections.OrderedDict(b=torch.zeros(3, dtype=torch.int32))}
    torch.save({"model": inner, "ema": {"a": torch.full((1,), 2.0)}}, tmp_path / "n.pt")
    got = _C.torch_bin_load(str(tmp_path / "n.pt"))
    assert list(got) == ["model.a", "model.sub.b", "ema.a"]
    assert got["model.sub.b"].dtype == np.int32 and got["ema.a"].tolist() == [2.0]
    torch.save({"state_dict": {"w": torch.ones(1)}}, tmp_path / "s.pt")
    assert list(_C.torch_bin_load(str(tmp_path / "s.pt"))) == ["state_dict.w"]


def test_non_state_dicts_say_what_was_found(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(1)}, "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match=r"ckpt.pt: 'epoch' is an int, not a tensor.*top-level keys: "
                                         r"'state_dict' \(dict\), 'epoch' \(int\)"):
        _C.torch_bin_load(str(tmp_path / "ckpt.pt"))
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="list.pt: checkpoint holds a list, expected a state dict"):
        _C.torch_bin_load(str(tmp_path / "list.pt"))
    torch.save({1: torch.ones(1)}, tmp_path / "intkey.pt")
    with pytest.raises(ValueError, match="intkey.pt: dict key at top level.* is a int"):
        _C.torch_bin_load(str(tmp_path / "intkey.pt"))


def test_legacy_and_compressed_formats_get_clear_errors(tmp_path):
    p = tmp_path / "legacy.bin"
    torch.save({"w": torch.ones(2)}, p, _use_new_zipfile_serialization=False)
    with pytest.raises(NotImplementedError, match="legacy.bin: legacy .*re-save"):
        _C.torch_bin_load(str(p))
    src = tmp_path / "ok.bin"
    torch.save({"w": torch.ones(2)}, src)
    deflated = tmp_path / "deflated.bin"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    with pytest.raises(NotImplementedError, match="deflated.bin: zip entry 'ok/data.pkl' is compressed"):
        _C.torch_bin_load(str(deflated))


def test_zip64_archive(tmp_path):
    sd = {"w": torch.randn(16, 16), "h": torch.randn(5).half(), "n": torch.tensor(3)}
    src = tmp_path / "src.pt"
    torch.save(sd, src)
    z64 = tmp_path / "z64.pt"
    write_zip(z64, read_zip_entries(src), zip64=True)
    with zipfile.ZipFile(z64) as z:  # the standard library agrees the archive is valid
        assert z.testzip() is None
    raw = z64.read_bytes()
    assert struct.pack("<I", 0x06064B50) in raw and struct.pack("<I", 0x07064B50) in raw
    got = _C.torch_bin_load(str(z64))
    for k, v in sd.items():
        assert_bitexact(got[k], expected(v), k)
    assert isinstance(got["w"].base, _C.MappedFile)  # still aligned -> zero-copy


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_torch_save_writes(tmp_path, protocol):
    sd = {"a": torch.randn(3, 4), "b": torch.randn(2).half(), "p": torch.nn.Parameter(torch.randn(2))}
    torch.save(sd, tmp_path / "p.pt", pickle_protocol=protocol)
    got = _C.torch_bin_load(str(tmp_path / "p.pt"))
    for k, v in sd.items():
        assert_bitexact(got[k], expected(v), k)


def test_parameter_attributes_dropped_tensor_subclass_state_refused(tmp_path):
    p = torch.nn.Parameter(torch.randn(2))
    p.note = "kept out"  # torch pickles this via _rebuild_parameter_with_state
    torch.save({"p": p}, tmp_path / "ps.pt")
    assert_bitexact(_C.torch_bin_load(str(tmp_path / "ps.pt"))["p"], p.detach().numpy())
    t = torch.randn(2)
    t.note = 1  # plain tensors with attributes need torch._tensor._rebuild_from_type_v2
    torch.save({"t": t}, tmp_path / "ts.pt")
    with pytest.raises(ValueError, match="ts.pt: .*refusing pickle global 'torch._tensor._rebuild_from_type_v2'"):
        _C.torch_bin_load(str(tmp_path / "ts.pt"))


def test_protocol4_pickle_with_frames_and_memoize(tmp_path):
    st = FakeStorage("0", torch.FloatStorage, 6)
    obj = collections.OrderedDict(a=FakeTensor(st, 0, (2, 3), (3, 1)), b=FakeTensor(st, 2, (2,), (3,)))
    pkl = torch_pickle(obj, protocol=4)
    ops = {op.name for op, _, _ in pickletools.genops(pkl)}
    assert {"FRAME", "MEMOIZE", "SHORT_BINUNICODE", "STACK_GLOBAL"} <= ops
    data = np.arange(6, dtype=np.float32)
    write_torch_zip(tmp_path / "p4.pt", pkl, {"0": data.tobytes()})
    got = _C.torch_bin_load(str(tmp_path / "p4.pt"))
    assert got["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and got["b"].tolist() == [2, 5]


# ---- security ----

class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def test_os_system_in_a_real_torch_zip_is_refused(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.bin"
    torch.save({"w": torch.ones(2), "x": Evil(os.system, f"touch {sentinel}")}, path)
    pkl = zipfile.ZipFile(path).read("evil/data.pkl")
    assert b"posix\nsystem" in pkl or b"os\nsystem" in pkl  # the file really carries the payload
    with pytest.raises(ValueError, match=r"evil.bin: .*refusing pickle global '(posix|os)\.system'"):
        _C.torch_bin_load(str(path))
    with pytest.raises(ValueError, match=r"refusing pickle global '(posix|os)\.system'"):
        load_state_dict(path)
    assert not sentinel.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_other_globals_are_refused_by_name(tmp_path, protocol):
    sentinel = tmp_path / "S2"
    cases = {
        # Protocol 2 spells builtins the Python 2 way (fix_imports).
        r"(builtins|__builtin__)\.eval": Evil(eval, f"open({str(sentinel)!r}, 'w')"),
        r"(builtins|__builtin__)\.getattr": Evil(getattr, "x"),
        r"torch\.serialization\.load": Evil(torch.load, "x"),
        r"collections\.Counter": collections.Counter(a=1),
    }
    for glob, obj in cases.items():
        path = tmp_path / f"g{protocol}.pt"
        write_torch_zip(path, torch_pickle({"x": obj}, protocol=protocol), {})
        with pytest.raises(ValueError, match=rf"g{protocol}.pt: .*refusing pickle global '{glob}'"):
            _C.torch_bin_load(str(path))
    assert not sentinel.exists()


def test_object_construction_opcodes_refused(tmp_path):
    pkl = pickle.dumps({"p": collections.OrderedDict()}, protocol=2).replace(b"R", b"\x81", 1)  # REDUCE -> NEWOBJ
    write_torch_zip(tmp_path / "newobj.pt", pkl, {})
    with pytest.raises(ValueError, match="newobj.pt: .*object construction opcode 0x81"):
        _C.torch_bin_load(str(tmp_path / "newobj.pt"))


# ---- malformed archives ----

def fake_ckpt(tmp_path, name, size, stride, offset=0, numel=6, entry_bytes=None, storage_type=None, extra=()):
    st = FakeStorage("0", storage_type or torch.FloatStorage, numel)
    pkl = torch_pickle({"enc.w": FakeTensor(st, offset, size, stride, extra)})
    raw = entry_bytes if entry_bytes is not None else np.arange(numel, dtype=np.float32).tobytes()
    path = tmp_path / name
    write_torch_zip(path, pkl, {"0": raw} if raw is not False else {})
    return path


@pytest.mark.parametrize("kw,msg", [
    (dict(size=(2, 4), stride=(4, 1)), "reach element 7 but the storage has 6 F32 elements"),
    (dict(size=(3,), stride=(1,), offset=4), "reach element 6 but the storage has 6"),
    (dict(size=(2,), stride=(1,), offset=-1), "storage offset is not a non-negative integer"),
    (dict(size=(2, -1), stride=(1, 1)), "size\\[1\\] is not a non-negative integer"),
    (dict(size=(2,), stride=(-1,)), "stride\\[0\\] is not a non-negative integer"),
    (dict(size=(2, 2), stride=(1,)), "size and stride are not tuples of the same length"),
    (dict(size=(2**40, 2**40), stride=(1, 1)), "element count overflows|extent overflows|reach element"),
    (dict(size=(2,), stride=(2**62,)), "extent overflows|reach element"),
    (dict(size=(0, 2**62), stride=(1, 1)), "byte size overflows"),  # empty, yet too big for NumPy
    (dict(size=(2,), stride=(1,), numel=8, entry_bytes=bytes(24)), "claims 8 F32 elements but its entry holds 24 bytes"),
    (dict(size=(2,), stride=(1,), entry_bytes=False), "storage '0' .* is missing from the archive"),
    (dict(size=(1,) * 65, stride=(1,) * 65), "65 dimensions"),
    (dict(size=(2,), stride=(1,), extra=(None, None)), "called with 8 arguments"),
])
def test_bad_tensor_descriptions_name_file_and_tensor(tmp_path, kw, msg):
    path = fake_ckpt(tmp_path, "bad.pt", **kw)
    with pytest.raises(ValueError, match=rf"bad.pt: tensor 'enc.w': .*({msg})"):
        _C.torch_bin_load(str(path))


def test_empty_tensor_ignores_offset_and_metadata_arg_is_accepted(tmp_path):
    got = _C.torch_bin_load(str(fake_ckpt(tmp_path, "e.pt", size=(0, 3), stride=(3, 1), offset=100)))
    assert got["enc.w"].shape == (0, 3)
    got = _C.torch_bin_load(str(fake_ckpt(tmp_path, "m.pt", size=(2,), stride=(2,), extra=({},))))
    assert got["enc.w"].tolist() == [0.0, 2.0]


def test_duplicate_names_and_missing_pickle(tmp_path):
    st = FakeStorage("0", torch.FloatStorage, 2)
    pkl = torch_pickle({"a.b": FakeTensor(st, 0, (1,), (1,)), "a": {"b": FakeTensor(st, 1, (1,), (1,))}})
    write_torch_zip(tmp_path / "dup.pt", pkl, {"0": bytes(8)})
    with pytest.raises(ValueError, match="dup.pt: tensor name 'a.b' appears twice"):
        _C.torch_bin_load(str(tmp_path / "dup.pt"))
    write_zip(tmp_path / "nopkl.pt", [("x/other", b"1")])
    with pytest.raises(ValueError, match="nopkl.pt: zip archive without <name>/data.pkl"):
        _C.torch_bin_load(str(tmp_path / "nopkl.pt"))
    write_zip(tmp_path / "dupentry.pt", [("x/data.pkl", b"."), ("x/data.pkl", b".")])
    with pytest.raises(ValueError, match="dupentry.pt: duplicate zip entry 'x/data.pkl'"):
        _C.torch_bin_load(str(tmp_path / "dupentry.pt"))


def test_truncated_archives(tmp_path):
    src = tmp_path / "t.pt"
    torch.save({"w": torch.randn(8, 8), "b": torch.randn(8).half()}, src)
    raw = src.read_bytes()
    bad = tmp_path / "cut.pt"
    for cut in cut_points(len(raw), 80):
        bad.write_bytes(raw[:cut])
        with pytest.raises((ValueError, OSError), match="cut.pt"):
            _C.torch_bin_load(str(bad))


def test_bit_flips_in_zip_structures_and_pickle(tmp_path):
    """Flip bits in the local headers, data.pkl, central directory and end record: every
    result is a clean error naming the file, or (for harmless bits: timestamps, padding) the
    same tensors as the original."""
    src = tmp_path / "f.pt"
    sd = {"w": torch.randn(4, 4), "n": torch.tensor(5)}
    torch.save(sd, src)
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        pkl = z.getinfo("f/data.pkl")
    name_len, extra_len = struct.unpack("<HH", raw[pkl.header_offset + 26:pkl.header_offset + 30])
    pkl_start = pkl.header_offset + 30 + name_len + extra_len
    cd_start = struct.unpack("<I", raw[-6:-2])[0]  # from the end-of-central-directory record
    regions = list(range(pkl.header_offset, pkl_start))                    # data.pkl's local header
    regions += list(range(pkl_start, pkl_start + pkl.file_size))           # data.pkl (CRC-checked)
    regions += list(range(cd_start, len(raw)))                             # central directory + end
    bad = tmp_path / "flip.pt"
    errors = 0
    for i, byte in enumerate(regions[::3]):
        b = bytearray(raw)
        b[byte] ^= 1 << (i % 8)
        bad.write_bytes(bytes(b))
        try:
            got = _C.torch_bin_load(str(bad))
        except (ValueError, OSError, NotImplementedError) as e:
            assert "flip.pt" in str(e), str(e)
            errors += 1
            continue
        assert set(got) == set(sd)
        for k, v in sd.items():
            assert_bitexact(got[k], expected(v), k)
    assert errors > 0


def test_malformed_archives_do_not_crash_the_interpreter(tmp_path):
    src = tmp_path / "src.pt"
    torch.save({"w": torch.randn(4, 4)}, src)
    raw = src.read_bytes()
    (tmp_path / "a_cut.pt").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "b_noeocd.pt").write_bytes(raw[:-22])
    fake_ckpt(tmp_path, "c_range.pt", size=(100,), stride=(1,))
    fake_ckpt(tmp_path, "d_missing.pt", size=(2,), stride=(1,), entry_bytes=False)
    write_torch_zip(tmp_path / "e_garbage.pt", b"\x80\x02}q\x00(X\x01\x00\x00\x00a\xff\xff", {})
    write_torch_zip(tmp_path / "f_evil.pt", torch_pickle({"x": Evil(os.system, "touch SENTINEL")}), {})
    write_torch_zip(tmp_path / "g_deep.pt", b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".", {})
    code = (
        "import glob\nfrom visionc import _C\nn = 0\n"
        "for f in sorted(glob.glob('?_*.pt')):\n"
        "    try: _C.torch_bin_load(f)\n"
        "    except (ValueError, OSError) as e: assert f in str(e), e; n += 1\n"
        "print('rejected', n)\n"
    )
    r = run_isolated(code, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "rejected 7"
    assert not (tmp_path / "SENTINEL").exists()


# ---- visionc.io: single files and sharded .bin directories ----

def test_sharded_bin_directory(tmp_path):
    """transformers 5 no longer writes .bin shards, so the legacy layout of
    save_pretrained(safe_serialization=False, max_shard_size=...) is rebuilt here with
    huggingface_hub's splitter (the same one transformers 4 used)."""
    from huggingface_hub import split_torch_state_dict_into_shards
    from transformers import ViTConfig, ViTForImageClassification
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                intermediate_size=64, image_size=32, patch_size=8))
    sd = model.state_dict()
    split = split_torch_state_dict_into_shards(sd, filename_pattern="pytorch_model{suffix}.bin", max_shard_size="20KB")
    assert split.is_sharded and len(split.filename_to_tensors) > 1
    for fname, names in split.filename_to_tensors.items():
        torch.save({n: sd[n].contiguous() for n in names}, tmp_path / fname)
    (tmp_path / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": split.metadata, "weight_map": split.tensor_to_filename}))
    got = load_state_dict(tmp_path)
    assert set(got) == set(sd)
    for k, v in sd.items():
        assert_bitexact(got[k], expected(v), k)
    # A tensor the index promises but its shard lacks.
    idx = json.loads((tmp_path / "pytorch_model.bin.index.json").read_text())
    first = sorted(split.filename_to_tensors)[0]
    idx["weight_map"]["ghost"] = first
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(idx))
    with pytest.raises(ValueError, match=f"{first}: 1 tensor\\(s\\) listed in .* are missing, e.g. 'ghost'"):
        load_state_dict(tmp_path)


def test_load_state_dict_file_kinds(tmp_path):
    sd = {"w": torch.randn(3, 3)}
    for name in ("a.pt", "a.pth", "a.bin", "weights.ckpt"):
        torch.save(sd, tmp_path / name)
        assert_bitexact(load_state_dict(tmp_path / name)["w"], sd["w"].numpy(), name)
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        load_state_dict(tmp_path / "nope.bin")
