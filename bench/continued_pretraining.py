"""Does fine-tuning the toy base lose true reward, preference or not? A toy-world probe for issue 13.

On the toy base of config/noisy-pixels.yaml every preference method and SFT lost true reward once they moved it
(config/probes/README.md). This probe trains the base on data no worse than what it was made from: its own
pretraining set (`--data pretraining`: the same images, nuisances and caption errors), or clean renders of the seen
compositions with right captions (`--data clean`: no nuisance, no wrong caption). It runs the methods' training
recipe (config section `--like`, default `sft`: steps, lr, warmup, AdamW, caption dropout, the UNet alone trains,
the text encoder stays frozen) with the denoising loss of pretraining, and measures the progress evaluation every
`eval_every` steps. Not taken from the section: its t_min / t_max / t_sampling (timesteps are uniform over the
schedule, as in pretraining), its train_seed and init (the run's seed, the base). If these curves fall as the
methods' do, the loss comes from moving the base at all, not from what the preference objectives ask. `--ema` keeps
an EMA of the weights (decay as given) and measures that instead. Run from the repository root after `snakemake
--cores 2` has built the base (`--configfile` an overlay: its run's base, unless `--run` says otherwise):

    python bench/continued_pretraining.py --data clean --lrs 1e-6 1e-5

Seen on 2 cores: the tables in config/probes/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config, toy_progress_eval  # noqa: E402
from inpo_bench.methods.objectives import Pretrain  # noqa: E402
from inpo_bench.models.bundle import load_model  # noqa: E402
from inpo_bench.scorers.oracle import OracleProgress  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402
from inpo_bench.train import TrainSettings, train  # noqa: E402


class UNetOnly(Pretrain):
    """Pretraining's denoising loss with the text encoder frozen, as the preference methods train."""

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="the run's results directory (default: results/<config run>)")
    parser.add_argument("--configfile", default=None, help="the overlay the run was made with (a probe's)")
    parser.add_argument("--data", choices=["pretraining", "clean"], default="pretraining")
    parser.add_argument("--like", default="sft", help="the config section whose training recipe is used")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-6, 1e-5])
    parser.add_argument("--steps", type=int, default=None, help="default: the section's")
    parser.add_argument("--ema", type=float, default=None, help="EMA decay of the trained weights (default: none)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_config(REPO / "config" / "config.yaml", *([args.configfile] if args.configfile else []))
    run = Path(args.run) if args.run else REPO / "results" / config["run"]
    cfg, pre, seed = config[args.like], config["pretrain"], config["seed"]
    world = World.load(run / "world.json")
    if args.data == "pretraining":
        images, captions = world.pretraining_set(pre["images"], pre["nuisance"], pre["wrong_caption_rate"], seed)
    else:  # other draws than the base's, from the same seen compositions
        clean = {k: 0.0 for k in pre["nuisance"]}
        images, captions = world.pretraining_set(pre["images"], clean, 0.0, seed + 1)
    steps = args.steps or cfg["steps"]
    for lr in args.lrs:
        clock = time.perf_counter()
        model = load_model(run / "models" / "base")
        model.text_encoder.requires_grad_(False)
        objective = UNetOnly(model, images, captions, cfg["caption_dropout"], cfg["batch_size"])
        progress = OracleProgress(model, world, **toy_progress_eval(config))
        settings = replace(
            TrainSettings.from_dict(cfg, seed), lr=lr, steps=steps, checkpoint_every=0, ema_decay=args.ema
        )
        with tempfile.TemporaryDirectory() as scratch:
            _, evals = train(objective, settings, scratch, evaluate=progress, eval_every=cfg["eval_every"])
        curve = " ".join(f"{r:.4f}" for r in evals.reward)
        noisy = " ".join(f"{n:.2f}" for n in evals.noisy)
        print(
            f"{args.data} lr {lr:.0e} ({time.perf_counter() - clock:.0f} s): reward at steps "
            f"{list(evals.step)}: {curve}; noisy {noisy}",
            flush=True,
        )


if __name__ == "__main__":
    main()
