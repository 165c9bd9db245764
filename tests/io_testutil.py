"""Helpers for the checkpoint-reader tests: import path, zip/pickle crafting, subprocess runs."""
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from helpers import subprocess_env
from visionc import _C  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def run_isolated(code, cwd=None, timeout=120):
    """Runs `code` in a fresh interpreter (so a crash cannot take pytest down)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=subprocess_env(),
                          timeout=timeout)


def cut_points(size, count=60):
    """About `count` truncation offsets spread over [0, size), always including the edges."""
    step = max(1, size // count)
    return sorted(set(list(range(0, size, step)) + [1, 7, 8, 9, size - 1]) - {size})


# ---- zip writing (torch.save layout) ----

def read_zip_entries(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries, zip64=False, align=64):
    """Writes stored entries like torch's writer (data aligned to `align` with a padding extra
    field), optionally with zip64 records everywhere (local and central extras, zip64 end
    record and locator) to exercise that code path on a small file."""
    out = bytearray()
    central = []
    for name, data in entries:
        name_b = name.encode()
        offset = len(out)
        crc = zlib.crc32(data)
        extra = b""
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        pad = (-(offset + 30 + len(name_b) + len(extra) + 4)) % align
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        size32 = 0xFFFFFFFF if zip64 else len(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, 0, 0, 0, crc, size32, size32,
                           len(name_b), len(extra))
        out += name_b + extra + data
        central.append((name_b, crc, len(data), offset))
    cd_start = len(out)
    for name_b, crc, size, offset in central:
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, size, size, offset)
            s32 = o32 = 0xFFFFFFFF
        else:
            extra, s32, o32 = b"", size, offset
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if zip64 else 20, 0, 0, 0, 0, crc, s32, s32,
                           len(name_b), len(extra), 0, 0, 0, 0, o32)
        out += name_b + extra
    cd_size = len(out) - cd_start
    n = len(central)
    if zip64:
        eocd64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start)
        out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, 0)
    Path(path).write_bytes(bytes(out))


# ---- hand-made torch pickles (for tensors torch.save would never write) ----

class FakeStorage:
    """Stands for a storage: pickled as the persistent id torch uses."""

    def __init__(self, key, storage_type, numel):
        self.key, self.storage_type, self.numel = key, storage_type, numel


class FakeTensor:
    def __init__(self, storage, offset, size, stride, extra_args=()):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()) + tuple(extra_args)

    def __reduce__(self):
        import torch._utils
        return (torch._utils._rebuild_tensor_v2, self.args)


class _TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def torch_pickle(obj, protocol=2):
    buf = io.BytesIO()
    _TorchLikePickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def write_torch_zip(path, pkl, storages, prefix="archive", zip64=False):
    """A torch.save-style archive from pickle bytes and {key: bytes} storages."""
    entries = [(f"{prefix}/data.pkl", pkl), (f"{prefix}/byteorder", b"little")]
    entries += [(f"{prefix}/data/{k}", v) for k, v in storages.items()]
    entries.append((f"{prefix}/version", b"3\n"))
    write_zip(path, entries, zip64=zip64)
