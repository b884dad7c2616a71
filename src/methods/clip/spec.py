"""Registry entry of the CLIP baseline (see ``src/registry.py``)."""

from src.registry import Learning, MethodSpec

SPEC = MethodSpec(
    name="clip", display_name="CLIP", lightning_class="src.methods.clip.CLIPBaseline",
    learning=Learning.TRAINING_FREE, rank=0, compared={"zero-shot": 0, "k-shot": 1},
    # Under K= the baseline scores against a memory bank of the k shots instead of the prompts.
    k_shot_overrides=("--model.init_args.few_shot=true",),
)
