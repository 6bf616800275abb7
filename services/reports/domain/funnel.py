"""The funnel ladder as reports see it, and the maths of conversion, win rate and percentiles."""

from __future__ import annotations

import math

# The default funnel: manual stages, then the ladder derived from the ERP documents. A deal that
# reaches a stage has passed every stage before it (ERP documents may skip manual stages).
LADDER = ("new", "qualified", "proposal", "order_confirmed", "invoiced", "partially_shipped",
          "shipped", "closed_won")
WON, LOST = "closed_won", "lost"
RANK = {stage: index + 1 for index, stage in enumerate(LADDER)}
STAGES = LADDER + (LOST,)


def rank(stage: str | None) -> int:
    """The stage's place on the ladder (1 = new); 0 for lost or a stage of a custom funnel."""
    return RANK.get(stage or "", 0)


def newly_reached(old_max_rank: int, stage: str) -> list[str]:
    """The ladder stages a deal reaches for the first time when it enters ``stage`` having been
    at most at ``old_max_rank``: every stage between (a jump counts the skipped ones)."""
    new_rank = rank(stage)
    if new_rank <= old_max_rank:
        return []
    return list(LADDER[old_max_rank:new_rank])


def ratio(part, whole, places: int = 4) -> float | None:
    """part / whole rounded, None when there is nothing to divide by."""
    if not whole:
        return None
    return round(float(part) / float(whole), places)


def conversion(reached: dict[str, int]) -> list[dict]:
    """Per ladder stage: deals that reached it (or beyond), the share of the previous stage's
    and of the first stage's that got this far. ``lost`` and the win rate (won of decided:
    won + lost) close the list."""
    rows = []
    first = reached.get(LADDER[0], 0)
    previous = None
    for stage in LADDER:
        count = reached.get(stage, 0)
        rows.append({"stage": stage, "deals": count,
                     "from_previous": ratio(count, previous) if previous is not None else None,
                     "from_first": ratio(count, first)})
        previous = count
    lost = reached.get(LOST, 0)
    rows.append({"stage": LOST, "deals": lost, "from_previous": None,
                 "from_first": ratio(lost, first)})
    return rows


def win_rate(reached: dict[str, int]) -> float | None:
    won, lost = reached.get(WON, 0), reached.get(LOST, 0)
    return ratio(won, won + lost)


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile with linear interpolation between the closest ranks (what
    PostgreSQL's ``percentile_cont`` computes); None for no values."""
    if not values:
        return None
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))



# Log-scale buckets of time spent in a stage: bucket b holds [GAMMA^b, GAMMA^(b+1)) seconds and
# stands for GAMMA^(b + 1/2), within sqrt(GAMMA) - 1 (2.5 %) of any value in it.
GAMMA = 1.05
_LOG_GAMMA = math.log(GAMMA)


def stay_bucket(seconds: float) -> int:
    return int(math.floor(math.log(max(float(seconds), 1.0)) / _LOG_GAMMA))


def bucket_value(bucket: int) -> float:
    return GAMMA ** (bucket + 0.5)


def percentile_of_counts(pairs: list[tuple[float, int]], fraction: float) -> float | None:
    """``percentile`` over values given as (value, how many times), e.g. histogram buckets'
    representatives with their counts and single exact values: the same interpolation between
    the closest ranks, without expanding the list."""
    ordered = sorted((value, count) for value, count in pairs if count > 0)
    total = sum(count for _, count in ordered)
    if not total:
        return None
    position = fraction * (total - 1)
    low_rank, high_rank = math.floor(position), math.ceil(position)

    def at(rank: int) -> float:
        seen = 0
        for value, count in ordered:
            seen += count
            if rank < seen:
                return float(value)
        return float(ordered[-1][0])

    low = at(low_rank)
    if low_rank == high_rank:
        return low
    return low + (at(high_rank) - low) * (position - low_rank)
