"""Tests for terratorch.iterate.statistics: IQM, bootstrap confidence intervals, normalisation."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import trim_mean

from terratorch.iterate import statistics as st


def _middle_half_mean(values: list[float]) -> float:
    """The IQM by hand: drop ``n // 4`` sorted values from each end, average the rest."""
    ordered = sorted(values)
    cut = len(ordered) // 4
    kept = ordered[cut : len(ordered) - cut]
    return sum(kept) / len(kept)


# ---------------------------------------------------------------------------------------------
# Statistics against hand computations
# ---------------------------------------------------------------------------------------------
def test_iqm_multiple_of_four_is_mean_of_middle_half():
    assert st.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx((3 + 4 + 5 + 6) / 4)


def test_iqm_of_five_values_cuts_one_from_each_end():
    # int(25% of 5) = 1 value trimmed per side, the middle three averaged
    assert st.iqm([100, 1, 2, 3, 4]) == pytest.approx((2 + 3 + 4) / 3)


def test_iqm_is_robust_to_an_outlier_and_ignores_nan():
    assert st.iqm([1, 2, 3, 1000, float("nan")]) == pytest.approx(st.iqm([1, 2, 3, 1000]))
    assert st.iqm([1, 2, 3, 1000]) == pytest.approx(2.5)
    assert st.iqm([5.0]) == 5.0
    assert math.isnan(st.iqm([]))


def test_bootstrap_ci_contains_mean_and_is_deterministic_per_seed():
    values = [0.61, 0.55, 0.70, 0.58, 0.66, 0.49]
    low, high = st.bootstrap_ci(values, seed=3)
    assert low < np.mean(values) < high
    assert (low, high) == st.bootstrap_ci(values, seed=3)
    assert (low, high) != st.bootstrap_ci(values, seed=4)
    assert min(values) <= low and high <= max(values)


