"""The forgetting curve, as pure functions of an injected ``now``.

Retention follows Ebbinghaus' exponential ``R(t) = exp(-t / S)`` with stability ``S`` in days.
Each reinforcement multiplies ``S`` by a factor that is larger the more had been forgotten (the
spacing effect used by spaced-repetition schedulers such as SM-2 and FSRS), so a memory that is
recalled again and again decays ever more slowly. Important memories start more stable.
"""

from __future__ import annotations

import math

DAY = 86400.0
#: the most stable a memory gets (a century). Without a ceiling a memory recalled over and over grew
#: ~1.4x per recall to infinity within minutes (the API bench: the same few items answer every
#: query), and an infinite stability stored as JSON reads back as null and failed every recall.
MAX_STABILITY_DAYS = 36_500.0


def initial_stability(importance: float, base_days: float, importance_boost: float) -> float:
    """Stability (days) of a new memory: ``base * (1 + boost * importance)``."""
    return bounded(base_days * (1.0 + importance_boost * importance))


def retention(elapsed_s: float, stability_days: float) -> float:
    """Probability-like strength in [0, 1] after ``elapsed_s`` seconds without access."""
    if elapsed_s <= 0:
        return 1.0
    return math.exp(-elapsed_s / (stability_days * DAY))


def reinforce(stability_days: float, current_retention: float, growth: float) -> float:
    """New stability after an access at ``current_retention``.

    The factor is ``1 + (growth - 1) * (1.5 - R)``: between ``1 + 0.5 (g - 1)`` for an access
    right after the last one and ``1 + 1.5 (g - 1)`` for one at the edge of forgetting.
    """
    r = min(max(current_retention, 0.0), 1.0)
    return bounded(stability_days * (1.0 + (growth - 1.0) * (1.5 - r)))


def bounded(stability_days: float | None) -> float:
    """``stability_days``, at most :data:`MAX_STABILITY_DAYS`; an unknown one (None, NaN: what an
    earlier unbounded stability was stored as) reads as the ceiling."""
    if stability_days is None or stability_days != stability_days:
        return MAX_STABILITY_DAYS
    return min(float(stability_days), MAX_STABILITY_DAYS)


def time_to_floor(stability_days: float, floor: float) -> float:
    """Seconds until retention falls to ``floor`` (used as the STM TTL)."""
    if floor <= 0:
        return math.inf
    if floor >= 1:
        return 0.0
    return -math.log(floor) * stability_days * DAY


def recency(elapsed_s: float, half_life_days: float) -> float:
    """Recency score in [0, 1]: halves every ``half_life_days``."""
    if elapsed_s <= 0:
        return 1.0
    return 0.5 ** (elapsed_s / (half_life_days * DAY))
