"""The shortened rehearsal inside ``make test``: FB-CLIP VisA -> MVTec and one ablation row, end to end.

It runs the real ``make`` commands of the runbook on stand-ins with the width-64 twin backbone,
one training step, one test batch, batch size 1 (the full form is ``make rehearse``).
"""

from __future__ import annotations

import json

import pytest
import yaml

from src.rehearse.__main__ import main

SHORT = "fb-visa-to-mvtec,ablate-fb-text_strategies"
SMALL_BATCH = "--data.init_args.batch_size=1 --data.init_args.eval_batch_size=1"


@pytest.mark.slow
def test_short_rehearsal_runs_the_paper_path(tmp_path, capsys):
    workdir = tmp_path / "rehearsal"
    code = main(["--only", SHORT, "--workdir", str(workdir), "--standins", str(tmp_path / "standins"),
                 "--extra-args", SMALL_BATCH])
    out = capsys.readouterr().out
    logs = "\n".join(p.read_text()[-3000:] for p in sorted((workdir / "logs").glob("*.log")))
    assert code == 0, out + logs
    assert "2 ok, 0 failed; total wall time" in out
    runs = sorted(p for p in (workdir / "runs").iterdir() if (p / "metrics.json").is_file())
    assert len(runs) == 2
    for run in runs:
        meta = json.loads((run / "metrics.json").read_text())["meta"]
        assert (meta["backbone"], meta["shrunk_from"], meta["random_init"]) == (
            "rehearse-L-14-336-quickgelu", "ViT-L-14-336-quickgelu", True)
        config = yaml.safe_load((run / "config.yaml").read_text())
        # the VisA-trained direction's preset and pairing, resolved as for a real run
        assert config["trainer"]["max_epochs"] == 3 and config["data"]["init_args"]["aux_dataset"] == "visa"
        assert config["model"]["init_args"]["image_size"] == 518 and config["model"]["init_args"]["layers"] == [
            1, 6, 12, 18, 24]
        assert config["trainer"]["max_steps"] == 1 and config["trainer"]["limit_test_batches"] == 1
    row_run = next(r for r in runs if json.loads((r / "metrics.json").read_text())["meta"]["ablation"]["row"])
    assert json.loads((row_run / "metrics.json").read_text())["meta"]["ablation"] == {
        "table": "text_strategies", "row": "eot"}
    assert (workdir / "runs" / "tables" / "fb-text_strategies.md").is_file()
