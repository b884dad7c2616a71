"""``make rehearse``: every command of the paper runbook, end to end, on stand-in data, on a CPU.

    python -m src.rehearse [--only NAME[,NAME...]] [--workdir DIR] [--standins DIR] [--list]
    python -m src.rehearse --write-doc      # regenerate the command table of docs/reproduce.md

Ends with one table (command, status, seconds) and the total wall time; exits 1 when any
command failed. Logs of each command: ``<workdir>/logs/<name>.log``; runs: ``<workdir>/runs``.
"""

from __future__ import annotations

import argparse
import fnmatch
import shlex
import sys
import time
from pathlib import Path

from datamodules.standins import StandinError, generate
from src.rehearse.plan import DOC, REPO, Entry, RunbookError, doc_with_table, load_runbook
from src.rehearse.runner import Outcome, check_entry, run_entry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make rehearse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma-separated entry names or patterns (fb-*, ablate-afr-*)")
    parser.add_argument("--workdir", default=None, help="folder of this rehearsal (default runs/rehearse/<time>)")
    parser.add_argument("--standins", default=str(REPO / "runs" / "rehearse" / "standins"),
                        help="folder of the stand-in datasets (made on first use, reused after)")
    parser.add_argument("--extra-args", default="",
                        help="LightningCLI overrides added to every command (reported), e.g. a smaller batch")
    parser.add_argument("--list", action="store_true", help="print the entries and exit")
    parser.add_argument("--check-only", action="store_true",
                        help="resolve and type-check every entry's config(s) without running anything")
    parser.add_argument("--write-doc", action="store_true", help=f"rewrite the command table of {DOC.name}")
    return parser.parse_args(argv)


def select(entries: list[Entry], only: str | None) -> list[Entry]:
    """Entries whose name matches one of the comma-separated patterns (all when None)."""
    if not only:
        return entries
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [e for e in entries if any(fnmatch.fnmatchcase(e.name, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(e.name, p) for e in entries)]
    if unmatched:
        raise RunbookError(f"ONLY={only}: {unmatched} match no entry; valid: {', '.join(e.name for e in entries)}")
    return chosen


def report(outcomes: list[Outcome], wall: float) -> str:
    """The closing table: one line per command with status and seconds, then the total."""
    width = max([len(o.name) for o in outcomes] + [7])
    lines = [f"{'command':<{width}}  {'status':<6}  {'seconds':>8}  {'cpu s':>8}  note", "-" * (width + 40)]
    for o in outcomes:
        lines.append(f"{o.name:<{width}}  {o.status:<6}  {o.seconds:8.1f}  {o.cpu_seconds:8.1f}  {o.note}")
    failed = sum(o.status != "ok" for o in outcomes)
    cpu = sum(o.cpu_seconds for o in outcomes)
    lines.append(f"{len(outcomes) - failed} ok, {failed} failed; total wall time {wall:.1f} s ({wall / 60:.1f} min), "
                 f"CPU time of the commands {cpu:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    try:
        entries = load_runbook()
        if args.write_doc:
            DOC.write_text(doc_with_table(DOC.read_text(), entries))
            print(f"{DOC} rewritten from the runbook ({len(entries)} entries)")
            return 0
        chosen = select(entries, args.only)
        if args.list:
            print("\n".join(f"{e.name:<28} {e.command}" for e in chosen))
            return 0
        standins = Path(args.standins)
        for name in dict.fromkeys(d for e in chosen for d in e.datasets):
            generate(name, standins / name)
    except (RunbookError, StandinError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or REPO / "runs" / "rehearse" / time.strftime("%Y%m%d-%H%M%S"))
    print(f"rehearsing {len(chosen)} command(s) on stand-ins in {standins}; logs in {workdir / 'logs'}", flush=True)
    outcomes = []
    for entry in chosen:
        print(f"--- {entry.name}: {entry.command}", flush=True)
        if args.check_only:
            outcome = check_entry(entry, standins)
        else:
            outcome = run_entry(entry, standins, workdir, shlex.split(args.extra_args))
        print(f"    {outcome.status} in {outcome.seconds:.1f} s  {outcome.note}", flush=True)
        outcomes.append(outcome)
    print()
    print(report(outcomes, time.time() - started))
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
