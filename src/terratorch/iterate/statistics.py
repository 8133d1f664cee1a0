"""Statistics of benchmark scores: IQM, bootstrap confidence intervals and normalisation.

All of them work on the per-seed test scores of the repeat runs (or, for a task without repeats,
on its best validation value):

* IQM, the interquartile mean: ``scipy.stats.trim_mean(x, 0.25)``, as in the reference benchmark
  tool (``n // 4`` values cut from each end, the rest averaged);
* a percentile-bootstrap confidence interval (``scipy.stats.bootstrap``), seeded so that reports
  are reproducible, and a stratified one that resamples seeds within each task;
* scores normalised to [0, 1] per task against a reference range (1 = the best end, whichever
  the task's direction), with :func:`resolve_ranges` choosing that range. ``normalization="geobench"``
  follows GEO-Bench: a per-dataset ``[min, max]`` from its ``normalizer.json`` (or the min-max of
  every loaded score), never the metric's own bounds.

scipy is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from terratorch.iterate.results import BenchmarkResults

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "NORMALIZATION_MODES",
    "UNIT_METRICS",
    "bootstrap_ci",
    "finite",
    "iqm",
    "load_reference_ranges",
    "normalize_score",
    "normalized_scores",
    "parse_reference_ranges",
    "resolve_ranges",
    "stratified_bootstrap_ci",
]

DEFAULT_SEED = 0
DEFAULT_RESAMPLES = 2000
IQM_CUT = 0.25  # fraction trimmed from each end for the interquartile mean

Statistic = Callable[..., Any]

NORMALIZATION_MODES = ("auto", "geobench")
"""How a task without a given reference range is normalised: ``auto`` uses a bounded metric's
``[0, 1]``, else the observed range; ``geobench`` always the observed range, as GEO-Bench's
``make_normalizer`` does."""

# Metrics bounded to [0, 1] with 1 best: their bounds are a natural reference range.
UNIT_METRICS = ("mIoU", "mIoU_Micro", "F1_Score", "Accuracy", "Accuracy_Micro", "Pixel_Accuracy", "Precision",
                "Recall")  # fmt: skip


def finite(values: Iterable[float]) -> np.ndarray:
    """``values`` as a float array without NaN/inf (failed or missing scores are not scores)."""
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def _trimmed_mean(values: np.ndarray, axis: int = -1) -> Any:
    from scipy.stats import trim_mean

    return trim_mean(values, IQM_CUT, axis=axis)


def iqm(values: Iterable[float]) -> float:
    """Interquartile mean: ``scipy.stats.trim_mean(values, 0.25)`` over the finite values.

    ``len(values) // 4`` values are cut from each end of the sorted scores and the rest averaged
    (so for fewer than 4 values it is the plain mean), which keeps one diverged seed from moving
    the result. An empty input gives NaN.
    """
    array = finite(values)
    return math.nan if array.size == 0 else float(_trimmed_mean(array))


# Named statistics, vectorised (``statistic(samples, axis=-1)``) so the bootstrap runs in one call.
_NAMED: dict[str, Statistic] = {"mean": np.mean, "iqm": _trimmed_mean}


def _statistic(statistic: Statistic | str) -> tuple[Statistic, bool]:
    """``(function, vectorized)`` for a statistic name or a function of one 1-D array."""
    if callable(statistic):
        return statistic, False
    if statistic not in _NAMED:
        from terratorch.choices import did_you_mean

        raise ValueError(
            f"Unknown statistic {statistic!r}.{did_you_mean(statistic, _NAMED)} "
            f"Use one of {sorted(_NAMED)} or a function of a 1-D array."
        )
    return _NAMED[statistic], True


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}.")


def _percentile_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Statistic,
    vectorized: bool,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> tuple[float, float]:
    """Percentile-bootstrap CI with each sample resampled on its own (scipy's unpaired bootstrap)."""
    from scipy.stats import bootstrap

    result = bootstrap(
        tuple(samples),
        statistic,
        n_resamples=n_resamples,
        vectorized=vectorized,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def bootstrap_ci(
    values: Iterable[float],
    statistic: Statistic | str = "mean",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` over ``values``.

    Args:
        values: Scores (non-finite ones are dropped).
        statistic: ``"mean"``, ``"iqm"`` or a function of a 1-D array.
        confidence: Coverage of the interval, in (0, 1).
        n_resamples: Bootstrap resamples.
        seed: Seed of the numpy generator; the same inputs and seed give the same interval.

    Returns:
        ``(low, high)``; ``(v, v)`` when every value is ``v`` (one seed included), ``(nan, nan)``
        for none.
    """
    _check_confidence(confidence)
    func, vectorized = _statistic(statistic)
    array = finite(values)
    if array.size == 0:
        return math.nan, math.nan
    if np.all(array == array[0]):  # every resample is the same: no spread to estimate
        value = float(func(array))
        return value, value
    return _percentile_bootstrap([array], func, vectorized, confidence, n_resamples, seed)


def stratified_bootstrap_ci(
    groups: Sequence[Sequence[float]],
    statistic: Statistic | str = "iqm",
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Bootstrap CI of ``statistic`` over pooled groups, resampling within each group.

    Used for aggregates across tasks: each task keeps its number of seeds in every resample, so
    tasks with more repeats do not crowd out the others. A group whose values are all equal (one
    seed, say) is the same in every resample, so it enters every resample as it is.
    """
    _check_confidence(confidence)
    func, vectorized = _statistic(statistic)
    arrays = [a for a in (finite(g) for g in groups) if a.size]
    if not arrays:
        return math.nan, math.nan
    varying = [a for a in arrays if not np.all(a == a[0])]
    fixed = np.concatenate([a for a in arrays if np.all(a == a[0])] or [np.empty(0)])
    if not varying:
        value = float(func(fixed))
        return value, value

    def pooled(*resampled: np.ndarray, axis: int = -1) -> Any:
        if not vectorized:
            return func(np.concatenate([*resampled, fixed]))
        lead = resampled[0].shape[:-1]
        return func(
            np.concatenate([*resampled, np.broadcast_to(fixed, (*lead, fixed.size))], axis=-1), axis=-1
        )

    return _percentile_bootstrap(varying, pooled, vectorized, confidence, n_resamples, seed)


def normalize_score(value: float, low: float, high: float, direction: str) -> float:
    """Map ``value`` onto the reference range ``[low, high]`` so that 1 is the best end.

    ``direction="max"``: ``(value - low) / (high - low)``; ``"min"``: ``(high - value) / (high -
    low)``. Values outside the range are not clipped (a score past the reference shows as > 1).
    """
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min'; got {direction!r}.")
    if not high > low:
        raise ValueError(f"Reference range needs low < high; got low={low}, high={high}.")
    span = high - low
    return (value - low) / span if direction == "max" else (high - value) / span


def load_reference_ranges(
    spec: Mapping[str, Any] | str | os.PathLike[str] | None,
) -> Mapping[str, Any] | None:
    """Reference ranges given inline (a mapping) or as a JSON file, e.g. GEO-Bench's ``normalizer.json``.

    GEO-Bench stores ``{dataset name: [min, max]}`` per benchmark (``<benchmark>/normalizer.json``);
    any file of that shape works.

    Raises:
        FileNotFoundError: The file does not exist (its path is named).
        ValueError: The file is not a JSON object.
    """
    if spec is None or isinstance(spec, Mapping):
        return spec
    path = os.fspath(spec)
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"reference_ranges file {path} does not exist. Give {{task: [low, high]}} inline or the path "
            "of a JSON file of that shape (GEO-Bench keeps one as <benchmark>/normalizer.json)."
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"reference_ranges file {path} is not valid JSON: {error}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"reference_ranges file {path} must hold a JSON object {{task: [low, high]}}.")
    return data


def _dataset_key(name: str) -> str:
    """GEO-Bench dataset names (``m-eurosat``) and task names (``eurosat``, ``m_eurosat``) compare equal."""
    key = name.strip().lower().replace("_", "-")
    return key[2:] if key.startswith("m-") else key


def _match_tasks(
    parsed: dict[str, tuple[float, float]], known_tasks: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Rename ranges keyed by a GEO-Bench dataset name to the one task that dataset matches."""
    if not known_tasks:
        return parsed
    by_key: dict[str, list[str]] = {}
    for task in known_tasks:
        by_key.setdefault(_dataset_key(task), []).append(task)
    matched: dict[str, tuple[float, float]] = {}
    for name, pair in parsed.items():
        candidates = by_key.get(_dataset_key(name), [])
        target = name if name in known_tasks or len(candidates) != 1 else candidates[0]
        if target not in matched or target == name:
            matched[target] = pair
    return matched


def parse_reference_ranges(
    reference_ranges: Mapping[str, Any] | str | os.PathLike[str] | None, known_tasks: Sequence[str] = ()
) -> dict[str, tuple[float, float]]:
    """Validate ``{task: [low, high]}`` (or ``{task: {"min": low, "max": high}}``) ranges.

    ``reference_ranges`` may also be the path of a JSON file of that shape (GEO-Bench's
    ``normalizer.json``). A key that is not a task name but matches exactly one task once the
    GEO-Bench ``m-`` prefix, case and ``_``/``-`` are ignored (``m-eurosat`` for a task ``eurosat``)
    applies to that task. A range for a task not in ``known_tasks`` (when given) is warned about,
    with the closest task names: it matches no results, so it is ignored.

    Raises:
        ValueError: a range is not two numbers with ``low < high``; lists every bad entry.
    """
    parsed: dict[str, tuple[float, float]] = {}
    problems: list[str] = []
    for task, spec in (load_reference_ranges(reference_ranges) or {}).items():
        try:
            pair = (spec["min"], spec["max"]) if isinstance(spec, Mapping) else tuple(spec)
            low, high = (float(v) for v in pair)
        except (KeyError, TypeError, ValueError):
            problems.append(f"reference_ranges.{task}: expected [low, high] or {{min, max}}, got {spec!r}")
            continue
        if not high > low:
            problems.append(f"reference_ranges.{task}: low ({low}) must be below high ({high})")
            continue
        parsed[str(task)] = (low, high)
    if problems:
        raise ValueError("Invalid reference ranges:\n  " + "\n  ".join(problems))
    parsed = _match_tasks(parsed, known_tasks)
    _warn_unknown_tasks(parsed, known_tasks)
    return parsed


def _warn_unknown_tasks(parsed: Mapping[str, Any], known_tasks: Sequence[str]) -> None:
    from terratorch.choices import did_you_mean

    for task in parsed:
        if known_tasks and task not in known_tasks:
            suffix = did_you_mean(task, known_tasks) or f" Tasks: {list(known_tasks)}."
            warnings.warn(f"Reference range for unknown task {task!r} is ignored.{suffix}", stacklevel=3)


def _metric_bounds(metric: str) -> tuple[float, float] | None:
    suffix = metric.split("/", 1)[-1]
    return (0.0, 1.0) if suffix in UNIT_METRICS or suffix.startswith("IoU_") else None


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATION_MODES:
        raise ValueError(f"normalization must be one of {list(NORMALIZATION_MODES)}; got {normalization!r}.")


def resolve_ranges(
    results: BenchmarkResults, reference: Mapping[str, tuple[float, float]], normalization: str = "auto"
) -> dict[str, tuple[float, float, str]]:
    """Per task ``(low, high, source)``: the range its scores are normalised against.

    In order: the given ``reference`` range; with ``normalization="auto"``, ``[0, 1]`` (``"metric
    bounds"``) for metrics bounded that way (mIoU, accuracy, F1, precision, recall); else the
    min-max of every score of every loaded experiment on that task (``"observed"``), which needs
    scores from at least two experiments, since the spread of one experiment's own seeds says
    nothing about how good it is. Otherwise ``(nan, nan, "none")`` and the task is left out of the
    aggregate. ``normalization="geobench"`` skips the metric bounds, as GEO-Bench normalises every
    dataset by the min-max of the compared results when no ``normalizer.json`` range is given.
    """
    _check_normalization(normalization)
    ranges: dict[str, tuple[float, float, str]] = {}
    for task in results.task_names():
        bounds = _metric_bounds(results.task_info(task).metric) if normalization == "auto" else None
        scored = [
            e.tasks[task].scores for e in results.experiments if task in e.tasks and e.tasks[task].scores
        ]
        values = finite(s for scores in scored for s in scores)
        if task in reference:
            ranges[task] = (*reference[task], "reference")
        elif bounds is not None:
            ranges[task] = (*bounds, "metric bounds")
        elif len(scored) >= 2 and values.max() > values.min():
            ranges[task] = (float(values.min()), float(values.max()), "observed")
        else:
            ranges[task] = (math.nan, math.nan, "none")
    return ranges


def normalized_scores(
    results: BenchmarkResults, ranges: Mapping[str, tuple[float, float, str]]
) -> dict[str, dict[str, list[float]]]:
    """``{experiment label: {task: [normalised score per seed]}}``; tasks without a range are left out."""
    table: dict[str, dict[str, list[float]]] = {}
    for experiment in results.experiments:
        per_task: dict[str, list[float]] = {}
        for name, task in experiment.tasks.items():
            low, high, _ = ranges[name]
            if math.isnan(low) or not task.scores:
                continue
            per_task[name] = [normalize_score(s, low, high, task.direction) for s in task.scores]
        table[experiment.label] = per_task
    return table
