"""A catalogue of plausible single-line slips in the methods, their configs and ablation rows (issue 13).

``make slips`` (``python -m tests.mutation.slips [--only ID,...]``) applies each slip to a staged
copy of the tree and runs the tests that judge it; ``tests/mutation/slip_runner.py`` is the runner.
A slip is *caught* when its judging tests fail, or, where they pass, when the whole non-slow suite
(what ``make test`` runs, without the ddp / slow tests) fails.

The slips were written from ``src/methods`` and ``experiments/`` alone, before reading the tests,
so that the catalogue is not shaped by what the tests already check. Every slip changes a result
for some valid input (a trained model, a forward, a loss value or a run's configuration); where
that is not obvious, ``why`` says how. ``tests/test_slips.py`` checks that every ``old``
text still occurs exactly once, so the catalogue cannot silently rot.
"""

from __future__ import annotations

from dataclasses import dataclass

AFR, FB, VT, CLIP, LIN = (f"tests/methods/{m}" for m in ("afrclip", "fbclip", "vtfusion", "clip", "linear"))
#: Extra judges of a paper config or an ablation row: the table and profile tests.
TABLES = ("tests/test_tables.py", "tests/test_tables_published.py", "tests/test_paper_profile.py")


@dataclass(frozen=True)
class Slip:
    """One single-line slip: ``old`` (occurring exactly once in ``file``) becomes ``new``."""

    id: str
    file: str
    old: str
    new: str
    kind: str
    tests: tuple[str, ...]
    why: str = ""


def _code(prefix: str, folder: str, method: str):
    """Entry builder for code under ``src/methods/<method>``, judged by the mirrored test folder."""
    def make(slip_id: str, name: str, old: str, new: str, kind: str, why: str = "") -> Slip:
        return Slip(f"{prefix}-{slip_id}", f"src/methods/{method}/{name}", old, new, kind, (folder,), why)
    return make


def _config(slip_id: str, path: str, old: str, new: str, kind: str, folder: str, why: str = "") -> Slip:
    return Slip(slip_id, f"experiments/{path}", old, new, kind, (folder, *TABLES), why)


_afr = _code("afr", AFR, "afrclip")
_fb = _code("fb", FB, "fbclip")
_vt = _code("vt", VT, "vtfusion")
_clip = _code("clip", CLIP, "clip")
_lin = _code("lin", LIN, "linear")

