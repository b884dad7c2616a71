"""LightningCLI entry: ``python -m src fit|test|validate --config ...``.

Models and the DataModule are configured in subclass mode, so overrides read
``--model.init_args.mpfa_kernel=1`` and ``--data.init_args.root=...``. The model's
``image_size`` is linked to the DataModule's, so one override sets both.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from datamodules.datamodule import AnomalyDataModule
from src.module import AnomalyModule


class SuiteCLI(LightningCLI):
    """LightningCLI with the suite's base classes and argument links."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 - jsonargparse's parser type
        parser.link_arguments("model.init_args.image_size", "data.init_args.image_size", apply_on="parse")


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
