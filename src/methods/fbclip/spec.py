"""Registry entry of FB-CLIP (see ``src/registry.py``)."""

from src.registry import BenchSetting, Learning, MethodSpec

SPEC = MethodSpec(
    name="fb", display_name="FB-CLIP", lightning_class="src.methods.fbclip.FBCLIP",
    learning=Learning.ZERO_SHOT_TRAINED, rank=2, compared={"zero-shot": 3},
    weights_overrides=("--model.init_args.release_checkpoint",),
    # FB-CLIP resizes position embeddings per forward and keeps a non-causal text encoder.
    bench_paper=BenchSetting("fb", "ViT-L-14-336-quickgelu", 518, (1, 6, 12, 18, 24), 4, "bilinear_per_forward",
                             extra={"activation_checkpointing": True}, module_pos_embed=False,
                             text_causal_mask=False),
    bench_quick=BenchSetting("fb", "tiny-vit", 64, (1, 2, 3, 4), 2, "bilinear_per_forward",
                             extra={"activation_checkpointing": True}, module_pos_embed=False,
                             text_causal_mask=False),
    time_target=1.5,
)
