"""``make mutate [PKG=metrics,backbone,...]``: run mutmut on one package at a time and report scores.

Each package is staged in ``.mutate/<package>/`` (a copy of the code and tests with a mutmut
configuration of its own), so the working tree never holds mutants and every package keeps its
own cache: a rerun only re-tests what changed. Scores and surviving mutants are written to
``runs/mutation/<package>.json`` and printed as one table.

Score = killed / (killed + survived + no tests + suspicious), timeouts counted as killed (a mutant
that makes a test hang is caught by the suite's time limit too).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.mutation import sample as sampled
from tests.mutation.packages import PACKAGES, Package

REPO = Path(__file__).resolve().parents[2]
COPIED = ("src", "datamodules", "experiments", "tests", "pyproject.toml")


def _toml_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def stage(package: Package, root: Path) -> Path:
    """Copy the tree into ``root/<package>`` with a mutmut section for ``package``; returns that folder."""
    where = root / package.name
    where.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = REPO / name, where / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mutate", "runs"))
        else:
            shutil.copy2(source, target)
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f"only_mutate = {_toml_list(package.files)}\n"
        f"do_not_mutate = {_toml_list(package.skip)}\n"
        'also_copy = ["datamodules/", "experiments/"]\n'
        f"pytest_add_cli_args_test_selection = {_toml_list(package.pytest_args())}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
        'process_isolation = "forkserver"\n'
    )
    with (where / "pyproject.toml").open("a") as handle:
        handle.write(config)
    return where


def _environment() -> dict[str, str]:
    env = dict(os.environ, ADSUITE_MUTATE="1", WANDB_MODE="offline", WANDB_SILENT="true")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests" / "mutation"), env.get("PYTHONPATH")]))
    return env


def run_package(package: Package, root: Path, children: int, sample: str | None = None) -> dict:
    """Run mutmut for one package (or the sample of ``sample``'s last digits); its counts, score, survivors."""
    where = stage(package, root)
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.time()
    names: list[str] = []
    if sample is not None:  # the sample's pending mutants by name, or its pattern before the first run
        known = sampled.sampled_status(where / "mutants", sample)
        names = [n for n, s in known.items() if s in sampled.PENDING] if known else [sampled.pattern(sample)]
    if sample is None or names:
        run = subprocess.run([*mutmut, "run", "--max-children", str(children), *names], cwd=where,
                             env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            raise SystemExit(f"mutate: mutmut failed on {package.name} (exit {run.returncode}): "
                             f"{run.stderr.strip().splitlines()[-1:] or ['no message']}")
    if sample is not None:
        status = sampled.sampled_status(where / "mutants", sample)
        survivors = sorted(n for n, s in status.items() if s in ("survived", "no tests", "suspicious"))
        result = summarise(package.name, sampled.counts(status), survivors, time.time() - started)
        return {**result, "sample": f"mutant numbers ending in {', '.join(sample)}"}
    subprocess.run([*mutmut, "export-cicd-stats"], cwd=where, env=_environment(), check=True,
                   stdout=subprocess.DEVNULL)
    stats = json.loads((where / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = subprocess.run([*mutmut, "results"], cwd=where, env=_environment(), check=True,
                             capture_output=True, text=True).stdout
    survivors = sorted(line.split(":")[0].strip() for line in listing.splitlines() if line.strip().endswith(
        ("survived", "no tests", "suspicious")))
    return summarise(package.name, stats, survivors, time.time() - started)


def summarise(name: str, stats: dict, survivors: list[str], seconds: float) -> dict:
    """The score of one package from mutmut's counts."""
    caught = stats["killed"] + stats["timeout"]
    judged = caught + stats["survived"] + stats["no_tests"] + stats["suspicious"]
    return {"package": name, "killed": stats["killed"], "timeout": stats["timeout"], "survived": stats["survived"],
            "no_tests": stats["no_tests"], "suspicious": stats["suspicious"], "skipped": stats["skipped"],
            "total": stats["total"], "judged": judged, "score": round(100.0 * caught / judged, 1) if judged else None,
            "seconds": round(seconds, 1), "survivors": survivors}


def table(results: list[dict]) -> str:
    lines = ["| package | mutants | judged | killed | survived | no tests | score | minutes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        score = "n/a" if r["score"] is None else f"{r['score']:.1f}%"
        lines.append(f"| {r['package']} | {r['total']} | {r['judged']} | {r['killed'] + r['timeout']} | "
                     f"{r['survived']} | {r['no_tests']} | {score} | {r['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutate", allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="metrics,backbone",
                        help=f"comma-separated, from: {', '.join(PACKAGES)} (or 'all')")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--stage", type=Path, default=REPO / ".mutate", help="where packages are staged")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "mutation", help="where results are written")
    parser.add_argument("--sample", default=None,
                        help="judge only mutants whose number ends in these digits (37: one in five)")
    args = parser.parse_args(argv)
    if args.sample is not None:
        try:
            args.sample = sampled.parse_digits(args.sample)
        except ValueError as error:
            parser.error(str(error))
    names = list(PACKAGES) if args.packages == "all" else [n.strip() for n in args.packages.split(",") if n.strip()]
    unknown = [n for n in names if n not in PACKAGES]
    if unknown:
        parser.error(f"unknown package(s) {', '.join(unknown)}; valid: {', '.join(PACKAGES)}, all")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        print(f"mutate: {name} ...", flush=True)
        result = run_package(PACKAGES[name], args.stage, args.children, args.sample)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"mutate: {name}: score {result['score']}% ({result['total']} mutants, "
              f"{result['survived']} survived) in {result['seconds']:.0f} s", flush=True)
        results.append(result)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
