"""Profile shenjing's side of one workload with cProfile and list the hotspots.

    python3 bench/hotspots.py W4 [--what train|infer|latency] [--steps 30] [--threads 2] [--top 25]

Two views of the same profile:

- **self + C**: each Python function's own time plus the time of the C functions (numpy ufuncs,
  matmul, ``np.add.at`` …) it calls directly — "the time spent on this function's lines". The list
  of C callees with the largest share is printed under each row.
- **cumulative**: the usual inclusive time of the shenjing functions.

Shares are of the total profiled time (warm-up excluded). cProfile adds a per-call cost to Python
functions, so functions called very often look somewhat heavier than they are.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def short(func) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a built-in / C function
    parts = filename.replace("\\", "/").split("/")
    if "shenjing" in parts:
        parts = parts[parts.index("shenjing"):]
    elif "numpy" in parts:
        parts = parts[parts.index("numpy"):]
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}:{name}"


def _is_shenjing(func) -> bool:
    return "shenjing" in func[0].replace("\\", "/").split("/") or func[0].endswith(("run.py", "workloads.py"))


def _label(func) -> str:
    return func[2] if func[0] == "~" else short(func)


def self_plus_c(stats: pstats.Stats):
    """{shenjing function: (seconds, {library callee: seconds})}: a shenjing function's own time plus
    the time of the library code (C functions, numpy's Python wrappers …) it calls, followed down to
    the next shenjing function. A library function called from several places has its time shared
    among its callers in proportion to the time of each call edge."""
    table = {}
    entries = stats.stats

    def credit(func, amount, via, depth=0):
        callers = entries[func][4]
        total = sum(edge[3] for edge in callers.values()) or sum(edge[1] for edge in callers.values()) or 1
        for caller, edge in callers.items():
            part = amount * ((edge[3] or edge[1]) / total)
            if caller not in entries:
                continue
            if _is_shenjing(caller):
                row = table.setdefault(caller, [0.0, {}])
                row[0] += part
                row[1][via or _label(func)] = row[1].get(via or _label(func), 0.0) + part
            elif depth < 20:
                credit(caller, part, _label(caller) if caller[0] == "~" or via is None else via, depth + 1)

    for func, (_, _, tt, _, _) in entries.items():
        if _is_shenjing(func):
            table.setdefault(func, [0.0, {}])[0] += tt
        else:
            credit(func, tt, None)
    return table


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["W1", "W2", "W3", "W4", "W5"])
    p.add_argument("--what", choices=["train", "infer", "latency"], default="train")
    p.add_argument("--steps", type=int, default=30, help="training steps / predict batches / calls profiled")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--save", default=None, help="also write the raw profile (pstats) to this file")
    args = p.parse_args(argv)

    from common import THREAD_VARS
    for var in THREAD_VARS:
        os.environ[var] = str(args.threads)
    import numpy as np  # noqa: F401
    from common import limit_threads
    keep = limit_threads(args.threads)  # noqa: F841

    import workloads as W

    from shenjing.autodiff import no_grad

    model = W.sj_model(args.workload)
    b = W.BATCH[args.workload]
    if args.what == "train":
        x, y = W.workload_data(args.workload, b * min(args.steps, 8), "shenjing")
        for _ in range(3):
            model.train_on_batch(x[:b], y[:b])
        n = len(x) // b

        def work():
            for i in range(args.steps):
                j = (i % n) * b
                model.train_on_batch(x[j:j + b], y[j:j + b])
    elif args.what == "infer":
        x, _ = W.workload_data(args.workload, 1000, "shenjing")
        model.predict(x, batch_size=1000)

        def work():
            for _ in range(args.steps):
                model.predict(x, batch_size=1000)
    else:
        x, _ = W.workload_data(args.workload, 1, "shenjing")

        def call():
            with no_grad():
                return model(x).data
        call()

        def work():
            for _ in range(args.steps):
                call()

    t0 = time.perf_counter()
    work()
    plain = time.perf_counter() - t0
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(work)
    profiled = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    if args.save:
        stats.dump_stats(args.save)
    total = stats.total_tt
    print(f"{args.workload} {args.what}: {args.steps} steps, {plain:.3f} s unprofiled "
          f"({plain / args.steps * 1e3:.2f} ms/step), {profiled:.3f} s under cProfile; shares of {total:.3f} s\n")

    table = self_plus_c(stats)
    rows = sorted(table.items(), key=lambda kv: -kv[1][0])[:args.top]
    print(f"{'share':>6} {'seconds':>8} {'calls':>7}  self + C callees (python function: own lines and direct C calls)")
    for func, (sec, children) in rows:
        calls = stats.stats[func][1]
        top_c = sorted(children.items(), key=lambda kv: -kv[1])[:3]
        c_text = ", ".join(f"{name} {100 * s / total:.1f}%" for name, s in top_c if s / total >= 0.005)
        print(f"{100 * sec / total:5.1f}% {sec:8.3f} {calls:7d}  {short(func)}" + (f"   [{c_text}]" if c_text else ""))

    print(f"\n{'share':>6} {'seconds':>8} {'calls':>7}  cumulative (shenjing functions)")
    cum = sorted(((f, v) for f, v in stats.stats.items() if "shenjing" in f[0]), key=lambda kv: -kv[1][3])
    for func, (_, nc, _, ct, _) in cum[:args.top]:
        print(f"{100 * ct / total:5.1f}% {ct:8.3f} {nc:7d}  {short(func)}")


if __name__ == "__main__":
    main()