AFR_SLIPS = [
    _afr("score-mean-patches", "torch_model.py", "pred_score=probs[:, 0]", "pred_score=probs[:, 1:].mean(1)",
         "image-score token"),
    _afr("stages-last-only", "torch_model.py",
         "probs = torch.stack([lg.softmax(dim=-1)[..., 1] for lg in stage_logits]).mean(0)",
         "probs = stage_logits[-1].softmax(dim=-1)[..., 1]", "stage mean -> last stage"),
    _afr("text-swapped", "torch_model.py", "text[:, NORMAL], text[:, ABNORMAL], text[:, STATELESS]",
         "text[:, ABNORMAL], text[:, NORMAL], text[:, STATELESS]", "normal/abnormal text swapped"),
    _afr("prompt-rows-swapped", "prompts.py", "NORMAL, ABNORMAL, STATELESS = 0, 1, 2",
         "NORMAL, ABNORMAL, STATELESS = 0, 2, 1", "prompt row index",
         "the abnormal prototype becomes the stateless prompt and CMFR rectifies the abnormal one"),
    _afr("adapters-reversed", "adapters.py", "zip(self.linears, taps)", "zip(self.linears, reversed(taps))",
         "stage adapters paired in reverse", "each tap goes through another stage's (independently seeded) linear"),
    _afr("dice-normal-target", "losses.py", "dice_loss(q[:, 0], 1 - target)", "dice_loss(q[:, 0], target)",
         "loss term: dice on the normal channel"),
    _afr("image-ce-summed", "losses.py", '"image_ce": torch.stack(image_ce).mean()',
         '"image_ce": torch.stack(image_ce).sum()', "image CE summed instead of averaged"),
    _afr("focal-averaged", "losses.py", '"focal": torch.stack(focal).sum()', '"focal": torch.stack(focal).mean()',
         "loss re-weighted (mean over stages)"),
    _afr("ce-on-patch-token", "losses.py", "F.cross_entropy(logits[:, 0].float()",
         "F.cross_entropy(logits[:, 1].float()", "image CE on a patch instead of CLS"),
    _afr("focal-gamma-default", "lightning_model.py", "focal_gamma: float = 2.0,", "focal_gamma: float = 4.0,",
         "focal gamma (constructor default)"),
    _afr("cmfr-mt-gate", "cmfr.py", "m_v, _ = self.weights(visual, text)", "_, m_v = self.weights(visual, text)",
         "wrong half of the gate (training path)", "M_t's rows of the last Linear differ from M_v's"),
    _afr("cmfr-fast-mt-half", "cmfr.py", "self.linear.weight[:half], self.linear.bias[:half]",
         "self.linear.weight[half:], self.linear.bias[half:]", "wrong half of the gate (inference path)"),
    _afr("cmfr-residual-swapped", "cmfr.py", "return text[:, None] + visual * m_v",
         "return visual + text[:, None] * m_v", "Eq. 6 roles swapped (training path)"),
    _afr("mpfa-pad-counted", "mpfa.py", "padding=self.kernel // 2, count_include_pad=False)",
         "padding=self.kernel // 2, count_include_pad=True)", "border average counts pads (training path)"),
    _afr("mpfa-box-off-by-one", "mpfa.py", "for shift in range(1, min(radius, n - 1) + 1):",
         "for shift in range(1, min(radius, n - 1)):", "off-by-one (kernel 3 aggregates nothing at eval)"),
    _afr("mpfa-count-off-by-one", "mpfa.py", "cols = [min(j + r, gw - 1) - max(j - r, 0) + 1",
         "cols = [min(j + r, gw) - max(j - r, 0) + 1", "off-by-one in the border count (right column)"),
    _afr("scoring-times-temperature", "scoring.py", 'torch.einsum("bnd,bkd->bnk", q, protos) / temperature',
         'torch.einsum("bnd,bkd->bnk", q, protos) * temperature', "temperature multiplied"),
    _afr("scoring-normalise-dim", "scoring.py", "q = F.normalize(query, dim=-1)", "q = F.normalize(query, dim=1)",
         "wrong dim in a normalisation"),
    _afr("visual-normalise-dim", "torch_model.py", "visual = [F.normalize(v, dim=-1) for v in visual]",
         "visual = [F.normalize(v, dim=1) for v in visual]", "wrong dim in a normalisation"),
    _afr("cmfr-text-detached", "torch_model.py", "(tokens, stateless)", "(tokens, stateless.detach())",
         "detach added", "the text adapter's gradient through the stateless prompt is cut: trained weights change"),
    _afr("cmfr-per-stage-ignored", "torch_model.py", "self.cmfr[s % len(self.cmfr)]", "self.cmfr[0]",
         "per-stage module ignored", "with cmfr_per_stage=True every stage uses the first CMFR"),
    _afr("sp-renorm-removed-eval", "sp.py", "x = torch.addcmul(self.shift, images, self.scale).contiguous(",
         "x = images.contiguous(", "CLIP -> ImageNet re-normalisation removed (eval path)"),
    _afr("sp-renorm-shift-sign", "sp.py", "((clip_mean - net_mean) / net_std)", "((net_mean - clip_mean) / net_std)",
         "sign of the re-normalisation shift"),
    _afr("sp-cnn-layer3-zeroed", "sp.py", "f3.mean(dim=(2, 3))], dim=1)", "0 * f3.mean(dim=(2, 3))], dim=1)",
         "a CNN feature zeroed"),
    _afr("sp-pl-init-scale", "sp.py", "torch.randn(num_prompts, width) * 0.02", "torch.randn(num_prompts, width) * 0.2",
         "prompt initialisation scale"),
    _afr("sp-stage-blocks-off-by-one", "sp.py", "range(bounds[s - 1] + 1, bounds[s] + 1)",
         "range(bounds[s - 1] + 1, bounds[s])", "off-by-one in the prompted blocks of a stage"),
    _afr("lr-decay-off-by-one", "lightning_model.py", "lambda epoch: 1.0 / (epoch + 1)",
         "lambda epoch: 1.0 / (epoch + 2)", "off-by-one in the schedule"),
]

