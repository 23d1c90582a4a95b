"""One measurement in a fresh process (started by run.py): one workload in one framework, or the
peak memory of W4 training. Prints one line ``RESULT <json>``.

    python3 bench/worker.py time W4 torch --threads 2 --repeats 5 --target 1.0
    python3 bench/worker.py memory W4 shenjing --threads 2 --steps 20

The thread environment (OMP/OPENBLAS/MKL_NUM_THREADS) is set before numpy is imported; the torch
process does import shenjing, to build the seeded model whose initial weights it copies, except in
``memory`` mode, where each process holds only its own framework.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["time", "memory"])
    p.add_argument("workload")
    p.add_argument("framework", choices=["shenjing", "torch"])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--target", type=float, default=1.0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)

    from common import THREAD_VARS
    for var in THREAD_VARS:
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy  # noqa: F401  (after the environment: OpenBLAS reads it when it loads)
    from common import limit_threads, pools
    torch = None
    if args.framework == "torch":
        import torch
    keep = limit_threads(args.threads, torch)  # noqa: F841  (the limits hold while it lives)

    import workloads as W
    if args.mode == "memory":
        result = memory(args.workload, args.framework, args.steps)
    else:
        cfg = W.Config(repeats=args.repeats, target_s=args.target, warmup=args.warmup)
        if args.framework == "shenjing":
            result = W.run_shenjing(args.workload, cfg)
        else:
            result = W.run_torch(args.workload, cfg)
    result["pools"] = pools()
    if torch is not None:
        result["torch threads"] = torch.get_num_threads()
    if args.framework == "shenjing" and args.mode != "memory":
        from shenjing.backend import parallel
        result["pools"].append(f"shenjing's block pool: {parallel.threads()} threads"
                               + ("" if parallel._state["quiet"] else " (OpenBLAS spin not shortened)"))
    print("RESULT " + json.dumps(result), flush=True)


def memory(workload: str, framework: str, steps: int) -> dict:
    """Peak resident memory after ``steps`` training steps at the workload's batch size, and the peak
    after the imports alone (before the model was built). VmHWM is this process's own peak; ru_maxrss
    (getrusage) is reported beside it (run.py keeps the parent small, so the two should agree)."""
    import workloads as W
    from common import peak_rss_mib

    b = W.BATCH[workload]
    if framework == "shenjing":
        import shenjing  # noqa: F401
        base = peak_rss_mib()
        model = W.sj_model(workload)
        x, y = W.workload_data(workload, 4 * b, "shenjing")
        for i in range(steps):
            j = (i % 4) * b
            model.train_on_batch(x[j:j + b], y[j:j + b])
    else:
        import torch  # noqa: F401
        base = peak_rss_mib()
        model, opt, loss = W.torch_model(workload)  # torch's own initialisation: no shenjing in this process
        x, y = W.workload_data(workload, 4 * b, "torch")
        for i in range(steps):
            j = (i % 4) * b
            W.torch_epoch(model, opt, loss, x[j:j + b], y[j:j + b], b)
    peak = peak_rss_mib()
    key = "VmHWM" if "VmHWM" in peak else "ru_maxrss"
    return {"metrics": {"peak_mib": peak[key], "import_mib": base[key], "training_mib": peak[key] - base[key],
                        "ru_maxrss_mib": peak["ru_maxrss"]},
            "details": {"steps": steps, "batch": b, "source": key}}


if __name__ == "__main__":
    main()
