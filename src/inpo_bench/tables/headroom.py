"""How much true reward the toy base leaves on the table, from its own samples: best-of-n and the reward-tilted
reweighting frontier, and where a trained model sits against them.

rewards: (prompts, K) true rewards of K samples per prompt of the base (one noise seed each).
- best-of-n (n <= K): the expected reward of the best of n samples drawn without replacement from a prompt's K,
  by the exact order-statistics estimator, averaged over prompts; the KL of best-of-n sampling to the base is
  log n - (n - 1) / n (Beirami et al. 2024's closed form, as Gao et al. 2022 use).
- the tilt at temperature tau: each prompt's K samples reweighted by exp(R / tau), the optimum of
  E[R] - tau KL restricted to them (the KL-regularised objective's closed-form solution); its gain and its KL to
  the uniform weights, averaged over prompts. Tilting K samples cannot exceed log K nats or the best of K.
A model's share of the frontier is its gain over the base divided by the tilt frontier's gain at the model's
divergence from the base (linear interpolation between measured taus; beyond the last, its gain). Because that
divergence is an upper bound (divergence.py), the tables also read the frontiers the other way: the least KL at
which reweighting the base's samples gains what the model gains, and the best-of-n that does.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd

HEADROOM_COLUMNS = ["promptset", "selection", "n", "tau", "gain", "kl", "reward", "prompts", "samples_per_prompt"]


def best_of_n(rewards: np.ndarray, n: int) -> float:
    """Mean over prompts of E[max of n of the K samples, drawn without replacement]."""
    k = rewards.shape[1]
    if not 1 <= n <= k:
        raise ValueError(f"best-of-n needs 1 <= n <= {k} samples per prompt, got n = {n}")
    ordered = np.sort(rewards, axis=1)
    # the i-th smallest (1-based) is the maximum of an n-subset in C(i - 1, n - 1) of the C(k, n) subsets
    weights = np.array([comb(i - 1, n - 1) for i in range(1, k + 1)], dtype=np.float64) / comb(k, n)
    return float((ordered @ weights).mean())


def best_of_n_kl(n: int) -> float:
    return float(np.log(n) - (n - 1) / n)


def tilt(rewards: np.ndarray, tau: float) -> tuple[float, float]:
    """(gain over the mean, KL in nats to the uniform weights) of reweighting each prompt's samples by exp(R / tau)."""
    logits = rewards / tau
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    k = rewards.shape[1]
    gain = (weights * rewards).sum(axis=1) - rewards.mean(axis=1)
    kl = (weights * np.log(np.clip(weights * k, 1e-300, None))).sum(axis=1)
    return float(gain.mean()), float(kl.mean())


def headroom_table(promptset: str, rewards: np.ndarray, taus: list[float]) -> pd.DataFrame:
    """Best-of-n for every n <= K and the tilt at each tau, as rows of HEADROOM_COLUMNS."""
    prompts, k = rewards.shape
    base = float(rewards.mean())
    rows = []
    for n in range(1, k + 1):
        value = best_of_n(rewards, n)
        rows.append(("best_of_n", n, np.nan, value - base, best_of_n_kl(n), value))
    for tau in sorted(taus, reverse=True):
        gain, kl = tilt(rewards, tau)
        rows.append(("tilt", np.nan, tau, gain, kl, base + gain))
    frame = pd.DataFrame(rows, columns=["selection", "n", "tau", "gain", "kl", "reward"])
    frame.insert(0, "promptset", promptset)
    return frame.assign(prompts=prompts, samples_per_prompt=k)[HEADROOM_COLUMNS]


def frontier_gain(table: pd.DataFrame, kl: float) -> float:
    """The tilt frontier's gain at divergence `kl` (nats)."""
    return curve_gain(table, "tilt", kl)


