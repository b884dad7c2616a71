import warnings

import pytest
import torch

from src.methods.afrclip import sp as sp_module
from src.methods.afrclip.sp import (
    CNNFeatures,
    CNNWeightsUnavailableError,
    SelfPrompting,
    prompt_plan,
    resolve_cnn_weights,
)


def test_plan_for_the_paper_taps():
    assert prompt_plan([6, 12, 18, 24], [1], "append", 24) == {2: "append", 3: "replace", 4: "replace",
                                                                5: "replace", 6: "replace"}
    two = prompt_plan([6, 12, 18, 24], [1, 2], "append", 24)
    assert sorted(two) == list(range(2, 13)) and two[2] == "append" and two[12] == "replace"
    assert set(prompt_plan([6, 12, 18, 24], [1], "overwrite", 24).values()) == {"replace"}
    assert prompt_plan([6, 12, 18, 24], [1], "append", 24, drop_after_last_stage=True)[7] == "drop"


def test_plan_of_a_later_stage_alone_and_drops_only_before_an_existing_block():
    # stage 2 of taps (6, 12, 18, 24) is blocks 7..12 and nothing before it
    assert prompt_plan([6, 12, 18, 24], [2], "append", 24) == {7: "append", 8: "replace", 9: "replace",
                                                                10: "replace", 11: "replace", 12: "replace"}
    assert prompt_plan([2, 4, 6, 8], [3], "overwrite", 8) == {5: "replace", 6: "replace"}
    # the last prompted block is the ViT's last: there is no block after it to drop the prompts before
    assert prompt_plan([2, 4], [2], "append", 4, drop_after_last_stage=True) == {3: "append", 4: "replace"}
    assert prompt_plan([2, 4], [2], "append", 5, drop_after_last_stage=True) == {3: "append", 4: "replace",
                                                                                  5: "drop"}


def test_self_prompting_defaults_and_its_own_seeds():
    from src.seeding import module_seed

    sp = SelfPrompting(width=8)
    assert sp.num_prompts == 5 and len(sp.pv) == 5 and sp.pl.shape == (5, 8) and sp.width == 8
    assert all(lin.in_features == 1536 and lin.out_features == 8 for lin in sp.pv)
    assert SelfPrompting(width=8, num_prompts=1, source_dim=4).pl.shape == (1, 8)  # one prompt is allowed
    torch.manual_seed(99)  # the run seed: the blocks' seeds derive from it and their own labels
    with module_seed("afr.sp.pv"):
        pv = torch.nn.ModuleList(torch.nn.Linear(4, 8) for _ in range(2))
    with module_seed("afr.sp.pl"):
        pl = torch.randn(2, 8) * 0.02
    torch.randn(7)  # draws made before the module is built must not change its start
    built = SelfPrompting(width=8, num_prompts=2, source_dim=4)
    assert all(torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) for a, b in zip(built.pv, pv))
    assert torch.equal(built.pl, pl)
    with pytest.raises(ValueError, match=r"^SelfPrompting needs P_v or P_l; with neither, SP is off "
                                         r"\(use_sp=false\)\.$"):
        SelfPrompting(width=8, use_pv=False, use_pl=False)


@pytest.mark.parametrize("stages", [[], [0], [5]])
def test_plan_rejects_bad_stages(stages):
    with pytest.raises(ValueError, match="sp_stages"):
        prompt_plan([6, 12, 18, 24], stages, "append", 24)


def test_plan_rejects_a_stage_of_block_one_only_and_unknown_insert():
    with pytest.raises(ValueError, match="only block 1"):
        prompt_plan([1, 4], [1], "append", 4)
    with pytest.raises(ValueError, match="sp_insert"):
        prompt_plan([6, 12], [1], "prepend", 12)