FB_SLIPS = [
    _fb("score-mean-patches", "torch_model.py", "pred_score=probs[:, 0, 1]", "pred_score=probs[:, 1:, 1].mean(1)",
        "image-score token"),
    _fb("map-normal-channel", "torch_model.py", "anomaly_map = probs[:, 1:, 1]", "anomaly_map = probs[:, 1:, 0]",
        "normal/abnormal swapped"),
    _fb("sets-last-layer-only", "torch_model.py", "for v, li in zip(projected, set_layer)",
        "for v, li in zip(projected[-3:], set_layer[-3:])", "layer sum -> last layer"),
    _fb("times-temperature", "torch_model.py", "@ text.t()) / self.temperature", "@ text.t()) * self.temperature",
        "temperature multiplied"),
    _fb("scr-first-set", "torch_model.py", "scr_loss(out.sets[-1]", "scr_loss(out.sets[0]", "SCR on the wrong set"),
    _fb("temporal-never", "torch_model.py", "            prev = tokens", "            prev = None",
        "temporal indicator dropped", "the T indicator (weight 0.1) is then 0 for every layer"),
    _fb("bg-prototype-min", "background.py", "0.5 * bank.amax(dim=1)", "0.5 * bank.amin(dim=1)",
        "max -> min"),
    _fb("bg-subtract-sign", "background.py", "(1 - similarity) * (tokens - b)", "(1 - similarity) * (tokens + b)",
        "sign"),
    _fb("bank-half-off-by-one", "background.py", 'return num_tokens // 2 if bank == "half"',
        'return (num_tokens + 1) // 2 if bank == "half"', "off-by-one (1 + L is odd for a square grid)"),
    _fb("bank-score-cls-offset", "background.py", ".indices[:, : rows - 1] + 1", ".indices[:, : rows - 1]",
        "off-by-one (patch index vs token index)"),
    _fb("gate-swapped", "fb_attention.py", "out = self.fg(g * y) + self.bg((1 - g) * y)",
        "out = self.fg((1 - g) * y) + self.bg(g * y)", "swapped pair (fg/bg gate)"),
    _fb("attention-transposed", "fb_attention.py", "F.scaled_dot_product_attention(q * self.scale, k, v",
        "F.scaled_dot_product_attention(k * self.scale, q, v", "attention product transposed"),
    _fb("attn-scale-init", "fb_attention.py", "torch.tensor(head_dim**-0.5)", "torch.tensor(head_dim**0.5)",
        "initialisation scale"),
    _fb("mstff-weights", "mstff.py", 'FUSION_WEIGHTS = {"gp": 1.0, "attn": 0.5, "eot": 0.5}',
        'FUSION_WEIGHTS = {"gp": 0.5, "attn": 0.5, "eot": 1.0}', "fusion weights swapped"),
    _fb("mstff-selector-softmax-dim", "mstff.py", "torch.softmax(self.selector(tokens), dim=1)",
        "torch.softmax(self.selector(tokens), dim=-1)", "wrong softmax dim",
        "the selector's last dim has size 1, so every weight becomes 1: a sum instead of a weighted mean"),
    _fb("scr-no-abs", "scr.py", "(s[:, 1] - s[:, 0]).abs()", "(s[:, 1] - s[:, 0])", "dropped abs in the hinge"),
    _fb("scr-cls-not-mean", "scr.py", "F.normalize(image_tokens.mean(dim=1), dim=-1)",
        "F.normalize(image_tokens[:, 0], dim=-1)", "CLS instead of the token mean"),
    _fb("temporal-off-by-one", "mvfbe.py", "(x - prev_tokens[:, 1:])", "(x - prev_tokens[:, :-1])",
        "off-by-one (CLS offset)"),
    _fb("soft-mask-swapped", "mvfbe.py", "torch.full_like(score, high), torch.full_like(score, low)",
        "torch.full_like(score, low), torch.full_like(score, high)", "swapped pair"),
    _fb("sem-alpha-swapped", "mvfbe.py", "alpha * mixed + (1 - alpha) * x", "(1 - alpha) * mixed + alpha * x",
        "mixing weight swapped"),
    _fb("spa-softmax-dim", "mvfbe.py", "torch.softmax(richness, dim=1)", "torch.softmax(richness, dim=-1)",
        "wrong softmax dim (over columns instead of the window)"),
    _fb("score-smooth-replicate", "mvfbe.py", '(2, 2), mode="reflect")', '(2, 2), mode="replicate")',
        "padding mode", "the two edge samples of the raster sequence are smoothed differently"),
    _fb("dice-weight-dropped", "lightning_model.py", '"dice": hp.dice_weight * dice_loss(up, mask)',
        '"dice": dice_loss(up, mask)', "loss weight dropped"),
    _fb("betas-swapped", "lightning_model.py", "betas=(hp.beta1, hp.beta2)", "betas=(hp.beta2, hp.beta1)",
        "swapped pair of arguments"),
    _fb("ctx-init-scale", "prompt_learner.py",
        "self.ctx_normal = nn.Parameter(torch.empty(n_ctx, width).normal_(std=0.02))",
        "self.ctx_normal = nn.Parameter(torch.empty(n_ctx, width).normal_(std=0.2))", "prompt initialisation scale"),
]

