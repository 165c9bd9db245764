"""The thread count of visionc's kernels (set_num_threads / get_num_threads)."""
import operator

from ._native import _C


def set_num_threads(n: int | None = None) -> None:
    """Threads for visionc's OpenMP kernels (OpenBLAS stays at one thread inside them).

    n = 0 or None goes back to the default, which is read from the environment and the machine
    each time: VISIONC_NUM_THREADS if set, else OMP_NUM_THREADS (its first entry, as in
    "4,2"), else the smallest of the physical cores this process may run on, the CPUs in its
    affinity mask (taskset, Ray, numactl) and its cgroup's CPU quota rounded up (cgroup v2
    cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us: docker --cpus, Kubernetes limits). A
    variable that is not a positive integer (up to 4096) is ignored, with one line on stderr
    the first time. The count applies to calls that start after it; a call already running
    (in another Python thread) keeps the count it started with."""
    _C.set_num_threads(0 if n is None else operator.index(n))


def get_num_threads() -> int:
    """The thread count visionc's kernels use now: the default (see set_num_threads) until
    set_num_threads(n) chose another."""
    return _C.get_num_threads()
