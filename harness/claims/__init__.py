"""The seed's 13 claims about TCP (../shared/BRIEF.md §6), each with what Linux really does.

Experiments declare the claims they test (`claims: [5, 6]`); harness/report/claims.py judges
each claim per kernel from the runs of those experiments. The catalogue lives in seed_claims.py
(Python, not YAML: nothing to parse at load time, and the wheel needs no package data)."""
from __future__ import annotations

from harness.claims.seed_claims import CLAIMS, Claim, VERDICTS

CLAIM_NUMBERS = range(1, len(CLAIMS) + 1)


def claim(number: int) -> Claim:
    """The catalogue entry for claim `number` (1-based, as the seed's list and `claims:` count)."""
    return CLAIMS[number - 1]


__all__ = ["CLAIMS", "CLAIM_NUMBERS", "Claim", "VERDICTS", "claim"]
