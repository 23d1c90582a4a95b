"""shenjing vs PyTorch, side by side, in one run.

    python3 bench/run.py [--quick] [--only W2,W4] [--repeats 5] [--threads N] [--out bench/RESULTS.md]

Every (workload, framework) pair runs in its own fresh process with the same thread limit (OpenBLAS /
OpenMP / MKL environment, threadpoolctl when installed, ``torch.set_num_threads``); shenjing's process
never imports torch. The table (with the machine and the date) is printed and written to ``--out``.
See bench/README.md for what each workload is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common as C  # noqa: E402
import workloads as W  # noqa: E402

EXTRAS = ["IMPORT", "MEMORY"]


def parse(argv=None):
    p = argparse.ArgumentParser(description="shenjing vs PyTorch benchmark suite")
    p.add_argument("--quick", action="store_true", help="tiny repeats: a smoke test (< 60 s), numbers not meaningful")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of W1,W2,W3,W4,W5,P0,IMPORT,MEMORY (P0 comes with W2/W4, "
                        "MEMORY with W4)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement, median reported "
                                                              "(default 5; 2 with --quick)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for both frameworks (default: all cores, %(default)s)")
    p.add_argument("--target", type=float, default=None,
                   help="seconds per timed repeat (default 1.0; 0.03 with --quick)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run each workload's pair of workers this many times, alternating which framework goes "
                        "first; each metric is the median over the rounds (default 1): a drift of the machine's "
                        "speed then reaches both frameworks alike")
    p.add_argument("--mem-steps", type=int, default=None, help="W4 training steps before reading the peak "
                                                               "memory (default 20; 2 with --quick)")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"), help="markdown file to (over)write")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.target = args.target or (0.03 if args.quick else 1.0)
    args.mem_steps = args.mem_steps or (2 if args.quick else 20)
    args.import_repeats = 2 if args.quick else 5
    args.warmup = 1 if args.quick else 3
    selected = [s.strip().upper() for s in args.only.split(",")] if args.only else W.WORKLOADS + EXTRAS
    unknown = [s for s in selected if s not in W.WORKLOADS + EXTRAS]
    if unknown:
        p.error(f"--only: unknown {unknown}; choose from {W.WORKLOADS + EXTRAS}")
    if ("W2" in selected or "W4" in selected) and "P0" not in selected:
        selected.append("P0")
    if "W4" in selected and "MEMORY" not in selected:
        selected.append("MEMORY")
    args.selected = [s for s in W.WORKLOADS + EXTRAS if s in selected]
    return args


def has_torch() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None  # not imported here: the parent stays small


def worker(args, mode, workload, framework) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "worker.py"), mode, workload, framework, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--target", str(args.target), "--warmup", str(args.warmup),
           "--steps", str(args.mem_steps)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=C.thread_env(args.threads), cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["wall_s"] = wall
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail), "wall_s": wall}


def import_times(args) -> dict:
    """Seconds of ``import <module>`` in a fresh interpreter, median of a few."""
    out = {}
    for module in ("numpy", "shenjing", "torch"):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        times = []
        for _ in range(args.import_repeats):
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env=C.thread_env(args.threads), cwd=ROOT, timeout=300)
            if proc.returncode != 0:
                break
            times.append(float(proc.stdout.strip().splitlines()[-1]))
        out[module] = statistics.median(times) if times else None
    return out


def merge_rounds(rounds: list) -> dict:
    """One result from a workload's rounds in one framework: each metric the median over the rounds that
    gave it, the repeats of every round (so ± spans them all; a round's repeat seconds rescaled to the
    first round's batches per repeat), the other fields from the first round."""
    ok = [r for r in rounds if "error" not in r]
    if len(ok) <= 1:
        return (ok or rounds)[0]
    merged = dict(ok[0])
    merged["metrics"] = {key: statistics.median([r["metrics"][key] for r in ok if key in r.get("metrics", {})])
                         for key in ok[0].get("metrics", {})}
    details = dict(ok[0].get("details") or {})
    for key, first in details.items():
        if isinstance(first, dict):
            details[key] = {name: _pooled_repeats(ok, key, name) if name.startswith("repeat ") else value
                            for name, value in first.items()}
    merged["details"] = details
    merged["wall_s"] = sum(r.get("wall_s", 0) for r in rounds)
    return merged


def _pooled_repeats(results: list, key: str, name: str) -> list:
    """The repeat values ``name`` of detail ``key`` from every result, repeat seconds rescaled to the first
    result's batches per repeat (the rounds may time different numbers of batches)."""
    first = results[0]["details"][key]
    pooled = []
    for r in results:
        d = (r.get("details") or {}).get(key) or {}
        scale = first["batches per repeat"] / d["batches per repeat"] \
            if name == "repeat seconds" and d.get("batches per repeat") else 1
        pooled += [v * scale for v in d.get(name, [])]
    return pooled


# ------------------------------------------------------------------------------------ formatting

def fmt(value, unit="") -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + unit


def spread(values) -> str:
    if not values or len(values) < 2:
        return ""
    med = statistics.median(values)
    return f"±{100 * (max(values) - min(values)) / 2 / med:.0f}%" if med else ""


def metric_value(results, workload, framework, key):
    r = results.get((workload, framework))
    if not r or "metrics" not in r:
        return None
    return r["metrics"].get(key)


def repeat_values(results, workload, framework, key):
    r = results.get((workload, framework)) or {}
    d = (r.get("details") or {}).get(key) or {}
    for name in ("repeat seconds", "repeat µs", "repeat GFLOP/s"):
        if name in d:
            return d[name]
    return None


def report(args, info, results, imports, memory) -> str:
    lines = ["# shenjing vs PyTorch", ""]
    mode = "QUICK smoke test (tiny repeats: numbers are NOT meaningful)" if args.quick else "full run"
    command = " ".join(["python3 bench/run.py"] + sys.argv[1:])
    rounds = (f" in each of {args.rounds} rounds (the frameworks' workers alternating; each metric the median "
              f"over the rounds)") if args.rounds > 1 else ""
    lines += [f"`{command}` — {mode}; "
              f"median of {args.repeats} repeats of ≈{args.target:g} s each after warm-up{rounds}; "
              f"{args.threads} thread(s) for both frameworks.", ""]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()] + [""]

    lines += ["## Results", "",
              "ratio = shenjing / torch. For throughput (higher is better) a ratio above 1 means shenjing is "
              "faster; for latency (lower is better) a ratio below 1 means shenjing is faster. "
              "“shenjing speed” puts both on one scale: shenjing's speed as a multiple of torch's (>1: shenjing "
              "faster). ± is half the range of the repeats, relative to the median.", "",
              "| workload | metric | unit | better | shenjing | torch | ratio shenjing/torch | shenjing speed |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for wl, key, desc, unit, better in W.METRICS:
        if wl not in args.selected:
            continue
        a, b = metric_value(results, wl, "shenjing", key), metric_value(results, wl, "torch", key)
        ra, rb = repeat_values(results, wl, "shenjing", key), repeat_values(results, wl, "torch", key)
        ratio = a / b if a and b else None
        speed = (ratio if better == "higher" else 1 / ratio) if ratio else None
        label = "numpy BLAS (shenjing's)" if wl == "P0" else ""
        lines.append(f"| {wl} | {desc}{(' — ' + label) if label else ''} | {unit} | {better} | {fmt(a)} {spread(ra)} | "
                     f"{fmt(b)} {spread(rb)} | {fmt(ratio)} | {fmt(speed, '×')} |")
    lines.append("")

    if "P0" in args.selected and ("W2" in args.selected or "W4" in args.selected):
        p_np, p_t = metric_value(results, "P0", "shenjing", "gflops"), metric_value(results, "P0", "torch", "gflops")
        lines += ["## Arithmetic efficiency (fraction of P0)", "",
                  "Model FLOPs counted analytically (weights only): forward = 2 × MACs per sample, training ≈ "
                  "3 × forward. shenjing is measured against numpy's matmul (P0, numpy), torch against its own "
                  "(P0, torch).", "",
                  "| workload | mode | MFLOP/sample | shenjing GFLOP/s | % of numpy P0 | torch GFLOP/s | "
                  "% of torch P0 |", "|---|---|---:|---:|---:|---:|---:|"]
        for wl in ("W2", "W4"):
            if wl not in args.selected:
                continue
            for key, mode, flops in (("train_sps", "training", C.training_flops(wl)),
                                     ("infer_sps", "inference", C.forward_flops(wl))):
                a, b = metric_value(results, wl, "shenjing", key), metric_value(results, wl, "torch", key)
                ga = a * flops / 1e9 if a else None
                gb = b * flops / 1e9 if b else None
                lines.append(f"| {wl} | {mode} | {flops / 1e6:.2f} | {fmt(ga)} | "
                             f"{fmt(100 * ga / p_np if ga and p_np else None, '%')} | {fmt(gb)} | "
                             f"{fmt(100 * gb / p_t if gb and p_t else None, '%')} |")
        lines.append("")

    if imports or memory:
        lines += ["## Start-up and memory", "", "| what | shenjing | torch | ratio |", "|---|---:|---:|---:|"]
        if imports:
            a, b = imports.get("shenjing"), imports.get("torch")
            lines.append(f"| `import` time, fresh process, median of {args.import_repeats} (ms; numpy alone: "
                         f"{fmt(imports['numpy'] * 1e3 if imports.get('numpy') else None)} ms, included in "
                         f"shenjing's) | {fmt(a * 1e3 if a else None)} | {fmt(b * 1e3 if b else None)} | "
                         f"{fmt(a / b if a and b else None)} |")
        if memory:
            ma, mb = memory.get("shenjing", {}), memory.get("torch", {})
            for key, label in (("peak_mib", f"W4 training: peak resident memory (VmHWM) after {args.mem_steps} "
                                            f"steps, batch 128, separate process (MiB)"),
                               ("ru_maxrss_mib", "the same read as getrusage ru_maxrss (MiB)"),
                               ("import_mib", "peak after the imports, before the model (MiB)"),
                               ("training_mib", "peak − after imports: model, data and training (MiB)")):
                a, b = (ma.get("metrics") or {}).get(key), (mb.get("metrics") or {}).get(key)
                lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(a / b if a and b else None)} |")
        lines.append("")

    lines += ["## Checks and details", "",
              "Same model: the loss on one fixed batch in inference mode, before training, from the same initial "
              "weights (copied from shenjing into torch) — the two should agree to float32 rounding.", "",
              "| workload | initial loss shenjing | initial loss torch | rel. diff | notes |",
              "|---|---:|---:|---:|---|"]
    for wl in W.WORKLOADS:
        if wl not in args.selected or wl == "P0":
            continue
        da = ((results.get((wl, "shenjing")) or {}).get("details") or {})
        db = ((results.get((wl, "torch")) or {}).get("details") or {})
        la, lb = da.get("initial loss"), db.get("initial loss")
        rel = abs(la - lb) / abs(lb) if la is not None and lb else None
        notes = []
        if wl == "W4" and "latency_us" in da:
            lat = da["latency_us"]
            notes.append(f"1-sample latency: predict_on_batch {fmt(lat['predict_on_batch µs'])} µs, model(x) "
                         f"under no_grad {fmt(lat['model(x) under no_grad µs'])} µs (reported: {lat['reported']})")
        for fw in ("shenjing", "torch"):
            err = (results.get((wl, fw)) or {}).get("error")
            if err:
                notes.append(f"{fw} FAILED: {err}")
        flag = " ⚠" if rel is not None and rel > 1e-3 else ""
        lines.append(f"| {wl} | {fmt(la) if la is None else f'{la:.6f}'} | "
                     f"{fmt(lb) if lb is None else f'{lb:.6f}'} | "
                     f"{'n/a' if rel is None else f'{rel:.1e}'}{flag} | {'; '.join(notes)} |")
    for fw in ("shenjing", "torch"):
        err = (results.get(("P0", fw)) or {}).get("error")
        if err:
            lines.append(f"| P0 | | | | {fw} FAILED: {err} |")
    pools = {fw: r.get("pools") for (wl, fw), r in results.items() if r.get("pools")}
    lines += ["", "Thread pools seen by the workers (threadpoolctl): "
              + "; ".join(f"{fw}: {', '.join(p)}" for fw, p in pools.items()), ""]
    lines += ["Layouts: shenjing runs channels-last (NHWC) with one-hot targets and softmax outputs "
              "(Keras's form); torch runs NCHW (its preferred layout) on logits with class-index targets "
              "(CrossEntropyLoss / BCEWithLogitsLoss, torch's usual form), and its predict adds the softmax. "
              "Optimizers use Keras's hyper-parameters in both (Adam epsilon 1e-7). Data: seeded uniform random "
              "MNIST-shaped images and labels (speed does not depend on the values).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    t_start = time.perf_counter()
    info = C.machine(args.threads, ROOT)
    torch_ok = has_torch()
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.2f} — another process is using the CPU; timings will be low",
              file=sys.stderr)
    frameworks = ["shenjing"] + (["torch"] if torch_ok else [])
    results = {}
    for wl in W.WORKLOADS:
        if wl not in args.selected:
            continue
        runs = {fw: [] for fw in frameworks}
        for round_ in range(args.rounds):
            for fw in frameworks if round_ % 2 == 0 else frameworks[::-1]:
                r = worker(args, "time", wl, fw)
                runs[fw].append(r)
                shown = {k: round(v, 2) for k, v in (r.get("metrics") or {}).items()}
                print(f"[{time.perf_counter() - t_start:6.1f}s] {wl} {fw:8s} {shown or r.get('error')}",
                      file=sys.stderr, flush=True)
        for fw in frameworks:
            results[(wl, fw)] = merge_rounds(runs[fw])
    imports = import_times(args) if "IMPORT" in args.selected else None
    memory = {}
    if "MEMORY" in args.selected:
        for fw in frameworks:
            memory[fw] = worker(args, "memory", "W4", fw)
            print(f"[{time.perf_counter() - t_start:6.1f}s] memory {fw}: {memory[fw].get('metrics') or memory[fw]}",
                  file=sys.stderr, flush=True)
    text = report(args, info, results, imports, memory)
    text += f"\nTotal run time: {time.perf_counter() - t_start:.0f} s.\n"
    print(text)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    failed = [k for k, r in results.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
