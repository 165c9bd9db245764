"""The default thread count from the environment (hardening item 4): VISIONC_NUM_THREADS, else
OMP_NUM_THREADS, else the smallest of the physical cores, the affinity mask and the cgroup CPU
quota. Fresh interpreters (the default is read at import) under modified environments and under
`taskset`; the cgroup reader on fake /proc and /sys trees."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import visionc
from visionc import _C

PKG_PARENT = str(Path(visionc.__file__).resolve().parents[1])  # the tree this test imported visionc from
REPORT = "import visionc; from visionc import _C; print(visionc.get_num_threads())"


def _run(code=REPORT, prefix=(), **env):
    """(stdout, stderr) of a fresh python running code; env: None removes a variable."""
    e = {k: v for k, v in os.environ.items() if k not in ("VISIONC_NUM_THREADS", "OMP_NUM_THREADS")}
    e["PYTHONPATH"] = PKG_PARENT + os.pathsep + e.get("PYTHONPATH", "")
    e.update({k: v for k, v in env.items() if v is not None})
    r = subprocess.run([*prefix, sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr


def _threads(**env):
    out, err = _run(**env)
    return int(out.splitlines()[-1]), err


@pytest.fixture(scope="module")
def machine_default():
    """The default with no variable set (what the garbage cases fall back to)."""
    n, err = _threads()
    assert n >= 1 and "visionc:" not in err
    print(f"default thread count here, no variables: {n} (nproc {os.cpu_count()})", file=sys.stderr)
    return n


def test_visionc_variable():
    assert _threads(VISIONC_NUM_THREADS="3") == (3, "")


def test_omp_variable():
    assert _threads(OMP_NUM_THREADS="2") == (2, "")


def test_visionc_wins_over_omp():
    assert _threads(VISIONC_NUM_THREADS="3", OMP_NUM_THREADS="2")[0] == 3


def test_omp_list_takes_the_first():
    assert _threads(OMP_NUM_THREADS="4,2")[0] == 4
    assert _threads(OMP_NUM_THREADS=" 5 , 1 ")[0] == 5


@pytest.mark.parametrize("value", ["abc", "0", "-2", "2.5", "+3", "3x", "0x10", "5000", "99999999999999999999"])
def test_garbage_visionc_is_ignored_with_one_warning(machine_default, value):
    code = REPORT + "; visionc.set_num_threads(0); visionc.set_num_threads(None); print(visionc.get_num_threads())"
    out, err = _run(code, VISIONC_NUM_THREADS=value)
    assert [int(x) for x in out.split()] == [machine_default, machine_default]
    lines = [ln for ln in err.splitlines() if ln.startswith("visionc:")]
    assert len(lines) == 1, err  # once per process, however often the default is recomputed
    assert "VISIONC_NUM_THREADS" in lines[0] and repr(value)[1:-1] in lines[0], lines[0]


@pytest.mark.parametrize("value", ["x", "4,", ",4", "4,,2", "4,a", "0,2"])
def test_garbage_omp_is_ignored(machine_default, value):
    n, err = _threads(OMP_NUM_THREADS=value)
    assert n == machine_default and "OMP_NUM_THREADS" in err


def test_garbage_visionc_falls_through_to_omp():
    n, err = _threads(VISIONC_NUM_THREADS="many", OMP_NUM_THREADS="2")
    assert n == 2 and "VISIONC_NUM_THREADS" in err


def test_blank_means_unset(machine_default):
    # (libgomp, reading OMP_NUM_THREADS for itself, complains about a blank one; visionc does not)
    n, err = _threads(VISIONC_NUM_THREADS="", OMP_NUM_THREADS="  ")
    assert n == machine_default and "visionc:" not in err
    assert _threads(VISIONC_NUM_THREADS=" 3\t")[0] == 3


def test_default_is_the_smallest_limit(machine_default):
    out, _ = _run("from visionc import _C; print(_C.physical_cores(), _C.affinity_cpus(), _C.cgroup_cpu_limit())")
    cores, mask, quota = map(int, out.split())
    want = min(cores, mask, quota or cores)
    print(f"physical cores {cores}, affinity mask {mask}, cgroup quota {quota or 'none'} -> {want}", file=sys.stderr)
    assert machine_default == want


def test_taskset_one_cpu():
    taskset = shutil.which("taskset")
    if taskset is None:
        print("taskset (util-linux) is not installed: skipping", file=sys.stderr)
        pytest.skip("the taskset binary is absent")
    n, err = _threads(prefix=(taskset, "-c", "0"))
    print(f"default under taskset -c 0: {n}", file=sys.stderr)
    assert n == 1 and err == ""
    assert _threads(prefix=(taskset, "-c", "0"), VISIONC_NUM_THREADS="3")[0] == 3  # an explicit count wins


def test_set_and_reset():
    before = visionc.get_num_threads()
    try:
        visionc.set_num_threads(5)
        assert visionc.get_num_threads() == 5
        visionc.set_num_threads(None)
        assert visionc.get_num_threads() == _C.default_num_threads()
        visionc.set_num_threads(3)
        visionc.set_num_threads(0)
        assert visionc.get_num_threads() == _C.default_num_threads()
        with pytest.raises(ValueError):
            visionc.set_num_threads(-1)
        with pytest.raises(ValueError):
            visionc.set_num_threads(4097)
        with pytest.raises(TypeError):
            visionc.set_num_threads(2.5)
    finally:
        visionc.set_num_threads(before)


@pytest.mark.parametrize("text, is_list, want", [
    (None, 0, 0), ("", 0, 0), ("  ", 1, 0), ("7", 0, 7), (" 7 ", 0, 7), ("4096", 0, 4096), ("4097", 0, -1),
    ("4,2", 0, -1), ("4,2", 1, 4), ("4, 2", 1, 4), ("x", 1, -1), ("-1", 0, -1), ("1e3", 0, -1), ("٣", 0, -1),
])
def test_parse(text, is_list, want):
    assert _C.parse_num_threads(text, is_list) == want


# ---- cgroup quota on fake trees --------------------------------------------------------------

V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def _tree(tmp_path, cgroup, mountinfo=None, files=None):
    """root/proc/self/{cgroup,mountinfo} and files {path under root: content}."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    if mountinfo is not None:
        (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    for rel, text in (files or {}).items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("content, want", [
    ("max 100000\n", 0), ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1),
    ("400000 100000", 4), ("garbage\n", 0), ("200000\n", 0), ("200000 100000 7\n", 0), ("", 0),
    ("-5 100000\n", 0), ("200000 0\n", 0),
])
def test_cgroup_v2_cpu_max(tmp_path, content, want):
    root = _tree(tmp_path, "0::/job/step\n", V2_MOUNT, {"sys/fs/cgroup/job/step/cpu.max": content})
    assert _C.cgroup_cpu_limit(root) == want


