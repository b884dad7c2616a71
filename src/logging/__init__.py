"""Results logging: W&B tables and anomaly-map figures (``WandbResults``), offline-run reader.

``src.logging.callback.WandbResults`` goes in the trainer callbacks after the metrics callback;
``src.logging.offline.read_offline_run`` reads an offline W&B run back (tests, tables).
"""

from src.logging.callback import WandbResults, per_category_rows
from src.logging.offline import OfflineRun, find_offline_runs, read_offline_run

__all__ = ["OfflineRun", "WandbResults", "find_offline_runs", "per_category_rows", "read_offline_run"]