VT_SLIPS = [
    _vt("lr-groups-swapped", "lightning_model.py", 'lrs = {"aie": self.hparams.lr_aie, "other": self.hparams.lr_other}',
        'lrs = {"aie": self.hparams.lr_other, "other": self.hparams.lr_aie}', "the two learning-rate groups swapped"),
    _vt("mv-mean", "torch_model.py", "self.distance, self._prototype_norms).max()",
        "self.distance, self._prototype_norms).mean()", "m_v as mean instead of max",
        "only the no-MPF rows read m_v (use_mpf=False)"),
    _vt("attention-transposed", "mpf.py", "torch.bmm(v, attn.transpose(1, 2))", "torch.bmm(v, attn)",
        "attention product transposed", "gamma starts at 0, so it shows once gamma is non-zero (trained)"),
    _vt("attention-softmax-dim", "mpf.py", "torch.bmm(q.transpose(1, 2), k).softmax(dim=-1)",
        "torch.bmm(q.transpose(1, 2), k).softmax(dim=1)", "wrong softmax dim"),
    _vt("das-combined-never-applied", "das.py", "for name in chosen:", "for name in chosen[:1]:",
        "combined DAS anomalies never applied"),
    _vt("nfc-afs-times-nu", "lightning_model.py", "weighted[name] = terms[name] / self.hparams.nu",
        "weighted[name] = terms[name] * self.hparams.nu", "NFC/AFS multiplied instead of divided by nu"),
    _vt("seg-target-ignores-mix", "torch_model.py",
        "target = synthetic_mask * use_synthetic.view(-1, 1, 1, 1).to(synthetic_mask.dtype)",
        "target = synthetic_mask", "SEG target ignores the clean/synthetic mix"),
    _vt("afs-wrong-half", "torch_model.py", "afs_loss(hinge[batch:]", "afs_loss(hinge[:batch]",
        "AFS on the wrong half of the batch"),
    _vt("nfc-radius-not-squared", "aie.py", "F.relu(distances - r**2).mean()", "F.relu(distances - r).mean()",
        "radius not squared", "r = 1e-5: every distance in (r^2, r) stops counting and the rest shift by ~1e-5"),
    _vt("afs-margin-not-squared", "aie.py", "F.relu((r + alpha) ** 2 - distances)", "F.relu((r + alpha) - distances)",
        "margin not squared"),
    _vt("afs-mean-all-locations", "aie.py", "return (hinge * weight).sum() / count", "return (hinge * weight).mean()",
        "AFS averaged over all locations"),
    _vt("text-map-normal-channel", "ate.py", "logits.softmax(dim=1)[:, 1:2]", "logits.softmax(dim=1)[:, 0:1]",
        "normal/abnormal text swapped"),
    _vt("ate-residual-dropped", "ate.py", "text = text + self.fc2(F.relu(self.fc1(text)))",
        "text = self.fc2(F.relu(self.fc1(text)))", "residual dropped"),
    _vt("ensemble-unnormalised", "ate.py", "F.normalize(F.normalize(embeddings, dim=-1).mean(dim=0), dim=-1)",
        "F.normalize(embeddings.mean(dim=0), dim=-1)", "normalisation dropped before the ensemble mean"),
    _vt("coord-channels-swapped", "aie.py", "torch.stack([grid_x, grid_y])", "torch.stack([grid_y, grid_x])",
        "swapped pair", "the coordinate weights start at 0; a trained adaptor reads x and y swapped"),
    _vt("adaptor-pad-counted", "aie.py", "nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)",
        "nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)", "border average counts pads"),
    _vt("direct-map-unscaled-text", "torch_model.py", "combined = text / len(self.layers)", "combined = text",
        "normalisation dropped (no-MPF rows)"),
    _vt("direct-map-times-scale", "torch_model.py", "vision[:, :1] / self.vision_scale",
        "vision[:, :1] * self.vision_scale", "multiplied instead of divided"),
    _vt("score-mean-not-max", "torch_model.py", "pred_score=final.flatten(1).amax(dim=1)",
        "pred_score=final.flatten(1).mean(dim=1)", "image score reduction"),
    _vt("seg-merge-swapped", "mpf.py", "torch.cat([y, previous], dim=1)", "torch.cat([previous, y], dim=1)",
        "swapped pair"),
    _vt("fusion-skip-dropped", "mpf.py", "F.relu(self.body(x) + self.skip(x))", "F.relu(self.body(x))",
        "residual dropped"),
    _vt("ate-detached", "torch_model.py",
        "text = text_guided_map(feats, self.text_features(), self.logit_scale)\n        pick",
        "text = text_guided_map(feats, self.text_features().detach(), self.logit_scale)\n        pick",
        "detach added", "the training loss no longer reaches ATE: its adapter never trains"),
]