def test_cgroup_v2_parent_quota_caps_the_child(tmp_path):
    root = _tree(tmp_path, "0::/job/step\n", V2_MOUNT, {"sys/fs/cgroup/job/cpu.max": "300000 100000\n",
                                                         "sys/fs/cgroup/job/step/cpu.max": "max 100000\n"})
    assert _C.cgroup_cpu_limit(root) == 3
    (tmp_path / "sys/fs/cgroup/job/step/cpu.max").write_text("800000 100000\n")
    assert _C.cgroup_cpu_limit(root) == 3  # the smaller of the two
    (tmp_path / "sys/fs/cgroup/job/cpu.max").write_text("max 100000\n")
    assert _C.cgroup_cpu_limit(root) == 8


def test_cgroup_v2_namespaced_root_and_no_mountinfo(tmp_path):
    """In a container with its own cgroup namespace the process sits at "/", the mount's root;
    without mountinfo the unified hierarchy is looked for at /sys/fs/cgroup."""
    root = _tree(tmp_path, "0::/\n", None, {"sys/fs/cgroup/cpu.max": "250000 100000\n"})
    assert _C.cgroup_cpu_limit(root) == 3


def test_cgroup_v2_missing_files(tmp_path):
    assert _C.cgroup_cpu_limit(_tree(tmp_path, "0::/job\n", V2_MOUNT)) == 0
    assert _C.cgroup_cpu_limit(str(tmp_path / "nowhere")) == 0  # no /proc/self/cgroup at all


V1_CGROUP = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
# The v1 cpu hierarchy mounted with the container's cgroup as its root (docker without cgroupns).
V1_MOUNT = ("25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
            "28 25 0:25 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
            "29 25 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n")


@pytest.mark.parametrize("quota, period, want", [
    ("150000\n", "100000\n", 2), ("-1\n", "100000\n", 0), ("100000", "100000", 1), ("x\n", "100000\n", 0),
    ("200000\n", "bad\n", 0), ("300000\n", "", 0),
])
def test_cgroup_v1(tmp_path, quota, period, want):
    base = "sys/fs/cgroup/cpu,cpuacct/"
    root = _tree(tmp_path, V1_CGROUP, V1_MOUNT, {base + "cpu.cfs_quota_us": quota, base + "cpu.cfs_period_us": period})
    assert _C.cgroup_cpu_limit(root) == want


def test_cgroup_v1_hierarchy_path_and_hybrid(tmp_path):
    """v1 mounted at its hierarchy root: the process's cgroup is a subdirectory, and its parent's
    quota counts too. With a v2 quota as well (a hybrid host), the smaller wins."""
    cg = "4:cpuacct,cpu:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n"
    mounts = ("29 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpuacct,cpu\n"
              "30 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    v1 = "sys/fs/cgroup/cpu/kubepods/pod1/"
    root = _tree(tmp_path, cg, mounts, {v1 + "cpu.cfs_quota_us": "600000\n", v1 + "cpu.cfs_period_us": "100000\n",
                                        v1 + "c1/cpu.cfs_quota_us": "-1\n", v1 + "c1/cpu.cfs_period_us": "100000\n"})
    assert _C.cgroup_cpu_limit(root) == 6
    (tmp_path / "sys/fs/cgroup/unified/kubepods/pod1/c1").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/unified/kubepods/pod1/c1/cpu.max").write_text("120000 100000\n")
    assert _C.cgroup_cpu_limit(root) == 2


def test_cgroup_outside_the_mounted_subtree_reads_the_mount_point(tmp_path):
    mounts = "29 25 0:26 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    root = _tree(tmp_path, "0::/job\n", mounts, {"sys/fs/cgroup/cpu.max": "100000 100000\n"})
    assert _C.cgroup_cpu_limit(root) == 1


def test_cgroup_real_machine():
    n = _C.cgroup_cpu_limit()
    print(f"cgroup CPU quota of this process: {n or 'none'}", file=sys.stderr)
    assert n >= 0
