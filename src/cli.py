"""LightningCLI entry: ``python -m src fit|test|validate --config ...``.

Models and the DataModule are configured in subclass mode, so overrides read
``--model.init_args.mpfa_kernel=1`` and ``--data.init_args.root=...``. The model's
``image_size`` is linked to the DataModule's, so one override sets both; a different value given
to the DataModule's (a linked target) is an error, never silently dropped (:mod:`src.links`).
"""

from __future__ import annotations

import sys

from lightning.pytorch.cli import LightningCLI

from datamodules.datamodule import AnomalyDataModule
from src.links import LINKS, check_link_targets
from src.module import AnomalyModule


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


def build_cli(args: list[str] | None = None, run: bool = True, cli_class: type[SuiteCLI] = SuiteCLI) -> SuiteCLI:
    """Build the CLI; ``run=False`` instantiates model, data and trainer without running a subcommand."""
    return cli_class(
        AnomalyModule,
        AnomalyDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=None,
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


def main() -> None:
    build_cli()
