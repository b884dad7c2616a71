"""``make bench``: every method against its bare backbone (time, FLOPs, memory) and training steps.

    python -m src.bench [--methods <m> ...] [--quick] [--device cpu|cuda] [--precision fp32|bf16]
                        [--runs 5] [--min-time 30] [--warmup 1] [--batches 1 2 4 8]
                        [--train | --train-only] [--train-steps 2]

Inference rows only by default (565-581 s measured on a quiet 2-core CPU); the batch sweep and the
training rows (minutes per step at 518 px on CPU) are opt-in: ``make bench-train`` runs the latter.
The time ratio of a method is the median of per-pair ratios of its forward and its own bare
backbone's, timed in alternation in one process; the spread of those ratios is printed.

Rows run one per subprocess (``python -m src.bench --row <name>``) so that each peak RSS is that
row's own. The output is a Markdown table, ``runs/bench/bench-<timestamp>.{csv,md}`` and
``runs/bench/latest.md``; the last line printed is one JSON object ``{"rows": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .measure import Options, measure_inference, measure_training
from .report import compare, markdown, write_csv
from .rows import METHODS, parse_row, settings

ROW_MARK = "BENCH_ROW_RESULT "


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m src.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--quick", action="store_true", help="tiny ViT at 64 px: a smoke run in seconds")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: frozen backbone in bfloat16 under autocast, trainable parts fp32")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up forwards (the first is FLOP-counted)")
    p.add_argument("--runs", type=int, default=5,
                   help="least (method, backbone) timing pairs at batch 1 (median ratio reported)")
    p.add_argument("--min-time", type=float, default=None,
                   help="least seconds of timing pairs per method (default 30, 0 with --quick); more pairs run "
                        "(up to --max-time) while the ratio's relative standard error is above 1%%")
    p.add_argument("--max-time", type=float, default=None,
                   help="most seconds of timing pairs per method (default 60, 5 with --quick)")
    p.add_argument("--batches", type=int, nargs="+", default=[1], help="batch sizes of the sweep (e.g. 1 2 4 8)")
    p.add_argument("--sweep-runs", type=int, default=1, help="timed forwards per batch >1 (after 1 warm-up)")
    p.add_argument("--time-cap", type=float, default=120.0, help="skip a sweep batch estimated to take longer (s)")
    p.add_argument("--mem-cap-gib", type=float, default=None,
                   help="skip a sweep batch estimated to need more RSS (default 70%% of available memory)")
    p.add_argument("--train", dest="train", action="store_true",
                   help="add the training rows (minutes per step at 518 px on CPU; make bench-train)")
    p.add_argument("--train-only", action="store_true", help="only the training rows")
    p.add_argument("--no-train", dest="train", action="store_false", help="no training rows (the default)")
    p.add_argument("--train-warmup", type=int, default=1)
    p.add_argument("--train-steps", type=int, default=2)
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="print the top N ops (torch.profiler) of one batch-1 forward per row")
    p.add_argument("--out", default="runs/bench", help="folder of the CSV and Markdown results")
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: measure one row
    p.add_argument("--train-row", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("warmup", "runs", "sweep_runs", "train_warmup", "train_steps"):
        minimum = 0 if name in ("train_warmup",) else 1
        if getattr(args, name) < minimum:
            p.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {getattr(args, name)}")
    if any(b < 1 for b in args.batches):
        p.error(f"--batches must be positive integers, got {args.batches}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: no CUDA device is available here (torch {torch.__version__}); use cpu")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        p.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    return args


def options(args: argparse.Namespace) -> Options:
    min_time = args.min_time if args.min_time is not None else (0.0 if args.quick else 30.0)
    max_time = args.max_time if args.max_time is not None else (5.0 if args.quick else 60.0)
    return Options(device=args.device, precision=args.precision, warmup=args.warmup, runs=args.runs,
                   batches=tuple(args.batches), sweep_runs=args.sweep_runs, time_cap_s=args.time_cap,
                   mem_cap_gib=args.mem_cap_gib, train_warmup=args.train_warmup,
                   train_steps=args.train_steps, profile=args.profile, min_time_s=min_time,
                   max_time_s=max(max_time, min_time))


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_row(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the row named by ``--row`` in this process."""
    method, backbone_only = parse_row(args.row)
    setting = settings(args.quick)[method]
    start = load()
    if args.train_row:
        result = measure_training(setting, options(args))
    else:
        result = measure_inference(setting, backbone_only, options(args))
    result.update(row=args.row, method=method, backbone=setting.backbone, image_size=setting.image_size,
                  load_avg=f"{start} -> {load()}")
    return result


