"""One timed workload of the GPU benchmark, run in its own process (`run.py --child NAME`).

A workload is a train step at one batch: keras_sagan's jitted JAX step (`jax`, float32 or
`mixed_bfloat16`), keras_sagan's eager step on the torch backend (`kerastorch`, float32 or
`mixed_bfloat16`), or our PyTorch model of the reference on CUDA (`torch`, eager float32). Each
returns a JSON-ready dict: seconds per step, images/s, compile (or first-step) time apart, peak
device memory, and the step's counted FLOPs.

Timing: the step is called directly on device-resident data (no input pipeline), after a warm-up,
in chunks of `CHUNK` steps that end in a wait for the device (`block_until_ready`,
`torch.cuda.synchronize`); the figure is the median over chunks of the time per step.
"""

import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 5
WARMUP = 2

# Full sizes (the presets' own) and the tiny ones of `--cpu`: keyword overrides per preset.
TINY = {
    "celeba64": {"conv_dim": 8, "z_dim": 16},
    # At 64x64 the discriminator has no 64x64 map: attention moves to 32x32.
    "imagenet128": {"image_size": 64, "conv_dim": 8, "z_dim": 16, "num_classes": 10, "attention_resolutions": (32,)},
}
TORCH_TINY = {"z_dim": 16, "conv_dim": 8}


def parse(name):
    """`"jax_celeba64_b64_bfloat16"` -> `("jax", "celeba64", 64, "bfloat16")`."""
    framework, preset, batch, precision = name.split("_")
    return framework, preset, int(batch[1:]), precision


def _chunked_times(run_chunk, iterations, budget_s):
    """Median seconds per step over chunks of `CHUNK` steps, until `iterations` steps or `budget_s`."""
    per_step, start = [], time.perf_counter()
    while len(per_step) * CHUNK < iterations and (not per_step or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run_chunk(CHUNK)
        per_step.append((time.perf_counter() - t0) / CHUNK)
    return statistics.median(per_step), min(per_step), len(per_step) * CHUNK


def _cost_flops(compiled):
    """FLOPs of one call from XLA's cost analysis (a dict, or a list of one dict in older JAX)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return None if flops is None else float(flops)


def run_jax(preset, batch, precision, iterations, budget_s, tiny):
    """Times keras_sagan's JAX train step; see the module docstring."""
    import jax
    import keras
    import numpy as np

    import keras_sagan

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"KERAS_BACKEND must be jax; received {keras.backend.backend()!r}")
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    gan = keras_sagan.build_sagan(preset, seed=0, **(TINY[preset] if tiny else {}))
    gan.compile()
    size, classes = gan.generator.image_size, gan.num_classes
    device = jax.devices()[0]
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"), device)
    data = images if classes is None else (images, jax.device_put(rng.integers(0, classes, batch, "int32"), device))
    state = tuple(
        [variable.value for variable in variables]
        for variables in (gan.trainable_variables, gan.non_trainable_variables, gan.optimizer.variables)
    ) + ([variable.value for variable in gan.metrics_variables],)
    # Copies: the step donates its state, and no buffer may be donated twice or stay shared with a variable.
    state = jax.tree.map(lambda value: jax.numpy.array(value, copy=True), jax.device_put(state, device))

    t0 = time.perf_counter()
    compiled = jax.jit(gan.train_step, donate_argnums=0).lower(state, data).compile()
    compile_s = time.perf_counter() - t0
    flops = _cost_flops(compiled)

    t0 = time.perf_counter()
    logs, state = compiled(state, data)
    jax.block_until_ready((logs, state))
    first_step_s = time.perf_counter() - t0
    for _ in range(WARMUP):
        logs, state = compiled(state, data)
    jax.block_until_ready((logs, state))

    def run_chunk(steps):
        nonlocal logs, state
        for _ in range(steps):
            logs, state = compiled(state, data)
        jax.block_until_ready((logs, state))

    median, best, timed = _chunked_times(run_chunk, iterations, budget_s)
    stats = device.memory_stats() or {}
    d_loss = float(np.asarray(logs["d_loss"]))
    return {
        "seconds_per_step": median,
        "seconds_per_step_min": best,
        "timed_steps": timed,
        "compile_s": compile_s,
        "first_step_s": first_step_s,
        "peak_memory_bytes": stats.get("peak_bytes_in_use"),
        "flops_per_step": flops,
        "flops_source": "XLA cost_analysis of the compiled step",
        "d_loss_finite": bool(np.isfinite(d_loss)),
        "image_size": size,
        "num_classes": classes,
        "device": device.device_kind,
        "jax": jax.__version__,
        "keras": keras.__version__,
        "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
    }


