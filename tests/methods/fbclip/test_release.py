"""Loading a checkpoint saved with the release's names and shapes (release.py's name map)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from src.methods.fbclip import FBCLIP
from src.methods.fbclip.release import convert_release_state, load_release_checkpoint, map_release_name


def release_like_checkpoint(C: int, W: int, D: int, n_ctx: int = 12) -> dict:
    """A dict shaped like ``cross_domain_test.py``'s ``*_model.pth`` (random values; its loss is numpy)."""
    g = torch.Generator().manual_seed(7)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    fb = {}
    for br in ("fg", "bg"):
        fb[f"fb_Attention.{br}_norm.weight"], fb[f"fb_Attention.{br}_norm.bias"] = r(C), r(C)
        for p in ("q", "k", "v"):
            fb[f"fb_Attention.{br}_to_{p}.weight"] = r(512, C)
        fb[f"fb_Attention.{br}_to_out.0.weight"], fb[f"fb_Attention.{br}_to_out.0.bias"] = r(C, 512), r(C)
        fb[f"fb_Attention.{br}_scale"] = r(())
    fb.update({
        "fb_Attention.gate.0.weight": r(C // 2, C), "fb_Attention.gate.0.bias": r(C // 2),
        "fb_Attention.gate.2.weight": r(1, C // 2), "fb_Attention.gate.2.bias": r(1),
        "fb_Attention.norm.weight": r(C), "fb_Attention.norm.bias": r(C),
        "token_selector.0.weight": r(W // 2, W), "token_selector.0.bias": r(W // 2),
        "token_selector.2.weight": r(1, W // 2), "token_selector.2.bias": r(1),
        "text_projection_mlp.0.weight": r(W, W), "text_projection_mlp.0.bias": r(W),
        "text_projection_mlp.2.weight": r(D, W), "text_projection_mlp.2.bias": r(D),
        "fusion_weights": r(3), "gate_network.0.weight": r(D, 3 * D), "gate_network.0.bias": r(D),
        "gate_network.2.weight": r(2, D), "gate_network.2.bias": r(2), "fusion_weight": r(()),
        "scale_weights": r(6), "layer_selector": r(18),
    })
    prompt = {"ctx_pos": r(1, 1, n_ctx, W), "ctx_neg": r(1, 1, n_ctx, W),
              "token_prefix_pos": r(1, 1, 1, W), "tokenized_prompts_pos": torch.zeros(1, 1, 77, dtype=torch.long)}
    for i in range(8):
        prompt[f"compound_prompts_text.{i}"] = r(4, W)
        prompt[f"compound_prompt_projections.{i}.weight"] = r(896, W)
        prompt[f"compound_prompt_projections.{i}.bias"] = r(896)
    return {"prompt_learner": prompt, "model_trainable_params": fb, "epoch": 1, "loss": np.float64(0.5),
            "source_domain": "mvtec"}


def test_release_checkpoint_loads(tmp_path):
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4])
    bb = module.model.backbone
    ckpt = release_like_checkpoint(bb.width, bb.text_width, bb.embed_dim)
    path = tmp_path / "mvtec_epoch_1_model.pth"
    torch.save(ckpt, path)
    with pytest.warns(UserWarning, match="ignored"):
        loaded = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4],
                        release_checkpoint=str(path))
    m, fb = loaded.model, ckpt["model_trainable_params"]
    assert torch.equal(m.prompt.ctx_normal, ckpt["prompt_learner"]["ctx_pos"][0, 0])
    assert torch.equal(m.prompt.ctx_abnormal, ckpt["prompt_learner"]["ctx_neg"][0, 0])
    assert torch.equal(m.fb_attention.fg.to_out.weight, fb["fb_Attention.fg_to_out.0.weight"])
    assert torch.equal(m.fb_attention.bg.scale, fb["fb_Attention.bg_scale"])
    assert torch.equal(m.text_fusion.selector[2].bias, fb["token_selector.2.bias"])
    assert torch.equal(m.text_fusion.mlp[0].weight, fb["text_projection_mlp.0.weight"])
    assert torch.equal(m.layer_weights, fb["scale_weights"])
    assert any("gate_network" in n for n in loaded.release_ignored)
    assert any("compound_prompts_text" in n for n in loaded.release_ignored)
    # Every trainable parameter was overwritten.
    state, _ = convert_release_state(ckpt)
    assert {n for n, p in m.named_parameters() if p.requires_grad} == set(state)
    # The authors' weights are evaluated, never trained further (the launcher fits only trainable models).
    assert module.is_trainable and not loaded.is_trainable