def test_prompts_combine_pv_and_pl():
    sp = SelfPrompting(width=6, num_prompts=3, source_dim=4)
    src = torch.randn(2, 4)
    pv = torch.stack([lin(src) for lin in sp.pv], dim=1)
    assert torch.allclose(sp(src, 2), pv + sp.pl)
    only_pl = SelfPrompting(6, 3, 4, use_pv=False)
    assert torch.equal(only_pl(None, 2), only_pl.pl.expand(2, -1, -1))
    with pytest.raises(ValueError, match="use_sp=false"):
        SelfPrompting(6, 3, 4, use_pv=False, use_pl=False)


def test_sp_off_taps_equal_plain_clip(make_model):
    model = make_model(sp_use_pv=False, sp_use_pl=False).model
    images = torch.randn(2, 3, 32, 32)
    plain = model.backbone.encode_image_layers(images, model.layers)
    for ours, ref in zip(model.visual_taps(images), plain):
        assert torch.equal(ours, ref)
    # The check can fail: with prompts on, the taps after the prompted block differ.
    prompted = make_model().model.visual_taps(images)
    assert not torch.allclose(prompted[0], plain[0])


def test_prompt_tokens_never_reach_taps_and_block_one_ignores_them(make_model):
    model = make_model().model
    bb = model.backbone
    images = torch.randn(2, 3, 32, 32)
    n = 1 + bb.num_patches
    lengths = {}

    def recording(hook):
        def wrapped(i, x):
            x = hook(i, x)
            lengths[i] = x.shape[1]
            return x
        return wrapped

    k = model.sp.num_prompts
    prompts_a, prompts_b = torch.randn(2, k, bb.width), torch.randn(2, k, bb.width)
    hook_a = recording(SelfPrompting.hook(prompts_a, model.plan))
    with torch.no_grad():
        taps = bb.forward_blocks(bb.embed_image(images), [1, 2, 3, 4], hook_a)
        taps_b = bb.forward_blocks(bb.embed_image(images), [1, 2], SelfPrompting.hook(prompts_b, model.plan))
    assert lengths == {1: n, 2: n + k, 3: n + k, 4: n + k}  # appended before block 2, carried on
    assert all(t.shape[1] == n for t in taps)
    assert torch.equal(taps[0], taps_b[0])  # after block 1: independent of the prompts
    assert not torch.allclose(taps[1], taps_b[1])  # after block 2: depends on them
    assert all(t.shape[1] == n for t in model.visual_taps(images))


def test_overwrite_keeps_the_sequence_length(make_model):
    model = make_model(sp_insert="overwrite").model
    bb = model.backbone
    seen = []
    hook = SelfPrompting.hook(torch.zeros(1, model.sp.num_prompts, bb.width), model.plan)
    with torch.no_grad():
        bb.forward_blocks(bb.embed_image(torch.randn(1, 3, 32, 32)), [4],
                          lambda i, x: seen.append(hook(i, x).shape[1]) or hook(i, x))
    assert set(seen) == {1 + bb.num_patches}


def test_cnn_weights_resolution_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert resolve_cnn_weights("resnet18", "none") is None
    with pytest.raises(CNNWeightsUnavailableError, match="never downloads"):
        resolve_cnn_weights("resnet18", "imagenet")
    with pytest.warns(UserWarning, match="RANDOM-INIT SP CNN"):
        assert resolve_cnn_weights("resnet18", "auto") is None
    with pytest.raises(CNNWeightsUnavailableError, match="not a file"):
        resolve_cnn_weights("resnet18", str(tmp_path / "missing.pth"))
    # A file in the hub cache under torchvision's name is found by both 'imagenet' and 'auto'.
    cached = sp_module._cached_imagenet_files("resnet18")[0]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert resolve_cnn_weights("resnet18", "imagenet") == str(cached)