def run_torch(batch, iterations, budget_s, tiny):
    """Times our PyTorch model of the reference (eager float32) on CUDA, or the CPU with `tiny`."""
    try:
        import torch
    except ImportError:
        return {"status": "skipped: torch is not installed in this Python"}
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/, for reference_torch and its timing helper
    from reference_torch import make_train_step

    device = "cpu" if tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    sizes = TORCH_TINY if tiny else {}
    if tiny:  # a shared CPU: spinning OpenMP threads beside other processes made one tiny step take seconds
        torch.set_num_threads(1)
    torch.manual_seed(0)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def counted(step):
        with FlopCounterMode(display=False) as counter:
            step()
        sync()
        return float(counter.get_total_flops())

    useful_flops = counted(make_train_step(torch, batch, device, detach_fakes=True, **sizes))
    step = make_train_step(torch, batch, device, **sizes)
    flops = counted(step)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    sync()
    first_step_s = time.perf_counter() - t0
    for _ in range(WARMUP):
        step()
    sync()

    def run_chunk(steps):
        for _ in range(steps):
            step()
        sync()

    return {
        **_eager_torch_timing(run_chunk, iterations, budget_s, first_step_s, device == "cuda"),
        "flops_per_step": flops,
        "flops_source": "torch FlopCounterMode of one reference iteration (fakes not detached)",
        "useful_flops_per_step": useful_flops,
        "image_size": 64,
        "num_classes": None,
        **_torch_device(device == "cuda"),
    }


def run_keras_torch(preset, batch, precision, iterations, budget_s, tiny):
    """Times keras_sagan's train step on the torch backend (eager, Keras' torch step pattern) on CUDA.

    The same device, batch and FLOP counter as `run_torch`, so its rows sit beside our torch
    reference model's: keras_sagan's torch step (fakes detached) against the reference's iteration.
    """
    import keras
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import keras_sagan

    if keras.backend.backend() != "torch":
        raise RuntimeError(f"KERAS_BACKEND must be torch; received {keras.backend.backend()!r}")
    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        raise RuntimeError("torch sees no CUDA device")
    if tiny:  # as run_torch: one thread on a shared CPU
        torch.set_num_threads(1)
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    gan = keras_sagan.build_sagan(preset, seed=0, **(TINY[preset] if tiny else {}))
    gan.compile()  # jit_compile "auto": eager on torch
    size, classes = gan.generator.image_size, gan.num_classes
    rng = np.random.default_rng(0)
    images = keras.ops.convert_to_tensor(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"))
    data = images if classes is None else (images, keras.ops.convert_to_tensor(rng.integers(0, classes, batch)))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:  # also the first step
        t0 = time.perf_counter()
        logs = gan.train_step(data)
        sync()
        first_step_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(WARMUP):
        logs = gan.train_step(data)
    sync()

    def run_chunk(steps):
        nonlocal logs
        for _ in range(steps):
            logs = gan.train_step(data)
        sync()

    timing = _eager_torch_timing(run_chunk, iterations, budget_s, first_step_s, cuda)
    d_loss = float(keras.ops.convert_to_numpy(logs["d_loss"]))
    return {
        **timing,
        "flops_per_step": float(counter.get_total_flops()),
        "flops_source": "torch FlopCounterMode of one keras_sagan train step (fakes detached)",
        "d_loss_finite": bool(np.isfinite(d_loss)),
        "image_size": size,
        "num_classes": classes,
        **_torch_device(cuda),
        "keras": keras.__version__,
    }


def _eager_torch_timing(run_chunk, iterations, budget_s, first_step_s, cuda):
    """The timing fields of an eager torch workload (nothing compiled); peak memory since the last reset."""
    import torch

    median, best, timed = _chunked_times(run_chunk, iterations, budget_s)
    return {
        "seconds_per_step": median,
        "seconds_per_step_min": best,
        "timed_steps": timed,
        "compile_s": None,  # eager: nothing is compiled
        "first_step_s": first_step_s,
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
    }


def _torch_device(cuda):
    """The device and torch settings a torch row records."""
    import torch

    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }


def run(name, iterations, budget_s, tiny):
    """Runs workload `name`; returns its result dict (with `status`)."""
    framework, preset, batch, precision = parse(name)
    if framework == "jax":
        result = run_jax(preset, batch, precision, iterations, budget_s, tiny)
    elif framework == "kerastorch":
        result = run_keras_torch(preset, batch, precision, iterations, budget_s, tiny)
    else:
        result = run_torch(batch, iterations, budget_s, tiny)
    result.setdefault("status", "ok")
    if result["status"] == "ok":
        result["images_per_second"] = batch / result["seconds_per_step"]
    result["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result
