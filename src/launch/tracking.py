"""A launcher run's W&B run: its tags and config, where it lives, and closing it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from src.launch.wandb_setup import make_logger, sync_hint

__all__ = ["finish_wandb", "make_logger", "run_tags", "wandb_config", "wandb_location"]


def run_tags(args: argparse.Namespace, layers: dict[str, Any], random_init: bool) -> list[str]:
    tags = [args.method, args.profile, args.data, "k-shot" if args.k or "k-shot" in json.dumps(layers) else "zero-shot"]
    tags += ["random-init"] if random_init else []
    tags += [f"table:{args.ablation_table}", f"row:{args.ablation_row}"] if args.ablation_table else []
    return tags


def wandb_config(args: argparse.Namespace, seed: int | None, overrides: list[str], digest: str) -> dict[str, Any]:
    return {
        "method": args.method, "profile": args.profile, "data": args.data, "seed": seed, "k": args.k,
        "overrides": overrides, "request_hash": digest,
        "ablation": {"table": args.ablation_table, "row": args.ablation_row},
    }


def wandb_location(logger: Any) -> str | None:
    """The local folder of the logger's W&B run (``None`` when W&B could not tell)."""
    try:
        experiment = logger.experiment
        return getattr(experiment, "dir", None) and str(Path(experiment.dir).parent)
    except Exception:  # noqa: BLE001 - W&B trouble must not lose the results
        return None


def finish_wandb(logger: Any) -> None:
    """Close the W&B run (a later run in this process must not append to it); print how to sync it."""
    if logger is None:
        return
    location = wandb_location(logger)
    try:
        import wandb

        wandb.finish()
    except Exception as err:  # noqa: BLE001
        print(f"W&B: could not finish the run cleanly ({err}); results are in metrics.json")
        return
    if hint := sync_hint(location):
        print(hint)