def curve_gain(table: pd.DataFrame, selection: str, kl: float) -> float:
    """A frontier's gain at divergence `kl` (nats): linear between its measured points, 0 at 0, its last gain beyond."""
    rows = table[table.selection == selection].sort_values("kl")
    kls = np.concatenate([[0.0], rows.kl.to_numpy()])
    gains = np.concatenate([[0.0], rows.gain.to_numpy()])
    return float(np.interp(kl, kls, gains))


REWARD_KL_COLUMNS = [
    "model",
    "promptset",
    "gain",
    "ci_low",
    "ci_high",
    "chain_kl",
    "eps_mse",
    "tilt_gain_at_kl",
    "best_of_n_gain_at_kl",
    "share_of_tilt",
    "tilt_kl_for_gain",
    "best_of_n_for_gain",
]


def inverse(table: pd.DataFrame, selection: str, gain: float, column: str) -> float:
    """Where a frontier first reaches `gain`: its `column` (kl, or n) by linear interpolation; NaN beyond its
    largest gain or for a gain of 0 or less."""
    rows = table[table.selection == selection].sort_values("gain")
    if gain <= 0 or gain > rows.gain.max():
        return float("nan")
    start = {"kl": 0.0, "n": 1.0}[column]
    return float(np.interp(gain, np.concatenate([[0.0], rows.gain]), np.concatenate([[start], rows[column]])))


def reward_vs_kl(
    promptset: str,
    headroom: pd.DataFrame,
    gains: dict[str, tuple[float, float, float]],
    divergence: dict[str, dict[str, float]],
) -> pd.DataFrame:
    """Each model's true-reward gain over the base (point, 95% interval) at its divergence from the base, beside what
    the two frontiers gain at that divergence and its share of the tilt frontier's gain there."""
    rows = []
    for model, (gain, low, high) in gains.items():
        kl = divergence[model]["chain_kl"]
        tilt_gain = curve_gain(headroom, "tilt", kl)
        rows.append(
            {
                "model": model,
                "promptset": promptset,
                "gain": gain,
                "ci_low": low,
                "ci_high": high,
                "chain_kl": kl,
                "eps_mse": divergence[model]["eps_mse"],
                "tilt_gain_at_kl": tilt_gain,
                "best_of_n_gain_at_kl": curve_gain(headroom, "best_of_n", kl),
                "share_of_tilt": gain / tilt_gain if tilt_gain > 0 else np.nan,
                "tilt_kl_for_gain": inverse(headroom, "tilt", gain, "kl"),
                "best_of_n_for_gain": inverse(headroom, "best_of_n", gain, "n"),
            }
        )
    return pd.DataFrame(rows, columns=REWARD_KL_COLUMNS)


def study_reward_vs_kl(
    gains: pd.DataFrame, headroom: pd.DataFrame, divergence: dict[str, dict[str, float]], groups: dict[str, list[str]]
) -> pd.DataFrame:
    """The study's version: each method's seed-averaged true-reward gain over the base (its seed-inclusive interval,
    from study.seed_gains) at its divergence averaged over its seeds (the seeds' lowest and highest beside it)."""
    promptset = headroom.promptset.iloc[0]
    rows = gains[(gains.baseline == "base") & (gains.scorer == "oracle_reward") & (gains.promptset == promptset)]
    point = {r.model: (r.gain, r.ci_low, r.ci_high) for r in rows.itertuples() if r.model in groups}
    per_seed = {m: [divergence[s] for s in groups[m]] for m in point}
    mean = {m: {k: float(np.mean([d[k] for d in ds])) for k in ("chain_kl", "eps_mse")} for m, ds in per_seed.items()}
    table = reward_vs_kl(promptset, headroom, point, mean)
    table.insert(6, "chain_kl_low", [min(d["chain_kl"] for d in per_seed[m]) for m in table.model])
    table.insert(7, "chain_kl_high", [max(d["chain_kl"] for d in per_seed[m]) for m in table.model])
    return table.assign(seeds=[len(groups[m]) for m in table.model])
