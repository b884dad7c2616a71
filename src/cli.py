"""LightningCLI entry: ``python -m src fit|test|validate --config ...``.

Models and the DataModule are configured in subclass mode, so overrides read
``--model.init_args.mpfa_kernel=1`` and ``--data.init_args.root=...``. The model's
``image_size`` is linked to the DataModule's, so one override sets both; a different value given
to the DataModule's (a linked target) is an error, never silently dropped (:mod:`src.links`).

Options are never abbreviated (``--trainer.max_epoch`` is an error, not ``max_epochs``). Lightning's
``limit_*_batches`` read an int as a number of batches and a float as a fraction: ``1`` is one
batch, ``1.0`` all of them.

``python -m src test --config runs/<name>/config.yaml`` scores that run's trained weights into a
new run directory (see :mod:`src.launch.rerun`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from datamodules.datamodule import AnomalyDataModule
from src.links import LINKS, check_link_targets
from src.module import AnomalyModule

#: No option abbreviations, in the main parser and in every subcommand's.
PARSER_KWARGS = {"allow_abbrev": False, **{c: {"allow_abbrev": False} for c in ("fit", "validate", "test", "predict")}}


class SuiteCLI(LightningCLI):
    """LightningCLI with the suite's base classes and argument links."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 - jsonargparse's parser type
        for source, target in LINKS:
            parser.link_arguments(source, target, apply_on="parse")

    def parse_arguments(self, parser, args) -> None:  # noqa: ANN001 - LightningCLI's signature
        """Parse, then refuse a value given to a linked target (the link would drop it silently)."""
        super().parse_arguments(parser, args)
        if isinstance(args, dict) or hasattr(args, "as_dict"):
            return
        argv = list(sys.argv[1:] if args is None else args)
        subcommand = self.config.get("subcommand")
        message = check_link_targets(argv, self.config[subcommand] if subcommand else self.config)
        if message:
            parser.error(message)

    def _refuse_untrained(self) -> None:
        from src.launch.rerun import require_weights

        subcommand = self.config.get("subcommand")
        if subcommand:
            require_weights(self.model, self.config[subcommand].get("ckpt_path"), subcommand)

    def before_test(self) -> None:
        self._refuse_untrained()

    def before_validate(self) -> None:
        self._refuse_untrained()

    def before_predict(self) -> None:
        self._refuse_untrained()


def build_cli(args: list[str] | None = None, run: bool = True, cli_class: type[SuiteCLI] = SuiteCLI) -> SuiteCLI:
    """Build the CLI; ``run=False`` instantiates model, data and trainer without running a subcommand."""
    return cli_class(
        AnomalyModule,
        AnomalyDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=None,
        auto_configure_optimizers=False,
        parser_kwargs=PARSER_KWARGS,
        args=args,
        run=run,
    )


def main() -> None:
    """The raw CLI, with the rerun rules and one-line errors (traceback in the new run's ``error.log``)."""
    import yaml

    from src.launch.errors import LaunchError, report_error
    from src.launch.guards import check_class_paths
    from src.launch.rerun import _option, prepare

    runs_root = Path(__file__).resolve().parents[1] / "runs"
    argv, new_dir = sys.argv[1:], None
    try:
        for config in _option(argv, "--config"):
            check_class_paths(yaml.safe_load(Path(config).read_text()) or {}, [])
        check_class_paths({}, argv)
        argv, new_dir = prepare(argv, runs_root)
        sys.argv = sys.argv[:1]
        build_cli(argv)
    except (LaunchError, OSError, RuntimeError, ValueError) as err:
        report_error(err, new_dir, runs_root)
        sys.exit(2 if isinstance(err, LaunchError) else 1)
    if new_dir is not None:
        print(f"run: {new_dir}")
