"""Measuring one row inside its own process: time per image, FLOPs, peak memory, training steps.

Every row runs in a fresh process (see ``__main__``), so ``ru_maxrss`` is that row's own peak:
model build, weights and the forwards of that row only.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from .flops import flop_counter
from .pairs import backbone_fn, paired_timing, timed
from .rows import Setting, build_module, inference_fn, optimizer_of, train_batch

GIB = 2**30


@dataclass
class Options:
    """What a row measures and how (the command-line options that reach the row process)."""

    device: str = "cpu"
    precision: str = "fp32"
    warmup: int = 1
    runs: int = 5
    batches: tuple[int, ...] = (1,)
    sweep_runs: int = 1
    time_cap_s: float = 120.0
    mem_cap_gib: float | None = None
    train_warmup: int = 1
    train_steps: int = 2
    profile: int = 0
    min_time_s: float = 30.0
    max_time_s: float = 60.0
    target_stderr: float = 0.01


def peak_rss_gib() -> float:
    """This process's peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / GIB if sys.platform == "darwin" else peak * 1024 / GIB


def current_rss_gib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GIB
    except OSError:  # not Linux: the peak is the best available figure
        return peak_rss_gib()


def reset_peak_rss() -> bool:
    """Reset this process's resident high-water mark (Linux ``clear_refs`` 5); False where unsupported.

    Called after the model is built and prepared, so that the reported peak is the inference
    peak (weights included) and not a one-off setup transient such as VTFusion encoding its
    420-sentence prompt ensemble or computing its prototypes.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_rss_gib() -> float:
    """Resident high-water mark since the last :func:`reset_peak_rss` (``VmHWM``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return peak_rss_gib()


def available_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 8.0


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast around the forward (the frozen backbone itself is cast to bf16)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def prepare(module: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """Move to ``device``; in bf16 cast the frozen backbone (and only it) to bfloat16."""
    module.to(device)
    if precision == "bf16":
        backbone = module if hasattr(module, "encode_image_layers") else getattr(module, "backbone", None)
        if backbone is None:
            backbone = module.model.backbone
        backbone.to(torch.bfloat16)
    return module


def measure_inference(setting: Setting, backbone_only: bool, opts: Options) -> dict[str, Any]:
    """Batch-1 median ms/image, FLOPs of one batch-1 forward, peak memory; then the batch sweep."""
    device = torch.device(opts.device)
    module, fn = inference_fn(setting, backbone_only)
    prepare(module, device, opts.precision).eval()
    setup_peak = peak_rss_gib()
    reset = reset_peak_rss()
    rss_built = current_rss_gib()
    size = setting.image_size
    g = torch.Generator().manual_seed(0)

    def images(b: int) -> torch.Tensor:
        return torch.randn(b, 3, size, size, generator=g).to(device)

    x = images(1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode(), autocast(device, opts.precision):
        # A method's first forward fills its per-evaluation caches (e.g. AFR-CLIP's per-category text
        # features), which are not per-image cost: it is a plain warm-up, and the FLOPs are counted
        # on the next forward. The bare backbone has no such state, so its first warm-up forward is
        # the counted one (a counter adds Python overhead only; the timed runs come later).
        plain_first = 0 if backbone_only else 1
        for _ in range(plain_first):
            fn(x)
        counter = flop_counter()
        with counter:
            fn(x)
        for _ in range(opts.warmup - 1):
            fn(x)
        if backbone_only:  # one standalone reference forward: the time ratio comes from the method row's pairs
            times = [timed(lambda: fn(x), device)]
            paired: dict[str, Any] = {}
        else:
            paired = paired_timing(fn, backbone_fn(module, setting), x, opts, device)
            times = paired.pop("method_s")
        result: dict[str, Any] = {
            "ms_per_image": 1e3 * statistics.median(times),
            "ms_runs": [round(1e3 * t, 2) for t in times],
            "gflops": counter.get_total_flops() / 1e9,
            "peak_rss_gib": hwm_rss_gib() if reset else peak_rss_gib(),
            "peak_rss_scope": "inference (peak reset after build)" if reset else "process (build included)",
            "setup_peak_rss_gib": setup_peak,
            "rss_after_build_gib": rss_built,
            **paired,
        }
        if device.type == "cuda":
            result["peak_cuda_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        if opts.profile:
            result["profile"] = profile_table(lambda: fn(x), opts.profile)
        result["sweep"] = sweep(fn, images, result, opts, device)
    best = min((r for r in result["sweep"] if "ms_per_image" in r), key=lambda r: r["ms_per_image"])
    result["best_batch"], result["best_ms_per_image"] = best["batch"], best["ms_per_image"]
    return result


def sweep(fn, images, batch1: dict[str, Any], opts: Options, device: torch.device) -> list[dict[str, Any]]:
    """ms/image at each batch of ``opts.batches`` that fits the memory and time caps.

    Memory per extra image is estimated from batch 1 (peak minus the built model), time from the
    batch-1 median; a batch is skipped when either estimate breaks its cap.
    """
    rows = [{"batch": 1, "ms_per_image": batch1["ms_per_image"]}]
    per_image_gib = max(batch1["peak_rss_gib"] - batch1["rss_after_build_gib"], 0.05)
    cap = opts.mem_cap_gib if opts.mem_cap_gib is not None else 0.7 * available_gib() + current_rss_gib()
    for b in sorted(set(opts.batches) - {1}):
        est_gib = batch1["rss_after_build_gib"] + b * per_image_gib
        est_s = b * batch1["ms_per_image"] / 1e3 * (1 + opts.sweep_runs)
        if est_gib > cap or est_s > opts.time_cap_s:
            rows.append({"batch": b, "skipped": f"est. {est_gib:.1f} GiB (cap {cap:.1f}), {est_s:.0f} s "
                                                f"(cap {opts.time_cap_s:.0f})"})
            continue
        x = images(b)
        fn(x)
        times = [timed(lambda x=x: fn(x), device) for _ in range(opts.sweep_runs)]
        rows.append({"batch": b, "ms_per_image": 1e3 * statistics.median(times) / b})
    return [r for r in rows if "ms_per_image" in r] + [r for r in rows if "skipped" in r]


def profile_table(fn: Callable[[], Any], top: int) -> str:
    """``torch.profiler`` top ops by self CPU time of one forward."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, record_shapes=False) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def measure_training(setting: Setting, opts: Options) -> dict[str, Any]:
    """Seconds per optimisation step (loss, backward, optimiser step) at the paper's batch."""
    device = torch.device(opts.device)
    module = prepare(build_module(setting), device, opts.precision)
    module.train()
    optimizer = optimizer_of(module)
    batch = train_batch(setting, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, opts.precision):
            terms = module.training_losses(batch)
        loss = torch.stack([t.float() for t in terms.values()]).sum()
        loss.backward()
        optimizer.step()

    for _ in range(opts.train_warmup):
        step()
    times = [timed(step, device) for _ in range(opts.train_steps)]
    result = {
        "batch": setting.train_batch,
        "s_per_step": statistics.median(times),
        "s_runs": [round(t, 2) for t in times],
        "peak_rss_gib": peak_rss_gib(),
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if device.type == "cuda":
        result["peak_cuda_gib"] = torch.cuda.max_memory_allocated(device) / GIB
    return result
