"""Where benchmark state lives (MLflow + Optuna stores) and a thin MLflow client wrapper.

``storage_uri`` rules:

* a directory (the default, ``iterate_storage``) → MLflow ``sqlite:///<dir>/mlflow.db`` with
  artifacts under ``<dir>/artifacts``, Optuna ``sqlite:///<dir>/optuna.db``;
* ``sqlite:///path/file.db`` → MLflow in that file, Optuna in ``file_optuna.db`` next to it
  (both use alembic, so they cannot share one database);
* ``postgresql://...`` / ``http(s)://...`` → MLflow as given; Optuna in ``optuna_storage`` if set,
  else ``./iterate_storage/optuna.db``.

MLflow's flat-file store is never used. Runs nest through the ``mlflow.parentRunId`` tag (what
``mlflow.start_run(nested=True)`` writes), and all state is keyed by run ids. This module imports
mlflow only inside functions, so validation and ``--help`` stay cheap.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "Phase",
    "RunLevel",
    "RunStatus",
    "StorageLocation",
    "Tracker",
    "check_storage",
    "flatten",
    "phase_tag",
    "resolve_storage",
]

# -- tag names (the MLflow layout the report and the docs rely on) --------------------------------------
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
LEVEL_TAG = "terratorch.level"
STATE_TAG = "terratorch.state"  # benchmark run: running | partial | complete
CONFIG_HASH_TAG = "terratorch.config_hash"
BACKBONE_TAG = "terratorch.backbone"
MASTER_SEED_TAG = "terratorch.master_seed"
PHASE_TAG_PREFIX = "terratorch.phase."  # benchmark run: terratorch.phase.<phase> = complete
TASK_TAG = "terratorch.task"
TASK_TYPE_TAG = "terratorch.task_type"
METRIC_TAG = "terratorch.metric"
DIRECTION_TAG = "terratorch.direction"
STUDY_NAME_TAG = "terratorch.study_name"
STATUS_TAG = "terratorch.status"
ERROR_TAG = "terratorch.error"
FAILURE_TAG = "terratorch.failure"  # "interrupted": the process running it died
SEED_TAG = "terratorch.seed"
TRIAL_NUMBER_TAG = "terratorch.trial_number"  # Optuna's trial number
TRIAL_INDEX_TAG = "terratorch.trial_index"  # the trial's index: a re-run keeps the interrupted one's
RETRY_OF_TAG = "terratorch.retry_of"
REPEAT_INDEX_TAG = "terratorch.repeat_index"
SCORE_METRIC_TAG = "terratorch.score_metric"
BEST_TRIAL_RUN_ID_TAG = "terratorch.best_trial_run_id"
N_COMPLETE_TAG = "terratorch.n_complete"
N_FAILED_TAG = "terratorch.n_failed"
N_PRUNED_TAG = "terratorch.n_pruned"
PARAM_TAG_PREFIX = "terratorch.param."  # a param whose value changed after it was logged
_PARAM_LIMIT = 6000
_BATCH = 100


class RunLevel:
    """Values of the ``terratorch.level`` tag."""

    BENCHMARK = "benchmark"
    TASK = "task"
    TRIAL = "trial"
    REPEAT = "repeat"


class RunStatus:
    """Values of the ``terratorch.status`` tag (MLflow's own status says whether the run is open)."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    PRUNED = "pruned"
    INTERRUPTED = "interrupted"  # value of ``terratorch.failure`` for runs of killed processes


class Phase:
    """Phases of a benchmark run whose completion is recorded as ``terratorch.phase.<phase>`` tags."""

    HPO = "hpo"
    REPEATS = "repeats"
    REPORT = "report"
    COMPLETE = "complete"


def phase_tag(phase: str) -> str:
    """The benchmark-run tag recording that ``phase`` is complete."""
    return PHASE_TAG_PREFIX + phase


@dataclass(frozen=True)
class StorageLocation:
    """Resolved stores of a benchmark.

    Attributes:
        tracking_uri: MLflow tracking URI.
        artifact_location: Artifact root for new experiments (``None``: the server decides).
        optuna_url: SQLAlchemy URL of the Optuna study storage.
        local_dir: Directory for local files (CSV copies, reports), when the storage is local.
    """

    tracking_uri: str
    artifact_location: str | None
    optuna_url: str
    local_dir: Path | None


def _is_uri(text: str) -> bool:
    return "://" in text


def resolve_storage(storage_uri: str, optuna_storage: str | None = None) -> StorageLocation:
    """Map ``storage_uri`` to MLflow and Optuna stores (pure: creates nothing)."""
    if not _is_uri(storage_uri):
        folder = Path(storage_uri).expanduser().resolve()
        return StorageLocation(
            tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
            artifact_location=(folder / "artifacts").as_uri(),
            optuna_url=optuna_storage or f"sqlite:///{folder / 'optuna.db'}",
            local_dir=folder,
        )
    scheme = urlparse(storage_uri).scheme
    if scheme == "sqlite":
        db = Path(storage_uri.removeprefix("sqlite:///")).expanduser().resolve()
        return StorageLocation(
            tracking_uri=storage_uri,
            artifact_location=(db.parent / "artifacts").as_uri(),
            optuna_url=optuna_storage or f"sqlite:///{db.with_name(db.stem + '_optuna.db')}",
            local_dir=db.parent,
        )
    local = Path("iterate_storage").resolve()
    return StorageLocation(
        tracking_uri=storage_uri,
        artifact_location=None,
        optuna_url=optuna_storage or f"sqlite:///{local / 'optuna.db'}",
        local_dir=local,
    )


def check_storage(storage_uri: str, timeout: float = 3.0) -> list[str]:
    """Problems that would stop the stores from working (empty list: reachable). Writes nothing."""
    if not _is_uri(storage_uri):
        return _check_local_dir(Path(storage_uri).expanduser().resolve())
    parsed = urlparse(storage_uri)
    if parsed.scheme == "sqlite":
        db = Path(storage_uri.removeprefix("sqlite:///")).expanduser().resolve()
        if not db.parent.is_dir():
            return [
                f"the folder of SQLite database {db} does not exist; create it or use a storage directory"
            ]
        return [] if os.access(db.parent, os.W_OK) else [f"folder {db.parent} is not writable"]
    if parsed.scheme in ("http", "https"):
        return _check_socket(
            storage_uri, parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80), timeout
        )
    if parsed.scheme.startswith("postgresql"):
        return _check_database(storage_uri, timeout)
    return [
        f"unsupported storage_uri scheme {parsed.scheme!r} in {storage_uri!r}; use a directory, sqlite:///, "
        "postgresql:// or http(s)://"
    ]


