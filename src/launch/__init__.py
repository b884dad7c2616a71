"""Launcher guards: checks and safety nets that ``make train`` runs around one fit + test.

Each module is small and called from ``src/run.py`` (or ``src/cli.py`` for the raw CLI):

* ``errors``: ``LaunchError`` and the one-line error report with a traceback log.
* ``guards``: request checks before anything is built (seeds, class paths, numeric ranges, RESUME).
* ``lock``: one process per run directory.
* ``checkpoints``: a checkpoint is readable and belongs to the method before it is loaded.
* ``wandb_setup``: a W&B logger that never costs results (bounded init, offline fallback).
* ``quiet``: silences library messages a user cannot act on.
* ``preempt``: SIGTERM stops at the next training batch; the launcher exits 143.
* ``rerun``: ``python -m src test --config runs/<name>/config.yaml`` scores the run's weights.
"""
