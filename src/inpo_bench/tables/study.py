"""The toy study's tables: each method's gain over a baseline averaged over training seeds, with an interval that
holds the seed-to-seed spread as well as the prompts'; training curves summarised across seeds on three compute
axes; the compute each method needs to reach a share of Diffusion-DPO's gain; the paper's claims judged on these.

A gain's bootstrap replicate resamples the prompts (each keeps all its sampling seeds, as in scores.py) and, on
each side independently, the training seeds: the interval covers what a second machine or a second set of seeds
would have drawn, which a bootstrap over prompts alone does not. With S seeds that part is a bootstrap of S
values: crude for S = 3 and narrower than a t-interval would be, so the tables give every seed's own gain beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .scores import read_scores

GAIN_COLUMNS = [
    "model",
    "baseline",
    "promptset",
    "scorer",
    "seeds",
    "baseline_seeds",
    "prompts",
    "gain",
    "ci_low",
    "ci_high",
    "half_width",
    "per_seed",
    "verdict",
]
AXES = ("step", "unet_forwards", "seconds")


def prompt_matrix(paths: list[str | Path]) -> pd.DataFrame:
    """One row per training seed (one score file each), one column per prompt: the mean over its sampling seeds.
    Every file must hold the same prompts and sampling seeds, or the rows would not be paired."""
    rows, keys = [], None
    for path in paths:
        scores = read_scores(path)
        own = set(zip(scores.prompt_id, scores.seed))
        if keys is not None and own != keys:
            raise ValueError(f"{path}: other (prompt, seed) images than {paths[0]}; the gains need paired samples")
        keys = own
        rows.append(scores.groupby("prompt_id")["score"].mean())
    return pd.DataFrame(rows).reset_index(drop=True)


def _resampling_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n): how often each of n units is drawn in a replicate of n draws with replacement, over n."""
    draws = rng.integers(0, n, size=(n_boot, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]) / n


def seeded_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = 4000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(point, low, high) of mean(a) - mean(b) for score matrices (seeds, prompts) over the same prompts.

    Each replicate resamples the prompts once for both sides (they were sampled from the same noise), and each
    side's seeds on its own (they are independent trainings). Percentile interval.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{a.shape[1]} prompts against {b.shape[1]}: the matrices must share their prompts")
    rng = np.random.default_rng(seed)
    prompts = _resampling_weights(rng, a.shape[1], n_boot)
    seeds_a = _resampling_weights(rng, a.shape[0], n_boot)
    seeds_b = _resampling_weights(rng, b.shape[0], n_boot)
    replicates = np.einsum("rs,sp,rp->r", seeds_a, a, prompts) - np.einsum("rs,sp,rp->r", seeds_b, b, prompts)
    tail = (1 - level) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(a.mean() - b.mean()), float(low), float(high)


def _effect(low: float, high: float) -> str:
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "no detectable difference"