def test_bootstrap_ci_narrows_with_lower_confidence_and_handles_small_inputs():
    values = list(np.linspace(0, 1, 10))
    wide, narrow = st.bootstrap_ci(values, confidence=0.95), st.bootstrap_ci(values, confidence=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert st.bootstrap_ci([0.3]) == (0.3, 0.3)
    assert all(math.isnan(v) for v in st.bootstrap_ci([]))
    low, high = st.bootstrap_ci(values, statistic="iqm")
    assert low < st.iqm(values) < high


def test_bootstrap_ci_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        st.bootstrap_ci([1, 2], confidence=95)
    with pytest.raises(ValueError, match=r"Unknown statistic 'median'.*'iqm'"):
        st.bootstrap_ci([1, 2], statistic="median")


def test_stratified_bootstrap_keeps_each_group():
    groups = [[0.0, 0.0, 0.0], [1.0, 1.0]]
    # every resample keeps 3 zeros and 2 ones -> the mean is always 0.4
    assert st.stratified_bootstrap_ci(groups, statistic="mean") == pytest.approx((0.4, 0.4))


def test_normalize_score_is_direction_aware():
    assert st.normalize_score(0.75, 0.5, 1.0, "max") == pytest.approx(0.5)
    assert st.normalize_score(2.0, 1.0, 5.0, "min") == pytest.approx(0.75)  # (5 - 2) / 4
    assert st.normalize_score(6.0, 1.0, 5.0, "min") == pytest.approx(-0.25)  # not clipped
    with pytest.raises(ValueError, match="direction must be 'max' or 'min'; got 'maximize'"):
        st.normalize_score(1, 0, 2, "maximize")
    with pytest.raises(ValueError, match="low < high"):
        st.normalize_score(1, 2, 2, "max")


def test_parse_reference_ranges_lists_every_problem_and_warns_on_unknown_tasks():
    assert st.parse_reference_ranges({"a": [0, 1], "b": {"min": 2, "max": 3}}) == {"a": (0, 1), "b": (2, 3)}
    with pytest.raises(ValueError, match=r"(?s)reference_ranges\.a: low \(1\.0\).*reference_ranges\.b"):
        st.parse_reference_ranges({"a": [1, 0], "b": "oops"})
    with pytest.warns(UserWarning, match="unknown task 'burn_scar'.*burn_scars"):
        st.parse_reference_ranges({"burn_scar": [0, 1]}, known_tasks=["burn_scars", "biomass"])


@pytest.mark.parametrize("n", range(1, 13))
def test_iqm_equals_the_reference_trim_mean_for_every_size(n):
    rng = np.random.default_rng(n)
    for values in (list(range(n, 0, -1)), list(rng.normal(0.6, 0.2, size=n)), list(rng.exponential(size=n))):
        expected = float(trim_mean(values, 0.25))  # what the reference benchmark tool reports
        assert st.iqm(values) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert st.iqm(values) == pytest.approx(_middle_half_mean(values), rel=1e-12, abs=1e-12)


def test_iqm_drops_non_finite_scores_before_trimming():
    values = [0.3, float("inf"), 0.5, float("nan"), 0.1, 0.9, 0.7]
    assert st.iqm(values) == pytest.approx(_middle_half_mean([0.3, 0.5, 0.1, 0.9, 0.7]))


def test_bootstrap_of_identical_values_is_a_point():
    assert st.bootstrap_ci([0.7, 0.7, 0.7], statistic="iqm") == pytest.approx((0.7, 0.7))
    assert st.bootstrap_ci([0.7, 0.7], statistic=np.std) == (0.0, 0.0)  # the statistic of the one resample
    assert st.stratified_bootstrap_ci([[0.2], [0.6]], statistic="mean") == pytest.approx((0.4, 0.4))
    assert all(math.isnan(v) for v in st.stratified_bootstrap_ci([[], [float("nan")]]))


def test_bootstrap_accepts_a_plain_function_of_one_array():
    values = [0.61, 0.55, 0.70, 0.58, 0.66, 0.49]
    low, high = st.bootstrap_ci(values, statistic=np.median, seed=1)
    assert min(values) <= low < float(np.median(values)) < high <= max(values)
    assert st.bootstrap_ci(values, statistic=np.median, seed=1) == (low, high)


def test_stratified_bootstrap_of_one_group_is_the_plain_bootstrap():
    values = [0.61, 0.55, 0.70, 0.58, 0.66, 0.49]
    for statistic in ("mean", "iqm"):
        assert st.stratified_bootstrap_ci([values], statistic=statistic, seed=7) == pytest.approx(
            st.bootstrap_ci(values, statistic=statistic, seed=7)
        )


def test_stratified_bootstrap_keeps_a_single_seed_task_in_every_resample():
    # the lone 1.0 enters every resample: each resampled mean is (three draws from the first task + 1) / 4
    low, high = st.stratified_bootstrap_ci([[0.2, 0.4, 0.6], [1.0]], statistic="mean", seed=0)
    assert (0.2 * 3 + 1) / 4 <= low < high <= (0.6 * 3 + 1) / 4
    median = st.stratified_bootstrap_ci([[0.2, 0.4, 0.6], [1.0], [0.3, 0.8]], statistic=np.median, seed=0)
    assert 0.2 <= median[0] <= median[1] <= 1.0


def test_stratified_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        st.stratified_bootstrap_ci([[1, 2]], confidence=1.0)
    with pytest.raises(ValueError, match=r"Unknown statistic 'iqn'\. Did you mean 'iqm'\?"):
        st.stratified_bootstrap_ci([[1, 2]], statistic="iqn")


def test_statistics_module_imports_neither_scipy_nor_mlflow():
    code = (
        "import sys, terratorch.iterate.statistics, terratorch.iterate.results; "
        "print(sorted(m for m in ('scipy', 'mlflow', 'torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reference_range_keys_match_geobench_dataset_names():
    ranges = st.parse_reference_ranges(
        {"m-eurosat": [0.2, 0.9], "m_bigearthnet": [0, 0.5], "eurosat": [0.1, 0.8]},
        known_tasks=["eurosat", "bigearthnet", "cashew"],
    )
    # the exact task name wins over a GEO-Bench dataset name that maps to the same task
    assert ranges == {"eurosat": (0.1, 0.8), "bigearthnet": (0.0, 0.5)}


def test_reference_ranges_load_from_json_file(tmp_path):
    path = tmp_path / "normalizer.json"
    path.write_text('{"m-eurosat": [0.25, 0.95]}')
    assert st.parse_reference_ranges(str(path), known_tasks=["eurosat"]) == {"eurosat": (0.25, 0.95)}
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        st.load_reference_ranges(path)
    path.write_text("{oops")
    with pytest.raises(ValueError, match="is not valid JSON"):
        st.load_reference_ranges(path)