def spawn(name: str, argv: list[str], train: bool = False) -> dict[str, Any]:
    """Run one row in a fresh interpreter and parse its result line."""
    cmd = [sys.executable, "-m", "src.bench", *argv, "--row", name] + (["--train-row"] if train else [])
    label = f"{name} (training)" if train else name
    print(f"[bench] {label} ...", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    found = [ln for ln in lines if ln.startswith(ROW_MARK)]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"benchmark row {label} failed (exit {proc.returncode}): "
                           f"{shlex.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(found[-1][len(ROW_MARK):])
    print(f"[bench] {label}: done in {time.perf_counter() - start:.0f} s, load {result['load_avg']}", flush=True)
    if result.get("profile"):
        print(result["profile"], flush=True)
    return result


def stability(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The spread of each method's per-pair time ratios, and what the run left out."""
    lines = ["", "Time ratio per (method, backbone) pair, both timed in alternation in the method's process:", "",
             "| method | pairs | ratio min / median / max | spread (max-min)/median | rel. std. error | "
             "standalone backbone ms/img (own process) |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        if r.get("pairs") is None:
            continue
        error = r.get("paired_ratio_stderr")
        lines.append(f"| {r['method']} | {r['pairs']} | {r['paired_ratio_min']:.3f} / {r['ratio_vs_backbone']:.3f}"
                     f" / {r['paired_ratio_max']:.3f} | {100 * r['paired_ratio_spread']:.1f}% "
                     f"| {'-' if error is None else f'{100 * error:.1f}%'} | {r['standalone_backbone_ms']:.0f} |")
    left_out = []
    if not (args.train or args.train_only):
        left_out.append("training rows not run (`make bench-train`: paper batch, seconds per optimisation step)")
    if args.batches == [1]:
        left_out.append("batch sweep not run (`--batches 1 2 4 8`)")
    return "\n".join(lines + [""] + [f"Not in this run: {x}." for x in left_out]) + "\n"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    raw = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(raw)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.row is not None:
        result = run_row(args)
        print(ROW_MARK + json.dumps(result), flush=True)
        return result

    child_argv = [a for a in raw]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    header = {"timestamp": stamp, "device": args.device, "device_name": device_name(args.device),
              "precision": args.precision, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "load_start": load(), "runs": args.runs, "warmup": args.warmup,
              "command": shlex.join(["python", "-m", "src.bench", *raw]),
              "options": asdict(options(args)), "quick": args.quick}
    start = time.perf_counter()
    rows, training = [], []
    table = settings(args.quick)
    for method in [] if args.train_only else args.methods:
        base = spawn(f"{method}-backbone", child_argv)
        row = spawn(method, child_argv)
        rows.append(compare(method, table[method], row, base))
    if args.train or args.train_only:
        for method in args.methods:
            training.append(spawn(method, child_argv, train=True))
    header["load_end"] = load()
    header["wall_s"] = round(time.perf_counter() - start, 1)

    text = markdown(header, rows, training) + stability(rows, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench-{stamp}.md").write_text(text)
    (out / "latest.md").write_text(text)
    write_csv(out / f"bench-{stamp}.csv", rows, training, header)
    print()
    print(text)
    print(f"[bench] wrote {out / f'bench-{stamp}.csv'} and {out / f'bench-{stamp}.md'} "
          f"({header['wall_s']:.0f} s in all)")
    keys = ("method", "backbone", "image_size", "ms_per_image", "backbone_ms_per_image", "ratio_vs_backbone",
            "flop_ratio_vs_backbone", "peak_rss_gib", "rss_ratio_vs_backbone")
    summary = {"rows": [{k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keys} for r in rows]}
    print(json.dumps(summary), flush=True)
    return {"header": header, "rows": rows, "training": training}


if __name__ == "__main__":
    main()