CLIP_SLIPS = [
    _clip("score-mean-patches", "torch_model.py", "return self.backbone.project(taps[-1][:, 0])",
          "return self.backbone.project(taps[-1][:, 1:].mean(1))", "image-score token"),
    _clip("map-last-stage", "torch_model.py", "anomaly_map = torch.stack(maps).mean(0).reshape(-1, gh, gw)",
          "anomaly_map = maps[-1].reshape(-1, gh, gw)", "stage mean -> last stage"),
    _clip("states-swapped", "torch_model.py", "for states in (NORMAL_STATES, ABNORMAL_STATES):",
          "for states in (ABNORMAL_STATES, NORMAL_STATES):", "normal/abnormal text swapped"),
    _clip("stage-layers-off-by-one", "torch_model.py", "round(depth * (s + 1) / num_stages)",
          "round(depth * (s + 1) / (num_stages + 1))", "off-by-one in a stage list"),
    _clip("kshot-farthest", "torch_model.py", ".amin(-1) / 2 for b, key", ".amax(-1) / 2 for b, key",
          "nearest -> farthest reference"),
    _clip("kshot-score-mean", "torch_model.py", "score = (score + few.flatten(1).amax(1)) / 2",
          "score = (score + few.flatten(1).mean(1)) / 2", "max -> mean"),
    _clip("times-temperature", "torch_model.py", 'torch.einsum("bld,bcd->blc", patches, text) / self.temperature',
          'torch.einsum("bld,bcd->blc", patches, text) * self.temperature', "temperature multiplied"),
    _clip("memory-unnormalised", "torch_model.py", "F.normalize(t[:, 1:].reshape(-1, t.shape[-1]), dim=-1)",
          "t[:, 1:].reshape(-1, t.shape[-1])", "normalisation dropped (the distance is no longer a cosine)"),
]

LIN_SLIPS = [
    _lin("dice-normal-target", "losses.py", "dice_loss(q[:, 0], 1 - target)", "dice_loss(q[:, 0], target)",
         "loss term: dice on the normal channel"),
    _lin("softmax-dim", "losses.py", "return grid.softmax(dim=1)", "return grid.softmax(dim=-1)", "wrong softmax dim"),
    _lin("align-corners", "losses.py", 'mode="bilinear", align_corners=True)', 'mode="bilinear", align_corners=False)',
         "interpolation convention"),
    _lin("logit-scale-dropped", "torch_model.py", "logits.append(self.logit_scale * torch.bmm(v, text))",
         "logits.append(torch.bmm(v, text))", "scale dropped"),
    _lin("taps-last-only", "torch_model.py",
         "probs = torch.stack([lg.softmax(dim=-1)[..., 1] for lg in logits]).mean(0)",
         "probs = logits[-1].softmax(dim=-1)[..., 1]", "stage mean -> last stage"),
    _lin("text-swapped", "torch_model.py", "for sentences in state_prompts(noun):",
         "for sentences in reversed(state_prompts(noun)):", "normal/abnormal text swapped"),
    _lin("taps-reversed", "torch_model.py", "zip(self.linears, taps)", "zip(self.linears, reversed(taps))",
         "stage adapters paired in reverse"),
    _lin("cls-kept", "torch_model.py", "linear(tokens[:, 1:].float())", "linear(tokens[:, :-1].float())",
         "off-by-one (CLS kept, last patch dropped)"),
    _lin("betas-default", "lightning_model.py", "betas: list[float] = (0.5, 0.999),",
         "betas: list[float] = (0.9, 0.999),", "wrong default in a constructor"),
]

