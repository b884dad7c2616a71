"""Lightning wiring of the training-free CLIP baseline (``METHOD=clip``)."""

from __future__ import annotations

from typing import Any

from src.backbone import CLIPBackbone
from src.module import AnomalyModule

from .torch_model import CLIPBaselineModel


class CLIPBaseline(AnomalyModule):
    """Prompt-ensemble CLIP, zero-shot or (``few_shot=True``) WinCLIP+-style k-shot.

    Args:
        backbone: open_clip model name.
        pretrained: ``openai`` | tag | checkpoint path | ``none`` | ``auto``.
        image_size: input side (the DataModule's ``image_size`` must match).
        layers: 1-based blocks for the map; ``None`` = ``num_stages`` evenly spaced blocks.
        num_stages: see ``layers``.
        temperature: softmax temperature of the cosine similarities.
        few_shot: add the nearest-reference patch distance to the k shots of each category
            (needs the DataModule's k-shot protocol).
        eval_sigma: Gaussian sigma of the shared post-processing.
        weights_cache_dir: where open_clip looks for cached weights.
    """

    method_name = "clip"

    def __init__(
        self,
        backbone: str = "ViT-B-16",
        pretrained: str = "auto",
        image_size: int = 224,
        layers: list[int] | None = None,
        num_stages: int = 4,
        temperature: float = 0.07,
        few_shot: bool = False,
        eval_sigma: float = 4.0,
        weights_cache_dir: str | None = None,
    ) -> None:
        super().__init__(eval_sigma=eval_sigma)
        self.save_hyperparameters()
        clip = CLIPBackbone(backbone, pretrained, image_size, weights_cache_dir=weights_cache_dir)
        self.model = CLIPBaselineModel(clip, layers, num_stages, temperature, few_shot=few_shot)
        self.few_shot = few_shot

    def _load_references(self) -> None:
        if not self.few_shot:
            return
        datamodule = self.trainer.datamodule
        if datamodule is None or getattr(datamodule, "protocol", None) != "k-shot":
            raise ValueError(
                "few_shot=True needs the k-shot protocol: set --data.init_args.protocol=k-shot and "
                "--data.init_args.k_shot=<k> (make train ... K=<k>)."
            )
        for category in datamodule.categories:
            refs = datamodule.reference_batch(category).image.to(self.device)
            self.model.set_references(category, refs)

    def on_test_start(self) -> None:
        """Drop cached text and references, then load this test run's k-shot references."""
        self.model.clear_caches()
        self._load_references()

    def on_validation_start(self) -> None:
        """Drop cached text and references, then load this validation run's k-shot references."""
        self.model.clear_caches()
        self._load_references()

    def configure_optimizers(self) -> None:
        """No optimiser: the baseline is training-free."""
        return None

    def results_meta(self) -> dict[str, Any]:
        """The run's description, with the tapped layers and the mode."""
        meta = super().results_meta()
        meta.update({"layers": self.model.layers, "few_shot": self.few_shot})
        return meta
