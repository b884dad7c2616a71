"""The run's W&B logger: offline without a key, and never the reason a run loses its results.

With a key, the connection is made right away (not in the middle of training) and bounded by
``ADSUITE_WANDB_INIT_TIMEOUT`` seconds (default 30); if W&B cannot be reached the run says so on
one line and logs offline into its own directory instead, to be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from src.launch.errors import one_line

INIT_TIMEOUT_ENV = "ADSUITE_WANDB_INIT_TIMEOUT"
OFFLINE_MODES = ("offline", "dryrun", "disabled")


def has_wandb_key() -> bool:
    netrc = Path.home() / ".netrc"
    in_netrc = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    return bool(os.environ.get("WANDB_API_KEY")) or in_netrc


def make_logger(run_dir: Path, name: str, tags: list[str], config: dict[str, Any]) -> Any:
    """Lightning's ``WandbLogger``; falls back to offline logging when the W&B host is unreachable."""
    if not has_wandb_key():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    os.environ["WANDB_DISABLE_GIT"] = os.environ.get("WANDB_DISABLE_GIT", "true")
    offline = os.environ.get("WANDB_MODE", "") in OFFLINE_MODES
    logger = _logger(run_dir, name, tags, config, offline)
    if offline:
        return logger
    timeout = float(os.environ.get(INIT_TIMEOUT_ENV, "30"))
    try:
        logger.experiment  # noqa: B018 - connect now, bounded by init_timeout
    except Exception as err:  # noqa: BLE001 - any W&B failure: keep the run, log offline
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
        print(f"W&B: cannot reach {host} within {timeout:g} s ({one_line(err)[:160]}); "
              f"falling back to offline logging in {run_dir / 'wandb'}", file=sys.stderr)
        _abandon()
        os.environ["WANDB_MODE"] = "offline"
        logger = _logger(run_dir, name, tags, config, offline=True)
    return logger


def _logger(run_dir: Path, name: str, tags: list[str], config: dict[str, Any], offline: bool) -> Any:
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    timeout = float(os.environ.get(INIT_TIMEOUT_ENV, "30"))
    logger = WandbLogger(
        project=os.environ.get("WANDB_PROJECT", "clip-ad-suite"), name=name, save_dir=str(run_dir),
        offline=offline, tags=tags, config=config, group=config.get("ablation", {}).get("table") or None,
        log_model=False, settings=wandb.Settings(init_timeout=timeout),
        # Explicit: after a failed online init, W&B's process-wide setup still says "online".
        **({"mode": "offline"} if offline else {}),
    )
    # Lightning always passes anonymous=None, which W&B answers with a deprecation warning.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def _abandon() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1, quiet=True)
        wandb.teardown()  # forget the failed online setup; the offline run starts from scratch
    except Exception:  # noqa: BLE001, S110 - nothing to keep of a run that never started
        return


def sync_hint(location: str | None) -> str | None:
    """The ``wandb sync`` line for an offline run folder (None when the run was online)."""
    if not location or os.environ.get("WANDB_MODE", "") not in ("offline", "dryrun"):
        return None
    return f"W&B offline run saved in {location}; upload it later with: wandb sync {location}"
