"""From the seqs stored for one (site, epoch), what the collector can confirm. Pure functions.

A `run` is an inclusive `(first, last)` stretch of consecutive stored seqs. `through` is the
watermark: every seq from the epoch's first seen one up to it is stored (or was given up). Seqs at or
below it are never read again, so retention deleting old readings cannot move it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.contract.ack import MAX_RANGES

Run = tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmed:
    through: int
    missing: tuple[Run, ...]  # gaps above `through`, lowest first, at most the cap


def runs_of(seqs: Iterable[int]) -> list[Run]:
    """Stretches of consecutive seqs, ascending; repeats count once."""
    found: list[Run] = []
    for seq in sorted(set(seqs)):
        if found and seq == found[-1][1] + 1:
            found[-1] = (found[-1][0], seq)
        else:
            found.append((seq, seq))
    return found


def confirm(through: int | None, runs: Sequence[Run], cap: int = MAX_RANGES) -> Confirmed:
    """The new watermark and the gaps above it, from the runs stored above `through` (ascending,
    disjoint, each above `through`). `through` None: the epoch is new here, and its first stored seq
    starts it (older seqs may have been dropped by the gateway's bound before they were sent)."""
    if not runs:
        return Confirmed(through=through or 0, missing=())
    mark = runs[0][0] - 1 if through is None else through
    rest = runs
    if rest[0][0] == mark + 1:
        mark = rest[0][1]
        rest = rest[1:]
    missing: list[Run] = []
    end = mark
    for first, last in rest:
        if len(missing) == cap:
            break
        missing.append((end + 1, first - 1))
        end = last
    return Confirmed(through=mark, missing=tuple(missing))


def skip_first_gap(confirmed: Confirmed, runs: Sequence[Run]) -> tuple[Confirmed, int]:
    """Give up the lowest gap: the watermark moves to the end of the run after it. Return the new
    confirmation and how many seqs were given up (0 when there is no gap)."""
    if not confirmed.missing:
        return confirmed, 0
    first, last = confirmed.missing[0]
    beyond = [run for run in runs if run[0] > last]
    return confirm(last, beyond), last - first + 1
