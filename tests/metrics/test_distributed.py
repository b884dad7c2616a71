"""Two gloo processes on CPU give the same metrics as one, with DistributedSampler-style padding."""

import json
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from src.metrics.accumulator import AnomalyMetrics
from src.metrics.io import metrics_json
from tests.metrics.scenarios import make_category

pytestmark = pytest.mark.ddp

WORLD = 2
VARIANTS = ("exact", "anomalyclip")


def _dataset():
    """Two categories, concatenated like an evaluation set; ``index`` is the position in it."""
    parts = [make_category("many_small", seed=11, n_images=7), make_category("bimodal_negative", seed=12, n_images=6)]
    names = np.array(["alpha"] * 7 + ["beta"] * 6)
    maps, masks, scores, labels, defects = (np.concatenate(x) for x in zip(*parts))
    return maps, masks, scores, labels, defects, names


def _evaluate(positions, spill_dir, variant):
    maps, masks, scores, labels, defects, names = _dataset()
    acc = AnomalyMetrics(aupro_variant=variant, num_bins=2**16, spill_dir=spill_dir)
    for s in range(0, len(positions), 3):
        i = np.asarray(positions[s : s + 3])
        acc.update(
            torch.from_numpy(maps[i]), torch.from_numpy(scores[i]), torch.from_numpy(masks[i]).float()[:, None],
            torch.from_numpy(labels[i]), list(names[i]), list(defects[i]), torch.from_numpy(i),
        )
    result = acc.compute()
    result["meta"].pop("wall_s")
    return metrics_json(result)


def _worker(rank, port, spill_dir, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        n = len(_dataset()[2])
        # DistributedSampler(shuffle=False): pad to a multiple of WORLD by repeating the first samples,
        # then rank r takes positions r, r + WORLD, ...
        padded = list(range(n)) + list(range(-n % WORLD))
        for variant in VARIANTS:
            text = _evaluate(padded[rank::WORLD], f"{spill_dir}/rank{rank}", variant)
            with open(f"{out_dir}/{variant}-rank{rank}.json", "w") as f:
                f.write(text)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    n = len(_dataset()[2])
    assert n % WORLD == 1  # the padding duplicates a sample
    mp.spawn(_worker, args=(_free_port(), str(tmp_path / "spill"), str(tmp_path)), nprocs=WORLD)
    for variant in VARIANTS:
        single = json.loads(_evaluate(list(range(n)), str(tmp_path / "spill"), variant))
        for rank in range(WORLD):
            assert json.loads((tmp_path / f"{variant}-rank{rank}.json").read_text()) == single, (variant, rank)
        assert single["meta"]["n_images"] == n
    assert not any((tmp_path / "spill").rglob("*.maps"))  # every rank removed its spill files
