"""Percentiles of bench figures (the standard library's statistics.quantiles), and the confidence interval of a
figure measured by repeated runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile (1-99) with linear interpolation between closest ranks (statistics.quantiles'
    "inclusive" method: numpy's default, and vLLM's benchmark's); None for no values, the value for one."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": sum(values) / len(values) if values else None,
        "max": max(values) if values else None,
        "n": float(len(values)),
    }


# Student's t at 97.5 % (a two-sided 95 % interval) for 1-30 degrees of freedom, as tabulated in the
# NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.6.7.2 (critical values of the t distribution).
# Beyond 30 the value for 30 is used: a slightly wider interval than the exact one, never a narrower.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def mean_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """The mean of repeated runs' figures and its 95 % confidence interval (Student's t: mean ± t·s/√n), as
    (mean, low, high); None for fewer than two values (one run says nothing about how much a figure moves)."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = _T975[min(len(values) - 1, len(_T975)) - 1] * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half
