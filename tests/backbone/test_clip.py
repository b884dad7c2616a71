"""The shared CLIP backbone: token shapes, copies per tap, position embeddings, text prompts, weights."""

from __future__ import annotations

import time
from pathlib import Path

import open_clip
import pytest
import torch
import yaml

from src.backbone import CLIPBackbone, WeightsUnavailableError, quick_gelu_required, register_suite_configs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny() -> CLIPBackbone:
    torch.manual_seed(0)
    return CLIPBackbone("tiny-vit", "none", image_size=64)


@pytest.mark.parametrize(
    ("model_name", "image_size", "grid", "width"),
    [("tiny-vit", 64, 8, 64), ("tiny-vit", 96, 12, 64), ("small-vit", 224, 14, 256), ("small-vit", 160, 10, 256)],
)
def test_token_shapes_two_sizes_two_models(model_name: str, image_size: int, grid: int, width: int) -> None:
    backbone = CLIPBackbone(model_name, "none", image_size=image_size)
    taps = backbone.encode_image_layers(torch.randn(2, 3, image_size, image_size), [1, 2, 4])
    assert backbone.grid_size == (grid, grid)
    assert [t.shape for t in taps] == [torch.Size([2, 1 + grid * grid, width])] * 3
    assert backbone.project(taps[-1]).shape == (2, 1 + grid * grid, backbone.embed_dim)


def test_taps_are_distinct_copies(tiny: CLIPBackbone) -> None:
    taps = tiny.encode_image_layers(torch.randn(1, 3, 64, 64), [1, 2, 3, 4])
    for a, b in zip(taps, taps[1:]):
        assert not torch.allclose(a, b), "different layers must give different tokens"
    assert len({t.data_ptr() for t in taps}) == 4


def test_last_tap_matches_open_clip_forward() -> None:
    torch.manual_seed(0)
    backbone = CLIPBackbone("tiny-vit", "none")
    images = torch.randn(2, 3, 64, 64)
    reference = open_clip.create_model("tiny-vit", pretrained=None)
    reference.load_state_dict(
        {**reference.state_dict(), **{f"visual.{k}": v for k, v in backbone.visual.state_dict().items()}}
    )
    with torch.no_grad():
        expected = reference.visual(images)
    assert torch.allclose(backbone.encode_image(images), expected, atol=1e-5)


def test_position_embeddings_interpolated_without_mutation(tiny: CLIPBackbone) -> None:
    stored = tiny.visual.positional_embedding.detach().clone()
    assert tiny.pos_embed().shape == (1 + 64, 64)
    bilinear = CLIPBackbone("tiny-vit", "none", image_size=96, pos_embed_mode="bilinear_per_forward")
    before = bilinear.visual.positional_embedding.detach().clone()
    bilinear.encode_image_layers(torch.randn(1, 3, 96, 96), [4])
    assert torch.equal(bilinear.visual.positional_embedding, before)
    assert bilinear.pos_embed().shape == (1 + 144, 64)
    assert torch.equal(tiny.visual.positional_embedding, stored)


def test_bicubic_and_bilinear_modes_differ() -> None:
    torch.manual_seed(1)
    a = CLIPBackbone("tiny-vit", "none", image_size=96, pos_embed_mode="bicubic_once")
    b = CLIPBackbone("tiny-vit", "none", image_size=96, pos_embed_mode="bilinear_per_forward")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.pos_embed()[0], b.pos_embed()[0])  # CLS kept
    assert not torch.allclose(a.pos_embed(), b.pos_embed())


def test_block_hook_appends_tokens_and_taps_strip_them(tiny: CLIPBackbone) -> None:
    extra = torch.randn(1, 3, 64, requires_grad=True)

    def hook(i: int, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, extra.expand(x.shape[0], -1, -1)], dim=1) if i == 2 else x

    images = torch.randn(2, 3, 64, 64)
    taps = tiny.encode_image_layers(images, [1, 4], before_block=hook)
    plain = tiny.encode_image_layers(images, [1, 4])
    assert taps[0].shape == plain[0].shape == (2, 65, 64)
    assert torch.allclose(taps[0], plain[0])  # block 1 runs before the prompts exist
    assert not torch.allclose(taps[1], plain[1])
    taps[1].sum().backward()
    assert extra.grad is not None and extra.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())


