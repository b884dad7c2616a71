"""Paper tables: ablation grids, the methods side by side, published numbers beside ours.

    python -m src.tables ablate --method <m> --table <table> [--profile quick] [--seeds 0,1,2] [-- overrides]
        [--jobs 2 --gpus 0,1] [--launcher slurm --partition gpu --gpus-per-job 1 --time 240]
    python -m src.tables table [--method <m>] [--table <table>]
    python -m src.tables dashboard [--method <m>] [--table <table>]
    python -m src.tables compare [--profile quick] [--protocol zero-shot|k-shot] [--k 2] [--data mvtec,visa]

Modules: ``spec`` (ablation YAMLs, reference CSVs, protocol YAMLs), ``records`` (finished runs),
``build`` (table layout), ``launch`` (running rows, writing and logging tables), ``parallel`` (rows
side by side on one machine, progress), ``cluster`` (rows as submitit/SLURM jobs), ``report`` (the
W&B report of a table).
"""

from src.tables.build import Table, ablation_table, compare_table
from src.tables.launch import ablate, compare, rebuild
from src.tables.spec import AblationSpec, SpecError, load_ablation, load_reference

__all__ = ["AblationSpec", "SpecError", "Table", "ablate", "ablation_table", "compare", "compare_table",
           "load_ablation", "load_reference", "rebuild"]
