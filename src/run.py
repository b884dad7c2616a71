"""``make train``: compose a run's config, make its directory, fit, test, report.

    python -m src.run --method <m> [--profile quick|paper] [--data builtin|mvtec|visa|folder]
        [--data-root PATH] [--aux NAME] [--aux-root PATH] [--devices N] [--nodes N] [--k K] [--seed S]
        [--seeds 0,1,2] [--resume RUN_DIR] [--suffix TEXT] [-- LightningCLI overrides ...]

Config layers, later wins: ``experiments/base.yaml``, ``experiments/methods/<m>.yaml`` (the
paper setting), ``experiments/profiles/<profile>.yaml`` and ``profiles/<profile>/<m>.yaml``,
then the options above, then the user's overrides. Methods that train one model per category
(``Learning.FEW_SHOT_PER_CATEGORY`` in ``src/registry.py``) run every category of the dataset in
one invocation, one subfolder per category, one ``metrics.json`` for all. The last line printed
is ``run: runs/<name>``.

The work is done in ``src/launch/`` (options, compose, execute, results, tracking, runner); this
module is the entry point and keeps the names other code and the tests import from it.
"""

from __future__ import annotations

import sys

from src import registry
from src.launch.compose import REPO, compose, config_files, launcher_overrides, load_layers, request_hash
from src.launch.errors import LaunchError
from src.launch.execute import check_config
from src.launch.options import RUNS_ROOT_ENV, default_seed, parse_args, validate
from src.launch.results import merge_category_results, partial_banner
from src.launch.runner import main, request_hash_for
from src.launch.tracking import make_logger

METHODS = registry.names()

__all__ = ["METHODS", "REPO", "RUNS_ROOT_ENV", "LaunchError", "check_config", "compose", "config_files",
           "default_seed", "launcher_overrides", "load_layers", "main", "make_logger", "merge_category_results",
           "parse_args", "partial_banner", "request_hash", "request_hash_for", "validate"]

if __name__ == "__main__":
    sys.exit(main())