def test_grad_checkpointing_gives_same_gradients() -> None:
    torch.manual_seed(0)
    a = CLIPBackbone("tiny-vit", "none")
    b = CLIPBackbone("tiny-vit", "none", grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    images = torch.randn(1, 3, 64, 64)
    grads = []
    for model in (a, b):
        prompt = torch.ones(1, 2, 64, requires_grad=True)
        taps = model.encode_image_layers(images, [4], before_block=lambda i, x, p=prompt: (
            torch.cat([x, p.expand(x.shape[0], -1, -1)], 1) if i == 2 else x))
        taps[0].pow(2).sum().backward()
        grads.append(prompt.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_text_embedding_path_matches_encode_text(tiny: CLIPBackbone) -> None:
    texts = ["a photo of a normal object.", "a photo of a damaged object."]
    ids = tiny.tokenize(texts)
    out = tiny.encode_text_embeddings(tiny.token_embedding(ids), ids.argmax(-1))
    assert out.eot.shape == (2, tiny.embed_dim)
    assert out.tokens.shape == (2, tiny.context_length, tiny.text_width)
    assert torch.allclose(out.eot, tiny.encode_text(texts), atol=1e-6)


def test_learnable_prompt_and_deep_prompts_get_gradients(tiny: CLIPBackbone) -> None:
    ids = tiny.tokenize(["x x x x object."])
    ctx = torch.zeros(1, 4, tiny.text_width, requires_grad=True)
    deep = [torch.zeros(2, tiny.text_width, requires_grad=True)]
    emb = tiny.token_embedding(ids)
    emb = torch.cat([emb[:, :1], ctx, emb[:, 5:]], dim=1)
    out = tiny.encode_text_embeddings(emb, ids.argmax(-1), deep_prompts=deep)
    out.eot.sum().backward()
    assert ctx.grad.abs().sum() > 0 and deep[0].grad.abs().sum() > 0
    without = tiny.encode_text_embeddings(emb.detach(), ids.argmax(-1))
    assert not torch.allclose(without.eot, out.eot.detach())


def test_causal_mask_switch_changes_text_features(tiny: CLIPBackbone) -> None:
    ids = tiny.tokenize(["a photo of a screw."])
    emb = tiny.token_embedding(ids)
    causal = tiny.encode_text_embeddings(emb, ids.argmax(-1), causal=True)
    bidirectional = tiny.encode_text_embeddings(emb, ids.argmax(-1), causal=False)
    assert not torch.allclose(causal.eot, bidirectional.eot)
    # Under the causal mask the first token only sees itself: padding cannot change it.
    assert torch.allclose(causal.tokens[:, 0], tiny.encode_text_embeddings(emb, ids.argmax(-1)).tokens[:, 0])


def test_frozen_and_eval(tiny: CLIPBackbone) -> None:
    tiny.train()
    assert not tiny.training
    assert not any(p.requires_grad for p in tiny.parameters())


def test_bad_sizes_layers_and_names(tiny: CLIPBackbone) -> None:
    with pytest.raises(ValueError, match="multiple of"):
        CLIPBackbone("tiny-vit", "none", image_size=70)
    with pytest.raises(ValueError, match="1..4"):
        tiny.encode_image_layers(torch.randn(1, 3, 64, 64), [5])
    with pytest.raises(ValueError, match="Unknown backbone"):
        CLIPBackbone("ViT-Q-99", "none")
    with pytest.raises(ValueError, match="Unknown pretrained tag"):
        CLIPBackbone("tiny-vit", "laion2b")


def test_uncached_tag_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="pass its path"):
        CLIPBackbone("ViT-B-16", "openai", weights_cache_dir=str(tmp_path))
    assert time.monotonic() - start < 5.0


def test_auto_falls_back_to_labelled_random_init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="RANDOM-INIT"):
        backbone = CLIPBackbone("tiny-vit", "auto", weights_cache_dir=str(tmp_path))
    assert backbone.random_init and backbone.describe()["random_init"]


