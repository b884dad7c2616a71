"""The benchmark runs end to end at a tiny size and reports the agreed JSON fields."""

import json

from src.metrics import bench


def test_bench_small(capsys):
    bench.main(["--images", "30", "--size", "28", "--num-bins", "4096"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in ("wall_s", "peak_rss_gib", "images", "size", "make_maps_s", "smoothing_s"):
        assert key in summary
    assert summary["size"] == 28 and summary["images"] >= 30
    assert lines[0].split()[:2] == ["category", "image_auroc"]
    assert any(line.startswith("mean") for line in lines)


def test_plan_has_mvtec_counts():
    rows = bench.plan(1725)
    assert len(rows) == 1725
    assert sum(label for _, label, _ in rows) == 1258
    assert len({(c, d) for c, label, d in rows if label}) == 73  # defect types