def _check_local_dir(folder: Path) -> list[str]:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return [f"storage path {folder} is inside {existing}, which is a file, not a directory"]
    if not os.access(existing, os.W_OK):
        return [f"storage directory {existing} is not writable"]
    return []


def _check_socket(uri: str, host: str | None, port: int, timeout: float) -> list[str]:
    if not host:
        return [f"tracking URI {uri!r} has no host"]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return []
    except OSError as error:
        return [f"tracking server {uri} is unreachable ({host}:{port}: {error}); start it or fix storage_uri"]


def _check_database(uri: str, timeout: float) -> list[str]:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(timeout)})
        with engine.connect():
            return []
    except ModuleNotFoundError as error:
        return [f"database driver for {uri.split('://')[0]} is not installed ({error.name})"]
    except Exception as error:
        return [f"database {uri} is unreachable: {type(error).__name__}: {error}"]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping → ``{"a.b.c": "value"}`` strings (lists kept as JSON), for MLflow params."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:_PARAM_LIMIT]
    return flat


class Tracker:
    """The MLflow operations the benchmark needs, addressed by run id.

    Args:
        location: Resolved stores (see :func:`resolve_storage`).
    """

    def __init__(self, location: StorageLocation) -> None:
        import logging

        from mlflow import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if location.local_dir is not None:
            location.local_dir.mkdir(parents=True, exist_ok=True)
        self.location = location
        self.client = MlflowClient(tracking_uri=location.tracking_uri)

    # -- experiments and runs ----------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        """Id of experiment ``name``, created (with our artifact location) if missing."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        return self.client.create_experiment(name, artifact_location=self.location.artifact_location)

    def create_run(
        self, experiment_id: str, name: str, tags: Mapping[str, Any], parent_run_id: str | None = None
    ) -> str:
        """Start a run (status RUNNING) and return its id; ``parent_run_id`` nests it."""
        all_tags = {k: str(v) for k, v in tags.items()}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=name)
        return run.info.run_id

    def get_run(self, run_id: str) -> Any:
        """The MLflow run ``run_id`` (raises if it does not exist)."""
        return self.client.get_run(run_id)

    def search(self, experiment_id: str, tags: Mapping[str, str], order_by_start: bool = True) -> list[Any]:
        """Runs whose tags equal ``tags`` (newest first), including finished and failed ones."""
        clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        order = ["attributes.start_time DESC"] if order_by_start else None
        return list(
            self.client.search_runs(
                [experiment_id], filter_string=" and ".join(clauses), order_by=order, max_results=5000
            )
        )

    def children(self, experiment_id: str, parent_run_id: str, level: str) -> list[Any]:
        """Child runs of ``parent_run_id`` at ``level`` (oldest first)."""
        runs = self.search(experiment_id, {PARENT_TAG: parent_run_id, LEVEL_TAG: level})
        return sorted(runs, key=lambda r: r.info.start_time)

    def set_status(self, run_id: str, status: str) -> None:
        """Set the MLflow status: RUNNING (reopen) or FINISHED/FAILED/KILLED (terminate)."""
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=status)

    # -- logging ----------------------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params (flattened), skipping ones already logged with the same value."""
        from mlflow.entities import Param

        existing = self.client.get_run(run_id).data.params
        flat = flatten(params)
        items = [Param(k, v) for k, v in flat.items() if existing.get(k) != v]
        conflicts = [p for p in items if p.key in existing]
        items = [p for p in items if p.key not in existing]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[start : start + _BATCH])
        # MLflow params are immutable; a value that changed (e.g. a better trial after resuming) is a tag.
        if conflicts:
            self.set_tags(run_id, {f"{PARAM_TAG_PREFIX}{p.key}": p.value for p in conflicts})

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite float metrics at ``step``."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start : start + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set tags (values as strings)."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, tags=items[start : start + _BATCH])

    def log_text(self, run_id: str, text: str, name: str) -> None:
        """Store ``text`` as artifact file ``name``."""
        self.client.log_text(run_id, text, name)

    def log_file(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts."""
        self.client.log_artifact(run_id, os.fspath(path), artifact_path=artifact_path)

    def log_json(self, run_id: str, data: Any, name: str) -> None:
        """Store ``data`` as a JSON artifact."""
        self.log_text(run_id, json.dumps(data, indent=2, sort_keys=True, default=str), name)

    def scratch_dir(self) -> Path:
        """A directory for temporary files (checkpoints before they are logged)."""
        return Path(tempfile.mkdtemp(prefix="terratorch-iterate-"))
