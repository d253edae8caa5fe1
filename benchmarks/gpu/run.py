"""The GPU benchmark: SAGAN train steps on one GPU, keras_sagan on JAX beside our PyTorch reference model.

    python benchmarks/gpu/run.py          # on the GPU machine: the full sizes, within --budget-s
    python benchmarks/gpu/run.py --cpu    # here: tiny sizes on the CPU (a check that it runs)

Workloads (NAME = framework_preset_bBATCH_precision), most important first, so that a budget that
runs out loses the least:
- `jax_celeba64_b{64,256}_{float32,bfloat16}`: keras_sagan's `celeba64`, its stateless
  `SAGAN.train_step` jitted (`jax.jit(..., donate_argnums=0)`), `bfloat16` = `mixed_bfloat16`;
- `jax_imagenet128_b{64,256}_{float32,bfloat16}`: the conditional 1000-class resnet;
- `torch_celeba64_b{64,256}_float32`: `benchmarks/reference_torch.py`'s model of the reference,
  eager, on CUDA (the reference exists only at 64x64);
- `kerastorch_celeba64_b{64,256}_float32`, `kerastorch_celeba64_b64_bfloat16`: keras_sagan's
  `celeba64` on `KERAS_BACKEND=torch` (its eager torch step), on the same GPU as the torch rows.

Each workload runs in its own process (`--child NAME`), so its peak memory is its own, a crash or
out-of-memory loses only that workload, and a process that overruns is killed at its time limit.
The JSON is rewritten after every workload: `--out`, else `$OUT/gpu_benchmark.json` when OUT is
set (the device tool's folder), else `benchmarks/gpu/results.json`. A table is printed at the end.

MFU = counted FLOPs per step / seconds per step / peak. Peaks: bfloat16 against 790 TFLOP/s (an
8192^3 bf16 matmul measured on the H200 here), float32 against 67 TFLOP/s (the H200 datasheet's
dense FP32, no tensor cores; TF32 convolutions can exceed it). `useful` columns also divide the
NOTES.md figure, 234.8 GFLOP for one celeba64 iteration at batch 64 (scaled by batch), so that
the JAX and torch rows share one yardstick.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import parse, run  # noqa: E402

WORKLOADS = [
    "jax_celeba64_b64_bfloat16",
    "torch_celeba64_b64_float32",
    "jax_imagenet128_b256_bfloat16",
    "jax_celeba64_b256_bfloat16",
    "torch_celeba64_b256_float32",
    "kerastorch_celeba64_b64_float32",
    "jax_celeba64_b64_float32",
    "kerastorch_celeba64_b256_float32",
    "kerastorch_celeba64_b64_bfloat16",
    "jax_celeba64_b256_float32",
    "jax_imagenet128_b64_bfloat16",
    "jax_imagenet128_b256_float32",
    "jax_imagenet128_b64_float32",
]
PEAK_TFLOPS = {"bfloat16": 790.0, "float32": 67.0}
PEAK_SOURCE = {
    "bfloat16": "8192^3 bf16 matmul measured on the H200 (device KINDS.md)",
    "float32": "H200 datasheet dense FP32 (no tensor cores)",
}
CELEBA64_GFLOP_B64 = 234.8  # NOTES.md: torch FlopCounterMode, D step with detached fakes + G step
# --cpu: tiny sizes, 2 images per step (the batch is in the name, so the tiny names are their own).
CPU_BATCH = 2


def default_out():
    if os.environ.get("OUT"):
        return os.path.join(os.environ["OUT"], "gpu_benchmark.json")
    return os.path.join(HERE, "results.json")


def workload_names(cpu, only):
    names = only or WORKLOADS
    if cpu:  # the same workloads, each at the tiny batch; duplicates dropped
        names = list(dict.fromkeys(name.replace(f"_b{parse(name)[2]}_", f"_b{CPU_BATCH}_") for name in names))
    return names


def _metrics(name, result, cpu):
    """Adds img/s-derived MFU figures to an ok result."""
    framework, preset, batch, precision = parse(name)
    peak = PEAK_TFLOPS[precision] * 1e12
    step_s = result["seconds_per_step"]
    if result.get("flops_per_step"):
        result["tflops_per_second"] = result["flops_per_step"] / step_s / 1e12
        result["mfu"] = result["flops_per_step"] / step_s / peak
    if preset == "celeba64" and not cpu:
        useful = CELEBA64_GFLOP_B64 * 1e9 * batch / 64
        result["notes_flops_per_step"] = useful
        result["useful_mfu"] = useful / step_s / peak
    result["peak_tflops"] = PEAK_TFLOPS[precision]
    result["peak_source"] = PEAK_SOURCE[precision]
    return result


def run_child(name, args, timeout_s):
    """Runs one workload in a subprocess; returns its result dict, a failure said in `status`."""
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "jax")
    if parse(name)[0] == "kerastorch":  # keras_sagan on the torch backend
        env["KERAS_BACKEND"] = "torch"
    if args.cpu:
        env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, os.path.abspath(__file__), "--child", name, "--iterations", str(args.iterations)]
    command += ["--step-budget-s", str(args.step_budget_s)] + (["--cpu"] if args.cpu else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: killed after its time limit of {timeout_s:.0f} s", "wall_s": timeout_s}
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        oom = "RESOURCE_EXHAUSTED" in proc.stderr or "out of memory" in proc.stderr.lower()
        kind = "out of memory" if oom else f"exit status {proc.returncode}"
        return {"status": f"failed: {kind}: {tail[-600:]}", "wall_s": wall}
    result = json.loads(lines[-1])
    result["wall_s"] = wall
    return result


def cross_checks(workloads):
    """keras_sagan's FLOP count of its celeba64 step (XLA's on JAX, torch's on torch) over the torch reference's
    count of the same (detached) iteration."""
    checks = {}
    for name, row in workloads.items():
        framework, preset, batch, precision = parse(name)
        torch_row = workloads.get(f"torch_{preset}_b{batch}_float32", {})
        ours = framework in ("jax", "kerastorch")
        if ours and row.get("flops_per_step") and torch_row.get("useful_flops_per_step"):
            checks[f"{name}_{'xla' if framework == 'jax' else 'torch'}_over_torch_useful_flops"] = (
                row["flops_per_step"] / torch_row["useful_flops_per_step"]
            )
    return checks


def print_table(results):
    header = [
        "workload",
        "status",
        "img/s",
        "ms/step",
        "compile s",
        "1st step s",
        "peak GiB",
        "GFLOP/step",
        "MFU",
        "useful MFU",
    ]
    rows = [header]
    for name, r in results["workloads"].items():
        ok = r.get("status") == "ok"

        def fmt(key, scale=1.0, digits=1, r=r, ok=ok):
            value = r.get(key) if ok else None
            return "-" if value is None else f"{value * scale:.{digits}f}"

        def percent(key, r=r, ok=ok):
            return "-" if not ok or r.get(key) is None else f"{100 * r[key]:.1f}%"

        status = r.get("status", "?")
        rows.append(
            [
                name,
                status if len(status) < 40 else status[:37] + "...",
                fmt("images_per_second"),
                fmt("seconds_per_step", 1e3, 2),
                fmt("compile_s"),
                fmt("first_step_s", 1.0, 2),
                fmt("peak_memory_bytes", 2.0**-30, 2),
                fmt("flops_per_step", 1e-9, 1),
                percent("mfu"),
                percent("useful_mfu"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="tiny sizes (batch 2) on the CPU: checks that it runs")
    parser.add_argument("--only", action="append", choices=WORKLOADS, help="run only these workloads (repeatable)")
    parser.add_argument("--out", help="JSON path (default: $OUT/gpu_benchmark.json, else benchmarks/gpu/results.json)")
    parser.add_argument("--budget-s", type=float, default=330.0, help="wall time for all workloads (default 330)")
    parser.add_argument("--workload-s", type=float, default=150.0, help="time limit of one workload (default 150)")
    parser.add_argument("--iterations", type=int, default=20, help="timed steps per workload (default 20)")
    parser.add_argument("--step-budget-s", type=float, default=15.0, help="time for the timed steps (default 15)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for flag in ("budget_s", "workload_s", "iterations", "step_budget_s"):
        if getattr(args, flag) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be > 0; received {getattr(args, flag)}")
    if args.child:
        print(json.dumps(run(args.child, args.iterations, args.step_budget_s, tiny=args.cpu)), flush=True)
        return

    out = args.out or default_out()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    results = {
        "mode": "cpu (tiny sizes)" if args.cpu else "gpu",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "peaks_tflops": PEAK_TFLOPS,
        "peak_sources": PEAK_SOURCE,
        "celeba64_gflop_b64_notes": CELEBA64_GFLOP_B64,
        "budget_s": args.budget_s,
        "workloads": {},
    }
    start = time.perf_counter()
    for name in workload_names(args.cpu, args.only):
        left = args.budget_s - (time.perf_counter() - start)
        if left < 10:
            result = {"status": f"skipped: the --budget-s of {args.budget_s:g} s ran out"}
        else:
            print(f"{name} ...", file=sys.stderr, flush=True)
            result = run_child(name, args, min(args.workload_s, left))
            if result.get("status") == "ok":
                result = _metrics(name, result, args.cpu)
        results["workloads"][name] = result
        print(f"  {name}: {result.get('status')}", file=sys.stderr, flush=True)
        results["elapsed_s"] = time.perf_counter() - start
        results["cross_checks"] = cross_checks(results["workloads"])
        with open(out + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(out + ".tmp", out)  # a reader never sees half a file
    print_table(results)
    print(f"JSON: {out}", flush=True)


if __name__ == "__main__":
    main()
