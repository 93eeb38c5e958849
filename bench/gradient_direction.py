"""Does a method's full-batch gradient point toward a higher true reward? A toy-world probe for issue 13.

The toy study finds no method above its base, and `config/probes/` shows that neither more pair-visits, cleaner
labels, low timesteps nor a smaller beta changes that. Two explanations remain: the minibatch gradient is too noisy
(more compute would fix it), or the objective's direction itself does not raise the true reward in this world. This
probe separates them. It averages each method's gradient at the base over every pair of the preference set and
`--draws` (t, noise) draws, so little minibatch noise is left, and moves every weight of the base by the same size
along the negated sign of that gradient (the direction of Adam's first steps: `--sizes` a is what a/lr Adam steps
at a steady gradient would move a weight). At each size it measures the oracle's mean reward on `--prompts`
toy_seen prompts (their own noise seed), beside `--controls` random sign directions of the same size. It also
prints how often the sign of one training minibatch's gradient (the method's `pairs_per_step` pairs, one draw)
agrees with the full-batch sign: 50% would be no information per step. Gradients are taken with the UNet in eval
mode; the toy UNet has no dropout, so that is the gradient the trainer sees. Run from the repository root after
`snakemake --cores 2` has built the base and the pairs (`--configfile` a probe's overlay; `--run` another results
directory than the overlay's run):

    python bench/gradient_direction.py --methods dpo inpo sft

`--direction raw` moves along the gradient itself, rescaled to the same root-mean-square move per weight, instead
of its sign (the random controls stay sign directions; a sign move leaves weights whose gradient is exactly 0 in
place, so its root-mean-square move is then a little below the size). `--half winner` or `loser` keeps one of a
DPO-family loss's two terms (fitting the winners, pushing the losers away) to tell which of them sets the
direction; `--split` prints the two terms' gradient norms and cosine instead of moving the weights. Seen on 2
cores (2026-12-06, about 8 minutes): the tables in config/probes/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.data.order import example_generators  # noqa: E402
from inpo_bench.data.pair_scores import PairScores  # noqa: E402
from inpo_bench.data.pairs import load_pair_data  # noqa: E402
from inpo_bench.methods import Context, get  # noqa: E402
from inpo_bench.models.bundle import load_model  # noqa: E402
from inpo_bench.scorers.oracle import OracleProgress  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402


def summed_gradient(objective, pairs: np.ndarray, draws: int, batch: int, seed: int) -> list[torch.Tensor]:
    """The loss gradient summed over `pairs` and `draws` (t, noise) draws per pair, at the current weights, one
    tensor per UNet parameter (load_model leaves every one trainable)."""
    params = list(objective.policy.parameters())
    for p in params:
        p.grad = None
    for d in range(draws):
        for start in range(0, len(pairs), batch):
            idx = pairs[start : start + batch]
            drawn = objective.draw(objective.source.fetch(idx), example_generators(seed + d, idx), idx)
            loss, _ = objective(**drawn)
            (loss * len(idx)).backward()
    return [p.grad.detach().clone() for p in params]


def keep_one_half(objective, half: str) -> None:
    """Replace a DPO-family objective's loss by one of its two terms. For DPO and InPO (one beta for every pair, the
    -logsigmoid of losses.preference_logits) at the base the policy is its reference, every pair's logit is 0, and
    the loss's gradient is beta / 4 times that of mean(m_w) - mean(m_l) (m: a pair side's MSE to its target),
    whatever beta is; SmPO's per-pair beta weighs the pairs, DSPO's loss differs. `winner` keeps mean(m_w) (fit the
    winners, SFT-like, at the method's own x_t and target), `loser` keeps -mean(m_l) (push the losers away)."""
    if objective.name not in ("dpo", "inpo") or getattr(objective, "safeguard_mu", None) is not None:
        raise SystemExit(
            f"--half and --split take dpo or inpo (no safeguard), whose loss is the two terms; not {objective.name!r}"
        )

    def loss(pred, ref, target, model_mse, ref_mse, beta):
        b = len(pred) // 2
        part = model_mse[:b] if half == "winner" else -model_mse[b:]
        return part.mean(), torch.zeros(b), {}

    objective.loss = loss


def print_split(objective, name: str, pairs: np.ndarray, draws: int, batch: int, clock: float) -> None:
    """The two halves' full-batch gradients (keep_one_half): their norms, their cosine, and the share of weights on
    which the loser half is the larger in magnitude, so it sets the sign of the sum."""
    halves = {}
    for half in ("winner", "loser"):
        keep_one_half(objective, half)
        halves[half] = summed_gradient(objective, pairs, draws, batch, seed=1000)
    w, lo = (torch.cat([x.flatten().double() for x in halves[h]]) for h in ("winner", "loser"))
    cosine = float(w @ lo / (w.norm() * lo.norm()))
    larger = float((lo.abs() > w.abs()).double().mean())
    print(
        f"{name:<14} |winner| {float(w.norm()):.4g}  |loser| {float(lo.norm()):.4g}  cosine {cosine:+.3f}  the loser "
        f"half larger on {larger:.1%} of the weights   ({time.perf_counter() - clock:.0f} s)",
        flush=True,
    )


def sign_agreement(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Share of weights whose gradients in a and b have the same sign."""
    same = sum(float((x.sign() == y.sign()).sum()) for x, y in zip(a, b))
    return same / sum(x.numel() for x in a)


def descent(gradient: list[torch.Tensor], kind: str) -> list[torch.Tensor]:
    """The descent direction with a root-mean-square of 1 per weight: the negated sign, or the negated gradient
    rescaled (moving by `size` along it moves the weights as far, in L2, as the sign move of that size)."""
    if kind == "sign":
        return [-x.sign() for x in gradient]
    count = sum(x.numel() for x in gradient)
    rms = (sum(float((x.double() ** 2).sum()) for x in gradient) / count) ** 0.5
    return [-x / rms for x in gradient]


def method_pair_scores(run: Path, name: str, cfg: dict) -> PairScores | None:
    """The pairs as the method's label scorer scored them (the score_pairs rule's output), for methods that read
    them (SmPO); None for the others."""
    if not get(name).pair_scores:
        return None
    scores = run / "data" / "pair_scores" / f"{cfg['label_scorer']}.parquet"
    if not scores.exists():
        raise SystemExit(f"{scores} is missing, which {name} needs: run `snakemake --cores 2 {scores}` first")
    return PairScores(scores, run / "data" / "pairs.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="the run's results directory (default: results/<config run>)")
    parser.add_argument("--configfile", default=None, help="the overlay the run was made with (a probe's)")
    parser.add_argument("--methods", nargs="+", default=["dpo", "inpo", "sft"])
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--controls", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--sizes", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4, 1e-3])
    parser.add_argument(
        "--direction",
        choices=["sign", "raw"],
        default="sign",
        help="sign: every weight moves by the size (Adam's first steps); raw: along the gradient itself, scaled to "
        "the same root-mean-square move per weight (plain gradient descent)",
    )
    parser.add_argument(
        "--half",
        choices=["both", "winner", "loser"],
        default="both",
        help="both: the method's loss; winner / loser: one of its two terms (dpo and inpo only)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="instead of moving the weights, compare a DPO-family loss's two halves' full-batch gradients",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(REPO / "config" / "config.yaml", *([args.configfile] if args.configfile else []))
    run = Path(args.run) if args.run else REPO / "results" / config["run"]
    world = World.load(run / "world.json")
    base = load_model(run / "models" / "base")
    progress = {k: config["progress_eval"][k] for k in ("steps", "guidance")}
    measure = OracleProgress(base, world, args.prompts, args.seed, **progress)
    params = list(base.unet.parameters())
    start_weights = [p.detach().clone() for p in params]

    def reward_along(direction: list[torch.Tensor], size: float) -> float:
        try:
            with torch.no_grad():
                for p, w, d in zip(params, start_weights, direction):
                    p.copy_(w + size * d)
            return measure(0)["reward"]
        finally:  # the next method's reference is copied from these weights
            with torch.no_grad():
                for p, w in zip(params, start_weights):
                    p.copy_(w)

    pair_scores = {name: method_pair_scores(run, name, config[name]) for name in args.methods}  # before any work
    start = 0.0 if args.split else measure(0)["reward"]  # --split moves no weights: nothing to measure
    if not args.split:
        print(f"base: reward {start:.4f} on {args.prompts} prompts (seed {args.seed}); {args.direction} directions")
        print("size           " + "  ".join(f"{s:>8.0e}" for s in args.sizes))
    for c in range(0 if args.split else args.controls):
        g = torch.Generator().manual_seed(c)
        random = [torch.randn(w.shape, generator=g).sign() for w in start_weights]
        print(f"random {c:<7} " + "  ".join(f"{reward_along(random, s) - start:+.4f}" for s in args.sizes), flush=True)
    # encoded once for every method: one that reads only the winners (SFT) ignores the losers
    data = load_pair_data(run / "data" / "pairs.parquet", base, losers=True)
    for name in args.methods:
        clock = time.perf_counter()
        cfg = config[name]  # caption dropout included: the draws are seeded, so the gradient is fixed
        objective = get(name).build(Context(base.unet, data, cfg, base, pair_scores=pair_scores[name]))
        assert objective.policy is base.unet
        every = np.arange(len(data))
        if args.split:
            print_split(objective, name, every, args.draws, cfg["batch_size"], clock)
            continue
        label = name
        if args.half != "both":
            keep_one_half(objective, args.half)
            label = f"{name} ({args.half})"
        full = summed_gradient(objective, every, args.draws, cfg["batch_size"], seed=1000)
        step = np.random.default_rng(0).choice(every, cfg["pairs_per_step"], replace=False)
        agree = sign_agreement(summed_gradient(objective, step, 1, cfg["batch_size"], seed=2000), full)
        gains = [reward_along(descent(full, args.direction), s) - start for s in args.sizes]
        print(
            f"{label:<14} " + "  ".join(f"{x:+.4f}" for x in gains) + f"   ({time.perf_counter() - clock:.0f} s; one "
            f"{cfg['pairs_per_step']}-pair step's gradient has the full-batch sign on {agree:.1%} of the weights)",
            flush=True,
        )


if __name__ == "__main__":
    main()
