"""The launcher behind ``make train`` (``python -m src.run``), in small modules.

* ``options``: the command line, RESUME's saved options, validation.
* ``compose``: config layers, the overrides implementing the options, the request hash.
* ``execute``: one fit + test through LightningCLI; the per-category loop.
* ``results``: merging per-category results, the launcher's metadata, ``metrics.json``, the
  console table, the summary over seeds (statistics in ``src/aggregate.py``).
* ``tracking``: the run's W&B tags, config and closing.
* ``runner``: run directories, one run or one per seed, ``main``.

Guards and safety nets around them:

* ``errors``: ``LaunchError`` and the one-line error report with a traceback log.
* ``guards``: request checks before anything is built (seeds, class paths, numeric ranges, RESUME).
* ``lock``: one process per run directory.
* ``checkpoints``: a checkpoint is readable and belongs to the method before it is loaded.
* ``wandb_setup``: a W&B logger that never costs results (bounded init, offline fallback).
* ``quiet``: silences library messages a user cannot act on.
* ``preempt``: SIGTERM stops at the next training batch; the launcher exits 143.
* ``rerun``: ``python -m src test --config runs/<name>/config.yaml`` scores the run's weights.

Which methods exist, and what their learning type makes the launcher do, is ``src/registry.py``.
"""
