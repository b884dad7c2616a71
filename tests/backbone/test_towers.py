"""Deep text prompts against a step-by-step reference, and the cache of the resized position table."""

from __future__ import annotations

import pytest
import torch

from src.backbone import CLIPBackbone


@pytest.fixture(scope="module")
def tiny() -> CLIPBackbone:
    torch.manual_seed(4)
    return CLIPBackbone("tiny-vit", "none", image_size=96)


def _reference(model: CLIPBackbone, emb: torch.Tensor, eot: torch.Tensor, deep: list[torch.Tensor],
               causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The documented semantics, written out: ``deep[j]`` replaces tokens 1..n entering text layer j + 2."""
    x = emb + model.text_positional_embedding
    for layer, block in enumerate(model.text_transformer.resblocks):  # 0-based: layer 1 is the second block
        if 1 <= layer <= len(deep):
            prompt = deep[layer - 1]
            prompt = prompt if prompt.dim() == 3 else prompt[None].repeat(x.shape[0], 1, 1)
            x = x.clone()
            x[:, 1 : 1 + prompt.shape[1]] = prompt
        x = block(x, attn_mask=model.causal_mask if causal else None)
    tokens = model.ln_final(x)
    eot_features = torch.stack([tokens[i, eot[i]] for i in range(tokens.shape[0])])
    return eot_features @ model.text_projection, tokens


@pytest.mark.parametrize("causal", [True, False])
def test_deep_prompts_match_the_reference(tiny: CLIPBackbone, causal: bool) -> None:
    torch.manual_seed(5)
    ids = tiny.tokenize(["a photo of a bottle.", "a broken cable with a long description"])
    emb = tiny.token_embedding(ids)
    eot = ids.argmax(-1)
    # tiny-vit has 2 text layers: one deep prompt fits; a second one would be beyond the last layer
    shared = [torch.randn(3, tiny.text_width), torch.randn(2, tiny.text_width)]
    per_prompt = [torch.randn(2, 3, tiny.text_width)]
    for deep in (shared, per_prompt):
        got = tiny.encode_text_embeddings(emb, eot, deep_prompts=deep, causal=causal)
        want_eot, want_tokens = _reference(tiny, emb, eot, deep, causal)
        assert torch.allclose(got.tokens, want_tokens, atol=1e-5) and torch.allclose(got.eot, want_eot, atol=1e-5)
    plain = tiny.encode_text_embeddings(emb, eot, causal=causal)
    assert torch.allclose(plain.eot, _reference(tiny, emb, eot, [], causal)[0], atol=1e-5)
    assert torch.allclose(tiny.project_text(plain.tokens[:, 0]), plain.tokens[:, 0] @ tiny.text_projection)


def test_default_mask_follows_the_constructor(tiny: CLIPBackbone) -> None:
    ids = tiny.tokenize(["a photo of a screw."])
    emb = tiny.token_embedding(ids)
    eot = ids.argmax(-1)
    assert tiny.text_causal_mask
    assert torch.equal(tiny.encode_text_embeddings(emb, eot).eot,
                       tiny.encode_text_embeddings(emb, eot, causal=True).eot)
    tiny.text_causal_mask = False
    try:
        assert torch.equal(tiny.encode_text_embeddings(emb, eot).eot,
                           tiny.encode_text_embeddings(emb, eot, causal=False).eot)
    finally:
        tiny.text_causal_mask = True


def test_bicubic_table_is_cached_until_the_weights_change(tiny: CLIPBackbone) -> None:
    first = tiny.pos_embed()
    assert tiny.pos_embed() is first  # computed once per loaded table
    with torch.no_grad():
        tiny.visual.positional_embedding.add_(1.0)  # what loading other weights does to the parameter
    try:
        second = tiny.pos_embed()
        assert second is not first and torch.allclose(second, first + 1.0, atol=1e-5)
    finally:
        with torch.no_grad():
            tiny.visual.positional_embedding.sub_(1.0)


def test_wrong_input_size_is_named(tiny: CLIPBackbone) -> None:
    with pytest.raises(ValueError) as error:
        tiny.encode_image(torch.zeros(1, 3, 64, 64))
    assert str(error.value) == ("Backbone built for 96px input got (64, 64); set the data and model image_size to "
                                "the same value.")


def test_keep_tokens_trims_every_tap(tiny: CLIPBackbone) -> None:
    images = torch.randn(2, 3, 96, 96)
    full = tiny.encode_image_layers(images, [1, 3])
    cls_only = tiny.encode_image_layers(images, [1, 3], keep_tokens=1)
    assert [t.shape for t in cls_only] == [torch.Size([2, 1, 64])] * 2
    assert all(torch.equal(a, b[:, :1]) for a, b in zip(cls_only, full))
    hooked = tiny.encode_image_layers(images, [1, 3], before_block=lambda i, x: x, keep_tokens=1)
    assert all(torch.equal(a, b) for a, b in zip(hooked, cls_only)), "the hooked (trainable) pass trims too"
