"""Did a change help, and how sure are we? Group summaries and differences with 95 % intervals.

Pure functions over lists of numbers (one objective value per run); no files. The distributions are
scipy's, not ours:

- a group's mean gets Student's t interval (scipy.stats.t, n - 1 degrees of freedom);
- the difference of two group means gets Welch's t interval (scipy.stats.ttest_ind with
  equal_var=False): it does not assume the two groups spread alike, which a change of optimizer or
  augmentation need not respect. With the 2-5 seeds a CPU or a small GPU budget allows, the interval
  is wide; that is the honest answer, not a defect.

The verdict reads the interval: wholly above zero -> "helps", wholly below -> "hurts", across zero ->
"no effect detected (n=...)". The last is not "no effect": more seeds narrow the interval. Higher is
better (mAP). Each claim is its own test at 95 %: among 12 claims with no real effect, about one in
two tables shows a false "helps"/"hurts" somewhere.
"""
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
HELPS, HURTS = "helps", "hurts"
REFERENCE = "reference"


@dataclass(frozen=True)
class GroupStats:
    """n runs' values: mean, sample sd and the t interval of the mean (None with fewer than 2 values)."""

    n: int
    mean: float | None
    sd: float | None
    ci: tuple[float, float] | None
    why_no_ci: str | None = None


@dataclass(frozen=True)
class Effect:
    """Mean of a group minus mean of the reference, with Welch's interval and the verdict it supports."""

    diff: float | None
    ci: tuple[float, float] | None
    p: float | None  # Welch's two-sided p value (reported, not used for the verdict)
    verdict: str
    n: int
    n_ref: int


def finite(values: Sequence[float | None]) -> list[float]:
    """The values a statistic can use: runs without a value (failed, unfinished, NaN) are left out."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE) -> GroupStats:
    """Mean, sd and the t interval of the mean of the finite values."""
    x = np.array(finite(values))
    n = len(x)
    if n == 0:
        return GroupStats(0, None, None, None, "no finished run")
    mean = float(x.mean())
    if n == 1:
        return GroupStats(1, mean, None, None, "n=1: one run has no spread to judge it by (run more seeds)")
    sd = float(x.std(ddof=1))
    if sd == 0:
        return GroupStats(n, mean, 0.0, (mean, mean))
    lo, hi = stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return GroupStats(n, mean, sd, (float(lo), float(hi)))


def difference(values: Sequence[float | None], reference: Sequence[float | None],
               confidence: float = CONFIDENCE) -> Effect:
    """mean(values) - mean(reference) with Welch's t interval, and its verdict word."""
    a, b = np.array(finite(values)), np.array(finite(reference))
    n, n_ref = len(a), len(b)
    if n == 0 or n_ref == 0:
        return Effect(None, None, None, "no finished run" if n == 0 else "reference has no finished run", n, n_ref)
    diff = float(a.mean() - b.mean())
    if n < 2 or n_ref < 2:
        return Effect(diff, None, None, f"no interval (n={n} vs {n_ref}: needs 2 runs per group)", n, n_ref)
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:
        # Welch's interval is undefined without spread (scipy returns NaN): every run gave the same
        # value, so the difference is exact for these seeds.
        return Effect(diff, (diff, diff), None, verdict(diff, diff, n), n, n_ref)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(confidence)
    lo, hi = float(ci.low), float(ci.high)
    return Effect(diff, (lo, hi), float(result.pvalue), verdict(lo, hi, n), n, n_ref)


def verdict(lo: float, hi: float, n: int) -> str:
    """The word for an interval of a difference (higher is better)."""
    if lo > 0:
        return HELPS
    if hi < 0:
        return HURTS
    return f"no effect detected (n={n})"
