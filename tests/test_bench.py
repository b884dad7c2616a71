"""Smoke tests of ``python -m src.bench`` on the tiny test ViT (the real rows take minutes each)."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch

from src.backbone import CLIPBackbone
from src.bench.__main__ import main, parse_args
from src.bench.flops import flop_counter
from src.bench.measure import Options, measure_inference
from src.bench.pairs import _stderr, paired_timing
from src.bench.report import compare
from src.bench.rows import QUICK, parse_row


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_backbone_flops_include_attention():
    """On CPU eval attention runs in fused kernels the stock counter ignores; ours must count them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone = CLIPBackbone("tiny-vit", "none", image_size=64)
    n, c, patches = 1 + 8 * 8, 64, 8 * 8
    per_block = 2 * n * 12 * c * c + 2 * 2 * n * n * c  # QKV + out + 4x MLP, then Q K^T and A V
    expected = 2 * patches * (3 * 8 * 8) * c + 4 * per_block
    with torch.inference_mode(), flop_counter() as counter:
        backbone.encode_image_layers(torch.randn(1, 3, 64, 64), [2, 4])
    assert counter.get_total_flops() == expected


def test_sdpa_flops_counted_on_cpu():
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 12, 8), torch.randn(2, 4, 12, 16)
    with torch.inference_mode(), flop_counter() as counter:
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 2 * 2 * 4 * 10 * 12 * 8 + 2 * 2 * 4 * 10 * 12 * 16


def test_measure_inference_row_and_sweep():
    opts = Options(runs=2, batches=(1, 2), time_cap_s=60.0)
    result = measure_inference(QUICK["vtfusion"], backbone_only=True, opts=opts)
    assert result["ms_per_image"] > 0 and len(result["ms_runs"]) == 1  # backbone rows: one reference forward
    assert result["gflops"] > 0 and result["peak_rss_gib"] > 0 and result["rss_after_build_gib"] > 0
    assert {r["batch"] for r in result["sweep"] if "ms_per_image" in r} == {1, 2}
    assert result["best_batch"] in (1, 2)


def test_paired_timing_ratio_and_spread():
    """A method forward twice as slow as its backbone gives a ratio near 2 from alternating pairs."""
    calls = []

    def method(x):
        calls.append("m")
        time.sleep(0.04)

    def backbone(x):
        calls.append("b")
        time.sleep(0.02)

    opts = Options(runs=4, min_time_s=0.0, max_time_s=0.0)
    out = paired_timing(method, backbone, torch.zeros(1), opts, torch.device("cpu"))
    assert out["pairs"] == 4 and len(out["method_s"]) == 4
    assert calls[2:] == ["m", "b", "b", "m", "m", "b", "b", "m"]  # after 2 backbone warm-ups: order alternates
    assert 1.5 < out["paired_ratio"] < 2.3
    assert out["paired_ratio_min"] <= out["paired_ratio"] <= out["paired_ratio_max"]
    spread = (out["paired_ratio_max"] - out["paired_ratio_min"]) / out["paired_ratio"]
    assert out["paired_ratio_spread"] == pytest.approx(spread)


def test_ratio_error_is_robust_to_one_outlier():
    assert _stderr([1.0, 1.1, 0.9, 1.05, 0.95]) == pytest.approx(1.253 * 1.4826 * 0.05 / 5**0.5)
    assert _stderr([1.0, 1.0, 1.0, 1.0, 100.0]) == 0.0  # one forward hit by a load burst
    assert _stderr([1.0]) is None


def test_compare_uses_the_paired_ratio():
    base = {"ms_per_image": 100.0, "gflops": 10.0, "best_batch": 1, "best_ms_per_image": 100.0,
            "peak_rss_gib": 2.0}
    row = {**base, "ms_per_image": 150.0, "gflops": 12.0, "paired_ratio": 1.25, "paired_backbone_ms": 120.0}
    out = compare("afr", QUICK["afr"], row, base)
    assert out["ratio_vs_backbone"] == 1.25 and out["backbone_ms_per_image"] == 120.0
    assert out["standalone_backbone_ms"] == 100.0 and out["targets"]["time<=1.3x"]


def test_compare_checks_targets():
    base = {"ms_per_image": 100.0, "gflops": 10.0, "best_batch": 1, "best_ms_per_image": 100.0,
            "peak_rss_gib": 2.0}
    slow = {**base, "ms_per_image": 140.0, "gflops": 12.0, "peak_rss_gib": 2.2}
    row = compare("afr", QUICK["afr"], slow, base)
    assert row["ratio_vs_backbone"] == pytest.approx(1.4)
    assert row["targets"] == {"time<=1.3x": False, "time<=1.1x flops": False, "rss<=1.3x": True}


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="valid"):
        parse_row("afr-head")
    with pytest.raises(SystemExit):
        parse_args(["--runs", "0"])


@pytest.mark.slow
def test_end_to_end_quick(tmp_path, capsys):
    """Two subprocess rows, the table, CSV/Markdown files, and the JSON summary as the last line."""
    main(["--quick", "--methods", "afr", "--no-train", "--runs", "1", "--batches", "1", "--threads", "1",
          "--out", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    (row,) = summary["rows"]
    assert row["method"] == "afr" and row["backbone"] == "tiny-vit" and row["image_size"] == 64
    assert 0 < row["ratio_vs_backbone"] and row["backbone_ms_per_image"] > 0
    text = (tmp_path / "latest.md").read_text()
    assert text.count("| AFR-CLIP |") == 1 and "| afr | 1 |" in text  # one timing pair at --runs 1
    assert "training rows not run" in text
    assert len(list(tmp_path.glob("bench-*.csv"))) == 1