def seed_gains(
    scores: dict[tuple[str, str, str], str | Path],
    groups: dict[str, list[str]],
    comparisons: list[tuple[str, str]],
    n_boot: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """groups: name -> its model ids, one per training seed (the base: ['base']); scores: (model id, prompt set,
    scorer) -> score CSV. One row per comparison (group, baseline group), prompt set and scorer present for both."""
    rows = []
    settings = sorted({(p, s) for _, p, s in scores})
    for model, baseline in comparisons:
        for promptset, scorer in settings:
            paths = {g: [scores.get((m, promptset, scorer)) for m in groups.get(g, [])] for g in (model, baseline)}
            if any(not side or None in side for side in paths.values()):
                continue
            both = prompt_matrix(paths[model] + paths[baseline])  # checks that all of them are paired
            a, b = both.iloc[: len(paths[model])], both.iloc[len(paths[model]) :]
            point, low, high = seeded_difference(a.to_numpy(), b.to_numpy(), n_boot, seed)
            per_seed = a.mean(axis=1).to_numpy() - b.to_numpy().mean()
            rows.append(
                {
                    "model": model,
                    "baseline": baseline,
                    "promptset": promptset,
                    "scorer": scorer,
                    "seeds": len(a),
                    "baseline_seeds": len(b),
                    "prompts": a.shape[1],
                    "gain": point,
                    "ci_low": low,
                    "ci_high": high,
                    "half_width": (high - low) / 2,
                    "per_seed": " / ".join(f"{g:+.3f}" for g in per_seed),
                    "verdict": _effect(low, high),
                }
            )
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def interval_target(gains: pd.DataFrame, reference: str = "dpo", baseline: str = "base") -> pd.DataFrame:
    """The power target of a gain's interval: half-width at most 0.01 or at most a third of the reference's gain
    over the baseline on the same prompt set and scorer. Adds `target_half_width` and `meets_target`."""
    ref = gains[(gains.model == reference) & (gains.baseline == baseline)].set_index(["promptset", "scorer"]).gain
    third = [abs(ref.get((r.promptset, r.scorer), np.nan)) / 3 for r in gains.itertuples()]
    target = np.fmax(0.01, np.asarray(third, dtype=np.float64))
    return gains.assign(target_half_width=target, meets_target=gains.half_width.to_numpy() <= target)


# Student's t 0.975 quantiles for 1..30 degrees of freedom (any statistics table), so a few seeds get their honest
# width; beyond 30 the normal's 1.96 is within 4%
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    """95% t-interval of the mean of a few values (training seeds); NaN for fewer than two."""
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return np.nan, np.nan
    t = T975[len(values) - 2] if len(values) - 1 <= len(T975) else 1.96
    half = t * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def curve_summary(curves: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """Per group and measured step: the mean across its seeds of the reward and of the compute spent, with a 95%
    t-interval across seeds for the reward (training-seed spread; the progress prompts are fixed)."""
    rows = []
    for name, models in groups.items():
        block = curves[curves.model.isin(models)]
        for step, at in block.groupby("step"):
            low, high = _t_interval(at.reward.to_numpy(dtype=np.float64))
            rows.append(
                {
                    "method": name,
                    "step": int(step),
                    "seeds": len(at),
                    "unet_forwards": at.unet_forwards.mean(),
                    "seconds": at.seconds.mean(),
                    "reward": at.reward.mean(),
                    "reward_ci_low": low,
                    "reward_ci_high": high,
                }
            )
    return pd.DataFrame(rows)


def compute_to_reach(
    curves: pd.DataFrame,
    groups: dict[str, list[str]],
    reference: str = "dpo",
    fractions: tuple[float, ...] = (0.5, 1.0),
) -> pd.DataFrame:
    """The compute each group's seeds spent before their first measurement at or above start + f * gain, where
    gain is the reference's final gain over its start (mean over its seeds) and start each seed's own step-0
    reward. Per group and fraction: how many seeds got there, and for each axis (steps, UNet forward-equivalents,
    training seconds) the mean over those seeds with a 95% t-interval across them. Seeds that never got there
    are left out of the means, so a row with fewer than all seeds reached is a lower bound, said in `reached`."""
    final = {}
    for model in groups[reference]:
        block = curves[curves.model == model].sort_values("step")
        final[model] = block.reward.iloc[-1] - block.reward.iloc[0]
    gain = float(np.mean(list(final.values())))
    rows = []
    for name, models in groups.items():
        for f in fractions:
            hits = []
            for model in models:
                block = curves[curves.model == model].sort_values("step")
                target = block.reward.iloc[0] + f * gain
                reached = block[(block.step > 0) & (block.reward >= target)] if gain > 0 else block.iloc[0:0]
                hits.append(reached.iloc[0] if len(reached) else None)
            got = [h for h in hits if h is not None]
            row = {
                "method": name,
                "reference": reference,
                "reference_gain": gain,
                "fraction_of_reference_gain": f,
                "seeds": len(models),
                "reached": len(got),
            }
            for axis in AXES:
                values = np.array([h[axis] for h in got], dtype=np.float64)
                low, high = _t_interval(values)
                row.update(
                    {axis: values.mean() if len(values) else np.nan, f"{axis}_ci_low": low, f"{axis}_ci_high": high}
                )
            rows.append(row)
    return pd.DataFrame(rows)


def _gain_claim(gains: pd.DataFrame, model: str, baseline: str, promptset: str, scorer: str) -> tuple[str, str]:
    row = gains[
        (gains.model == model)
        & (gains.baseline == baseline)
        & (gains.promptset == promptset)
        & (gains.scorer == scorer)
    ]
    if row.empty:
        return "not measured", f"no {model} - {baseline} gain on {promptset} in this study"
    r = row.iloc[0]
    verdict = {"higher": "holds", "lower": "does not hold"}.get(r.verdict, "inconclusive")
    return verdict, (
        f"{model} - {baseline} on {promptset}, {scorer}: {r.gain:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] over "
        f"{r.seeds} x {r.baseline_seeds} training seeds (per seed {r.per_seed})"
    )


def _compute_claim(reach: pd.DataFrame, method: str, reference: str, axis: str, factor: float) -> tuple[str, str]:
    """Does `method` reach the reference's full gain with at most `factor` times its compute on `axis`?"""
    full = reach[reach.fraction_of_reference_gain == 1.0].set_index("method")
    if method not in full.index or reference not in full.index:
        return "not measured", f"{method} or {reference} has no curves in this study"
    ours, theirs = full.loc[method], full.loc[reference]
    if not theirs.reference_gain > 0:
        return "not measured", f"{reference} gained nothing over its start ({theirs.reference_gain:+.4f})"
    what = f"{axis} to {reference}'s final gain ({theirs.reference_gain:+.4f})"
    if ours.reached == 0:
        return "does not hold", f"{what}: {method} reached it in none of its {ours.seeds} seeds"
    evidence = (
        f"{what}: {method} {ours[axis]:.4g} [{ours[f'{axis}_ci_low']:.4g}, {ours[f'{axis}_ci_high']:.4g}] "
        f"({ours.reached}/{ours.seeds} seeds), {reference} {theirs[axis]:.4g} "
        f"[{theirs[f'{axis}_ci_low']:.4g}, {theirs[f'{axis}_ci_high']:.4g}] ({theirs.reached}/{theirs.seeds})"
    )
    if ours.reached < ours.seeds or theirs.reached < theirs.seeds:
        return "inconclusive", evidence + "; not every seed got there"
    if ours[f"{axis}_ci_high"] <= factor * theirs[f"{axis}_ci_low"]:
        return "holds", evidence
    if ours[f"{axis}_ci_low"] > factor * theirs[f"{axis}_ci_high"]:
        return "does not hold", evidence
    return "inconclusive", evidence


def study_claims(
    gains: pd.DataFrame,
    reach: pd.DataFrame,
    scorer: str = "oracle_reward",
    method: str = "inpo",
    reference: str = "dpo",
) -> pd.DataFrame:
    """The paper's claims judged on the true reward with training-seed intervals: a gain claim holds when the
    whole interval of the difference is above 0 and fails when it is below; a compute claim holds when the upper
    end of the method's interval is within the factor of the lower end of the reference's."""
    rows = []
    for claim, baseline, promptset in (
        ("DDIM-InPO improves on the base model", "base", "toy_seen"),
        ("DDIM-InPO beats SFT", "sft", "toy_seen"),
        ("DDIM-InPO beats Diffusion-DPO", reference, "toy_seen"),
        ("DDIM-InPO's gain carries over to held-out compositions", "base", "toy_unseen"),
    ):
        verdict, evidence = _gain_claim(gains, method, baseline, promptset, scorer)
        rows.append({"claim": claim, "verdict": verdict, "evidence": evidence})
    for claim, axis, factor in (
        ("DDIM-InPO reaches Diffusion-DPO's gain in at most a quarter of its steps", "step", 0.25),
        ("DDIM-InPO reaches Diffusion-DPO's gain with fewer UNet forward-equivalents", "unet_forwards", 1.0),
        ("DDIM-InPO reaches Diffusion-DPO's gain in less training time", "seconds", 1.0),
    ):
        verdict, evidence = _compute_claim(reach, method, reference, axis, factor)
        rows.append({"claim": claim, "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows, columns=["claim", "verdict", "evidence"])


GAIN_KEYS = ["model", "baseline", "promptset", "scorer"]


def _side_by_side(first: pd.DataFrame, second: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """An outer join in the first table's row order, rows only the second has after them (pandas' outer merge
    sorts the keys, which scrambles the claims' order)."""
    both = first.merge(second, on=keys, how="outer", suffixes=("_first", "_second"), validate="one_to_one")
    order: dict[tuple, int] = {}
    for key in map(tuple, pd.concat([first[keys], second[keys]]).to_numpy()):
        order.setdefault(key, len(order))
    rank = [order[key] for key in map(tuple, both[keys].to_numpy())]
    return both.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)


def gain_stability(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Two seed_gains tables of one study on disjoint training-seed sets (or two machines), row by row: each
    side's gain, interval and verdict; `same_verdict`; `opposite_verdicts` (one side higher, the other lower:
    the failure the intervals exist to prevent); and whether each side's gain lies inside the other's interval.
    Rows present in only one table are kept with the other side empty, so nothing is compared silently away."""
    keep = [*GAIN_KEYS, "gain", "ci_low", "ci_high", "verdict"]
    both = _side_by_side(first[keep], second[keep], GAIN_KEYS)
    a, b = both.verdict_first, both.verdict_second
    paired = a.notna() & b.notna()
    both["same_verdict"] = paired & (a == b)
    both["opposite_verdicts"] = [{x, y} == {"higher", "lower"} for x, y in zip(a, b)]
    both["second_in_first_interval"] = paired & both.gain_second.between(both.ci_low_first, both.ci_high_first)
    both["first_in_second_interval"] = paired & both.gain_first.between(both.ci_low_second, both.ci_high_second)
    return both


def claim_stability(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Two paper_claims tables, claim by claim: each side's verdict, whether they agree, and `opposite_verdicts`
    (one side "holds", the other "does not hold")."""
    both = _side_by_side(first[["claim", "verdict"]], second[["claim", "verdict"]], ["claim"])
    both["same_verdict"] = both.verdict_first.notna() & (both.verdict_first == both.verdict_second)
    pairs = zip(both.verdict_first, both.verdict_second)
    both["opposite_verdicts"] = [{x, y} == {"holds", "does not hold"} for x, y in pairs]
    return both
