"""Shared pieces of the benchmark: thread limits, timing, machine description, FLOP counts.

Nothing here imports shenjing or torch at module level: the worker sets the thread environment
first, then imports the framework it measures.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")


def thread_env(threads: int, base: dict | None = None) -> dict:
    """An environment for a child process whose BLAS / OpenMP pools have ``threads`` threads."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    return env


def limit_threads(threads: int, torch_module=None):
    """Limit the pools of this process (call after importing numpy / torch); returns a description.

    The environment variables (set by the parent) already fix OpenBLAS's pool at load time;
    threadpoolctl, when installed, enforces the limit at run time too. torch gets
    ``set_num_threads``.
    """
    limiter = None
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=threads)
    except ImportError:
        pass
    if torch_module is not None:
        torch_module.set_num_threads(threads)
    return limiter


def pools() -> list:
    """The thread pools loaded in this process (threadpoolctl), as short strings."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["(threadpoolctl not installed)"]
    return [f"{p.get('internal_api')} {p.get('version') or ''} {p.get('architecture') or ''}: "
            f"{p.get('num_threads')} threads".replace("  ", " ") for p in threadpool_info()]


# ------------------------------------------------------------------------------------ timing

def measure(call, repeats: int, target_s: float, warmup: int = 2, max_calls: int = 1_000_000):
    """Seconds per ``call()``: warm-up calls (not timed), one timed call to pick how many calls make
    a repeat of about ``target_s``, then ``repeats`` repeats; returns (median, all, calls per repeat)."""
    for _ in range(warmup):
        call()
    t0 = time.perf_counter()
    call()
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(1, min(max_calls, math.ceil(target_s / once)))
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        per_call.append((time.perf_counter() - t0) / n)
    return statistics.median(per_call), per_call, n


def time_runs(run, repeats: int):
    """Seconds of each of ``repeats`` calls of ``run()`` (a whole epoch, a whole predict); the median and all."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def batches_for(seconds_per_batch: float, target_s: float, lo: int = 2, hi: int = 2000) -> int:
    """How many batches make an epoch of about ``target_s``."""
    return max(lo, min(hi, math.ceil(target_s / max(seconds_per_batch, 1e-7))))


# ------------------------------------------------------------------------------------ FLOPs

def dense_macs(sizes: list) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def conv_macs(out_h: int, out_w: int, k_h: int, k_w: int, c_in: int, c_out: int) -> int:
    return out_h * out_w * k_h * k_w * c_in * c_out


# multiply-accumulates of one sample's forward pass (weights only: activations, pooling, softmax omitted)
MACS = {
    "W2": dense_macs([784, 512, 512, 10]),
    "W3": (conv_macs(24, 24, 5, 5, 1, 4) + conv_macs(22, 22, 3, 3, 4, 8) + conv_macs(9, 9, 3, 3, 8, 16)
           + dense_macs([256, 128, 10])),
    "W4": conv_macs(26, 26, 3, 3, 1, 32) + conv_macs(24, 24, 3, 3, 32, 64) + dense_macs([9216, 128, 10]),
}


def forward_flops(workload: str) -> float:
    """FLOPs of one sample's forward pass: 2 · MACs."""
    return 2.0 * MACS[workload]


def training_flops(workload: str) -> float:
    """FLOPs of one sample's training step: about 3 × forward (forward, input gradient, weight gradient)."""
    return 3.0 * forward_flops(workload)


# ------------------------------------------------------------------------------------ machine

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"]
                    return " ".join(w for w in wanted if w in flags)
    except OSError:
        pass
    return ""


def numpy_blas() -> str:
    import numpy as np
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "see numpy.show_config()"


def git_revision(root: str) -> str:
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except Exception:
        return "unknown"


def machine(threads: int, root: str) -> dict:
    import numpy as np
    info = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu_model(),
        "cpu flags": cpu_flags(),
        "cores (os.cpu_count)": os.cpu_count(),
        "cores usable (sched_getaffinity)": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?",
        "threads used (both frameworks)": threads,
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy BLAS": numpy_blas(),
        "shenjing": f"{_version('shenjing')} (git {git_revision(root)})",
        "shenjing compiled kernels": compiled_kernels(),
    }
    # torch is asked in a child process: the parent stays small (children inherit its ru_maxrss)
    code = ("import json, torch; print(json.dumps([torch.__version__, torch.backends.mkl.is_available(), "
            "torch.backends.mkldnn.is_available()]))")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        version, mkl, mkldnn = json.loads(out.stdout.strip().splitlines()[-1])
        info["torch"] = version
        info["torch BLAS / kernels"] = ("MKL" if mkl else "no MKL") + (", oneDNN" if mkldnn else "")
    except Exception:
        info["torch"] = "not installed"
    return info


def compiled_kernels() -> str:
    """Whether shenjing's numba kernel path is on (``shenjing.backend.jit``), and why not if off."""
    if os.environ.get("SHENJING_JIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return "off (SHENJING_JIT=0)"
    if _version("numba") == "?":
        return "off (numba not installed)"
    return f"on (numba {_version('numba')})"


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "?"


def peak_rss_mib() -> dict:
    """This process's peak resident memory, MiB: ``VmHWM`` (/proc/self/status, this process image only)
    and ``ru_maxrss`` (getrusage; on Linux it also carries the parent's peak across fork + exec)."""
    import resource
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}  # KiB on Linux
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out["VmHWM"] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out
