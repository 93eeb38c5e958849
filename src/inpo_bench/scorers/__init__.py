"""Scorers: name -> per-image scores for (image, prompt) pairs.

Toy oracle scorers read the toy world's hidden reward; each is one column of `OracleScore`, and one job
computes them all because the oracle costs microseconds per image.
"""

from __future__ import annotations

# scorer name -> OracleScore field (booleans score 1.0 or 0.0)
ORACLE_SCORERS: dict[str, str] = {
    "oracle_reward": "reward",
    "oracle_fidelity": "fidelity",
    "oracle_aesthetic": "aesthetic",
    "oracle_all_correct": "all_correct",
    "oracle_fg_correct": "fg_correct",
    "oracle_bg_correct": "bg_correct",
    "oracle_shape_correct": "shape_correct",
}


def known_scorers() -> list[str]:
    return list(ORACLE_SCORERS)