def test_local_checkpoint_path_loads(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = open_clip.create_model("tiny-vit", pretrained=None)
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    backbone = CLIPBackbone("tiny-vit", str(path))
    assert not backbone.random_init
    assert torch.equal(backbone.visual.proj, source.visual.proj)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        CLIPBackbone("tiny-vit", str(tmp_path / "missing.pt"))


def _configured_backbones() -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / "experiments").rglob("*.yaml"):
        text = yaml.safe_load(path.read_text()) or {}
        args = ((text.get("model") or {}).get("init_args") or {}) if isinstance(text, dict) else {}
        if "backbone" in args:
            found.add((args["backbone"], str(args.get("pretrained", "auto"))))
    return found


def test_activation_of_every_configured_backbone() -> None:
    """OpenAI weights need QuickGELU: an openai ViT-L must never be built with nn.GELU."""
    register_suite_configs()
    paper = {("ViT-L-14-336-quickgelu", "openai"), ("ViT-B-16-plus-240", "laion400m_e31")}
    configured = _configured_backbones() | paper
    for name, pretrained in configured:
        model = open_clip.create_model(
            name, pretrained=None, force_quick_gelu=quick_gelu_required(name, pretrained), device="meta"
        )
        act = type(model.visual.transformer.resblocks[0].mlp.gelu).__name__
        if pretrained == "openai" or (pretrained == "auto" and name.startswith("ViT-L-14")):
            assert act == "QuickGELU", f"{name} with openai weights builds {act}"
        elif name == "ViT-B-16-plus-240":
            assert act == "GELU", "the LAION ViT-B-16-plus-240 was trained with plain GELU"


@pytest.mark.parametrize("image_size", [32, 40, 96])  # grids 4 and 5 (downsampling), 12 (upsampling)
def test_bicubic_resize_equals_open_clip_resize_pos_embed(image_size: int) -> None:
    """``bicubic_once`` must be open_clip's ``resize_pos_embed`` (bicubic, antialias on) to the bit."""
    from open_clip.model import resize_pos_embed

    torch.manual_seed(2)
    backbone = CLIPBackbone("tiny-vit", "none", image_size=image_size, pos_embed_mode="bicubic_once")
    table = backbone.visual.positional_embedding.detach().clone()
    target = open_clip.create_model("tiny-vit", pretrained=None, force_image_size=image_size, device="meta")
    state = {"visual.positional_embedding": table}
    resize_pos_embed(state, target)
    assert torch.equal(backbone.pos_embed(), state["visual.positional_embedding"])
    if image_size < 64:  # antialiasing only acts when shrinking: the test must see the difference
        aliased = {"visual.positional_embedding": table}
        resize_pos_embed(aliased, target, antialias=False)
        assert (aliased["visual.positional_embedding"] - state["visual.positional_embedding"]).abs().max() > 1e-3


@pytest.mark.parametrize("image_size", [32, 96])
def test_bilinear_per_forward_is_plain_bilinear(image_size: int) -> None:
    """FB-CLIP's per-forward resize: ``F.interpolate`` bilinear, align_corners False, no antialias."""
    torch.manual_seed(2)
    backbone = CLIPBackbone("tiny-vit", "none", image_size=image_size, pos_embed_mode="bilinear_per_forward")
    table = backbone.visual.positional_embedding.detach()
    g = image_size // 8
    grid = table[1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(grid, size=(g, g), mode="bilinear", align_corners=False)
    want = torch.cat([table[:1], want.permute(0, 2, 3, 1).reshape(g * g, -1)])
    assert torch.equal(backbone.pos_embed(), want)
    if image_size < 64:
        smooth = torch.nn.functional.interpolate(grid, size=(g, g), mode="bilinear", align_corners=False,
                                                 antialias=True)
        assert (smooth.permute(0, 2, 3, 1).reshape(g * g, -1) - want[1:]).abs().max() > 1e-3