CONFIG_SLIPS = [
    _config("cfg-afr-sp-stages", "methods/afr.yaml", "sp_stages: [1]", "sp_stages: [1, 2]", "paper config", AFR),
    _config("cfg-afr-lr-decay", "methods/afr.yaml", "lr_decay: inverse_epoch", "lr_decay: none", "paper config", AFR),
    _config("cfg-afr-mpfa", "methods/afr.yaml", "mpfa_kernel: 3", "mpfa_kernel: 5", "paper config", AFR),
    _config("cfg-fb-focal-gamma", "methods/fb.yaml", "focal_gamma: 4.0", "focal_gamma: 2.0", "paper config", FB),
    _config("cfg-fb-layers", "methods/fb.yaml", "layers: [1, 6, 12, 18, 24]", "layers: [6, 12, 18, 24]",
            "paper config", FB),
    _config("cfg-vt-lr-aie", "methods/vtfusion.yaml", "lr_aie: 1.0e-3", "lr_aie: 1.0e-4", "paper config", VT),
    _config("cfg-vt-lambda", "methods/vtfusion.yaml", "lambda_seg: 40.0", "lambda_seg: 4.0", "YAML weight", VT),
    _config("cfg-vt-combined", "methods/vtfusion.yaml", "combined_prob: 0.25", "combined_prob: 0.5", "paper config",
            VT),
    _config("cfg-clip-stages", "methods/clip.yaml", "num_stages: 4", "num_stages: 3", "paper config", CLIP),
    _config("cfg-lin-betas", "methods/linear.yaml", "betas: [0.5, 0.999]", "betas: [0.9, 0.999]", "paper config",
            LIN),
    _config("abl-afr-cmfr-row", "ablations/afr/components.yaml",
            "overrides: {model.init_args.use_sp: false, model.init_args.mpfa_kernel: 1}",
            "overrides: {model.init_args.use_cmfr: false, model.init_args.mpfa_kernel: 1}",
            "ablation row overrides the wrong switch", AFR),
    _config("abl-afr-m5", "ablations/afr/mpfa_m.yaml", "mpfa_kernel: 5}", "mpfa_kernel: 3}",
            "ablation row value", AFR),
    _config("abl-afr-stages13", "ablations/afr/sp_stages.yaml", "sp_stages: [1, 2, 3]}", "sp_stages: [1, 3]}",
            "ablation row value", AFR),
    _config("abl-afr-pv-row", "ablations/afr/sp_prompts.yaml",
            "overrides: {model.init_args.sp_use_pv: true, model.init_args.sp_use_pl: false}",
            "overrides: {model.init_args.sp_use_pv: false, model.init_args.sp_use_pl: true}",
            "ablation row overrides the wrong switch", AFR),
    _config("abl-fb-mvfbe-row", "ablations/fb/incremental.yaml",
            "overrides: {model.init_args.background_subtraction: false}",
            "overrides: {model.init_args.fb_attention: false}", "ablation row overrides the wrong switch", FB),
    _config("abl-fb-bank-l", "ablations/fb/bg_tokens.yaml", "overrides: {model.init_args.bg_bank: full}",
            "overrides: {model.init_args.bg_candidates: score}", "ablation row overrides the wrong switch", FB),
    _config("abl-fb-eot-attn", "ablations/fb/text_strategies.yaml", "text_strategies: [eot, attn]",
            "text_strategies: [eot, gp]", "ablation row value", FB),
    _config("abl-vt-ate-k8", "ablations/vtfusion/modules.yaml",
            "overrides: {data.init_args.k_shot: 8, model.init_args.use_aie: false, model.init_args.use_mpf: false}",
            "overrides: {data.init_args.k_shot: 8, model.init_args.use_ate: false, model.init_args.use_mpf: false}",
            "ablation row overrides the wrong switch", VT),
    _config("abl-vt-crack", "ablations/vtfusion/das_types.yaml", "types: [crack]}", "types: [noise]}",
            "ablation row value", VT),
    _config("abl-clip-stages2", "ablations/clip/layers.yaml", "overrides: {model.init_args.num_stages: 2}",
            "overrides: {model.init_args.num_stages: 3}", "ablation row value", CLIP),
]

CATALOGUE: list[Slip] = [*AFR_SLIPS, *FB_SLIPS, *VT_SLIPS, *CLIP_SLIPS, *LIN_SLIPS, *CONFIG_SLIPS]

if __name__ == "__main__":
    from tests.mutation.slip_runner import main

    raise SystemExit(main())
