"""Statistics of `compare --by`: group summaries, Welch's difference interval and the verdict, on
cases whose answer is known."""
import math

import numpy as np
import pytest
from scipy import stats

from xray_exp.analysis import effects


def test_groups_from_the_same_distribution_show_no_effect():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.30, 0.02, 5), rng.normal(0.30, 0.02, 5)
    effect = effects.difference(list(a), list(b))
    assert effect.verdict == "no effect detected (n=5)"
    assert effect.ci[0] < 0 < effect.ci[1]


def test_no_effect_is_the_verdict_about_95_percent_of_the_time_without_a_real_difference():
    # The interval's promise: with no true difference, "helps"/"hurts" appear in ~5 % of comparisons.
    rng = np.random.default_rng(0)
    verdicts = [effects.difference(list(rng.normal(0.3, 0.02, 4)), list(rng.normal(0.3, 0.02, 4))).verdict
                for _ in range(400)]
    false_alarms = sum(v in (effects.HELPS, effects.HURTS) for v in verdicts) / len(verdicts)
    assert 0.01 <= false_alarms <= 0.09


@pytest.mark.parametrize("sign, word", [(+1, "helps"), (-1, "hurts")])
def test_groups_a_tenth_apart_with_small_spread_help_or_hurt_with_the_interval_around_the_gap(sign, word):
    rng = np.random.default_rng(3)
    base = rng.normal(0.30, 0.005, 4)
    changed = rng.normal(0.30 + sign * 0.10, 0.005, 4)
    effect = effects.difference(list(changed), list(base))
    assert effect.verdict == word
    lo, hi = effect.ci
    assert lo < sign * 0.10 < hi
    assert hi - lo < 0.03  # small spread, 4 runs each: a narrow interval
    assert effect.p < 0.001


def test_one_run_has_no_interval_and_says_why():
    one = effects.summarize([0.31])
    assert one.n == 1 and one.mean == 0.31 and one.sd is None and one.ci is None
    assert "n=1" in one.why_no_ci and "seeds" in one.why_no_ci
    effect = effects.difference([0.31], [0.20, 0.22])
    assert effect.ci is None and effect.diff == pytest.approx(0.10)
    assert effect.verdict == "no interval (n=1 vs 2: needs 2 runs per group)"


def test_the_welch_interval_matches_a_hand_computed_case_and_scipy():
    a, b = [0.30, 0.32, 0.34], [0.20, 0.21, 0.25]
    # By hand: means 0.32 and 0.22; variances 0.0004 and 0.0007; se^2 = 0.0004/3 + 0.0007/3;
    # Welch-Satterthwaite df = (0.0011)^2 / ((0.0004^2 + 0.0007^2) / 2) = 3.7231; t(0.975, 3.7231) = 2.8598.
    se = math.sqrt(0.0011 / 3)
    df = 0.0011 ** 2 / ((0.0004 ** 2 + 0.0007 ** 2) / 2)
    assert df == pytest.approx(3.7231, abs=1e-4)
    t = 2.859817
    hand = (0.10 - t * se, 0.10 + t * se)
    assert hand == pytest.approx((0.045239, 0.154761), abs=1e-5)
    effect = effects.difference(a, b)
    assert effect.diff == pytest.approx(0.10)
    assert effect.ci == pytest.approx(hand, abs=1e-5)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert effect.ci == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert effect.verdict == "helps"


def test_a_group_mean_gets_students_t_interval():
    s = effects.summarize([0.30, 0.32, 0.34])
    half = 4.302653 * 0.02 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (s.n, s.mean, s.sd) == (3, pytest.approx(0.32), pytest.approx(0.02))
    assert s.ci == pytest.approx((0.32 - half, 0.32 + half), abs=1e-6)


def test_missing_values_are_left_out_and_counted():
    s = effects.summarize([0.3, None, float("nan"), 0.5])
    assert s.n == 2 and s.mean == pytest.approx(0.4)
    assert effects.summarize([]).why_no_ci == "no finished run"
    assert effects.difference([0.3, 0.4], [None]).verdict == "reference has no finished run"


def test_groups_without_spread_compare_exactly():
    # Every run gave the same value (e.g. nothing learnt): Welch is undefined, the difference is exact.
    assert effects.difference([0.0, 0.0], [0.0, 0.0]).verdict == "no effect detected (n=2)"
    hurt = effects.difference([0.1, 0.1], [0.3, 0.3])
    assert hurt.verdict == "hurts" and hurt.ci == pytest.approx((-0.2, -0.2))