def test_release_name_errors(tmp_path):
    with pytest.raises(KeyError, match="not a parameter"):
        map_release_name("visual.proj", "model")
    with pytest.raises(KeyError, match="prompt_learner"):
        convert_release_state({"model_trainable_params": {}})
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4])
    bb = module.model.backbone
    ckpt = release_like_checkpoint(bb.width, bb.text_width, bb.embed_dim, n_ctx=4)
    path = tmp_path / "wrong.pth"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="prompt.ctx_normal"):
        FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4],
               release_checkpoint=str(path))
    with pytest.raises(FileNotFoundError, match="release_checkpoint"):
        FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4],
               release_checkpoint=str(tmp_path / "x"))


def _rename_pickle_global(path, old: bytes, new: bytes) -> None:
    """Rewrite ``data.pkl`` inside a torch zip checkpoint with one global's module renamed."""
    import zipfile

    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                assert old in data, f"{old!r} not in the pickle"
                data = data.replace(old, new)
            dst.writestr(info.filename, data)


@pytest.mark.parametrize("numpy_module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_read_release_checkpoint_numpy_scalar_names(tmp_path, numpy_module):
    """numpy 2 pickles the loss as ``numpy._core.multiarray.scalar``; the release (numpy 1.x, torch 2.0)
    as ``numpy.core.multiarray.scalar``. The second file is made from the first by renaming that global."""
    from src.methods.fbclip.release import read_release_checkpoint

    path = tmp_path / "visa_epoch_2_model.pth"
    torch.save({"epoch": 2, "loss": np.float64(0.25), "w": torch.arange(3.0)}, path)
    if numpy_module == "numpy.core.multiarray":
        _rename_pickle_global(path, b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    out = read_release_checkpoint(path)
    assert out["epoch"] == 2 and torch.equal(out["w"], torch.arange(3.0))
    assert float(out["loss"]) == 0.25 and isinstance(out["loss"], np.float64)



class NotAllowListed:
    """A pickled class ``weights_only`` loading must refuse (what an untrusted file could carry)."""


def test_read_release_checkpoint_refuses_arbitrary_objects_and_names_the_file(tmp_path):
    from src.methods.fbclip.release import read_release_checkpoint

    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": NotAllowListed()}, path)
    with pytest.raises(RuntimeError, match=rf"^could not read release checkpoint {re.escape(str(path))}: "):
        read_release_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=rf"^release_checkpoint={re.escape(repr(str(tmp_path / 'x')))} "
                                                r"does not exist$"):
        read_release_checkpoint(tmp_path / "x")


def test_release_errors_name_the_entry_and_the_missing_parameters(tmp_path):
    with pytest.raises(KeyError, match=r"release checkpoint has no 'prompt_learner' entry \(found "
                                       r"\['model_trainable_params'\]\); expected the dict saved by the "
                                       r"release's cross_domain_test.py"):
        convert_release_state({"model_trainable_params": {}})
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4])
    bb = module.model.backbone
    ckpt = release_like_checkpoint(bb.width, bb.text_width, bb.embed_dim)
    del ckpt["model_trainable_params"]["token_selector.2.bias"]
    path = tmp_path / "partial.pth"
    torch.save(ckpt, path)
    with pytest.raises(KeyError, match=rf"release checkpoint {re.escape(str(path))} lacks trainable parameters "
                                       r"\['text_fusion\.selector\.2\.bias'\]"):
        load_release_checkpoint(module.model, path)


def test_release_entries_the_model_lacks_are_named(tmp_path, monkeypatch):
    from src.methods.fbclip import release

    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4])
    bb = module.model.backbone
    path = tmp_path / "ckpt.pth"
    torch.save(release_like_checkpoint(bb.width, bb.text_width, bb.embed_dim), path)
    real = release.map_release_name
    monkeypatch.setattr(release, "map_release_name",
                        lambda name, source: "no.such.parameter" if name == "fusion_weight" else real(name, source))
    with pytest.raises(KeyError, match=r"release parameter maps to 'no\.such\.parameter', which this model does "
                                       r"not have"):
        load_release_checkpoint(module.model, path)


def test_ignored_entries_are_named_by_their_release_source(tmp_path):
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4])
    bb = module.model.backbone
    path = tmp_path / "ckpt.pth"
    torch.save(release_like_checkpoint(bb.width, bb.text_width, bb.embed_dim), path)
    with pytest.warns(UserWarning, match=r"ignored \d+ entries"):
        loaded = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4],
                        release_checkpoint=str(path))
    assert "model.gate_network.0.weight" in loaded.release_ignored
    assert "prompt_learner.compound_prompts_text.0" in loaded.release_ignored
    assert loaded.results_meta()["loaded_weights"] == str(path)
    assert "loaded_weights" not in module.results_meta()