def test_rehearsal_swaps_the_cnn_weights_for_random_with_a_notice(tmp_path, monkeypatch, capsys):
    # make rehearse keeps the CNN's architecture on random weights, and says so on stderr, even where
    # the cached ImageNet file exists ('none' needs no notice: it asked for random weights).
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = sp_module._cached_imagenet_files("resnet18")[0]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    monkeypatch.setenv("ADSUITE_REHEARSAL", "1")
    assert resolve_cnn_weights("resnet18", "none") is None
    assert capsys.readouterr().err == ""
    assert resolve_cnn_weights("resnet18", "imagenet") is None
    assert capsys.readouterr().err == "REHEARSAL: SP CNN resnet18 on random weights instead of 'imagenet'\n"


def test_cnn_loads_a_local_state_dict_and_stays_frozen(tmp_path):
    import torchvision

    torch.manual_seed(3)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    cnn = CNNFeatures("resnet18", str(path))
    assert not cnn.random_init
    assert torch.equal(cnn.backbone["layer3"][0].conv1.weight, net.layer3[0].conv1.weight)
    cnn.train()
    assert not cnn.training and not any(p.requires_grad for p in cnn.parameters())
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 384)


def test_random_cnn_is_labelled(make_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = make_model().results_meta()
    assert meta["sp_cnn_random_init"] is True and meta["random_init"] is True


class _NotAWeight:
    """An arbitrary class: a weights file holding it must be refused, never unpickled."""


def test_cnn_weights_messages_by_their_text(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    bar = "!" * 78
    with pytest.warns(UserWarning) as caught:
        resolve_cnn_weights("resnet18", "auto")
    assert str(caught[0].message) == (
        f"\n{bar}\nRANDOM-INIT SP CNN: resnet18 runs on random weights (no ImageNet weights in "
        f"{tmp_path / 'checkpoints'}). The run is labelled sp_cnn_random_init and its metrics mean nothing "
        f"about the method.\n{bar}")
    looked = [str(p) for p in sp_module._cached_imagenet_files("resnet18")]
    assert all(p.startswith(str(tmp_path / "checkpoints")) for p in looked)
    with pytest.raises(CNNWeightsUnavailableError) as error:
        resolve_cnn_weights("resnet18", "imagenet")
    assert str(error.value) == (
        f"sp_cnn_pretrained='imagenet': no cached torchvision weights for resnet18 (looked for {looked}); this "
        "suite never downloads. Copy the file there, pass a path "
        "(--model.init_args.sp_cnn_pretrained=/path/to/resnet18.pth), use sp_source=clip_global (no extra "
        "weights), or 'none'/'auto' for labelled random-init runs.")


def test_cnn_defaults_and_arch_reach_the_weight_lookup(monkeypatch):
    asked = []
    monkeypatch.setattr(sp_module, "resolve_cnn_weights", lambda arch, pretrained: asked.append((arch, pretrained)))
    cnn = CNNFeatures()
    assert asked == [("wide_resnet50_2", "auto")] and (cnn.arch, cnn.out_dim) == ("wide_resnet50_2", 1536)
    other = CNNFeatures("resnet18", "none")
    assert asked[-1] == ("resnet18", "none")
    assert (other.arch, other.pretrained, other.out_dim) == ("resnet18", "none", 384)
    with pytest.raises(ValueError, match=r"^CNN source must be one of \('wide_resnet50_2', 'resnet18'\), got 'vgg'$"):
        CNNFeatures("vgg")


def test_cnn_loads_a_wrapped_state_dict_and_refuses_arbitrary_pickles(tmp_path):
    import pickle

    import torchvision

    torch.manual_seed(4)
    net = torchvision.models.resnet18(weights=None)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": net.state_dict()}, wrapped)
    cnn = CNNFeatures("resnet18", str(wrapped))
    assert torch.equal(cnn.backbone["layer2"][1].conv2.weight, net.layer2[1].conv2.weight)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": net.state_dict(), "extra": _NotAWeight()}, unsafe)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        CNNFeatures("resnet18", str(unsafe))
