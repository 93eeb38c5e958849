"""Method objectives on a tiny random model: what each draws, what it regresses onto, and the loss at init."""

import math

import numpy as np
import pytest
import torch

from inpo_bench.data.order import example_generators
from inpo_bench.data.pairs import PairData
from inpo_bench.diffusion import add_noise
from inpo_bench.methods import Context, get
from inpo_bench.methods.dpo import DPO, dpo_loss
from inpo_bench.methods.inpo import InPO, inpo_target
from inpo_bench.methods.inversion import InversionSettings, invert
from inpo_bench.methods.losses import per_sample_mse
from inpo_bench.methods.objectives import plain_eps
from inpo_bench.methods.sft import SFT
from inpo_bench.models.bundle import load_model
from tests.conftest import REPO


def draw(objective, seed, indices=None):
    """A micro-batch as the trainer draws it: pairs `indices` (default: the first batch_size, wrapping), one
    generator per pair."""
    n = objective.batch_size
    indices = torch.arange(n) % len(objective.data) if indices is None else torch.as_tensor(indices)
    fetched = objective.source.fetch(indices.numpy())
    return objective.draw(fetched, example_generators(seed, range(len(indices))), indices.numpy())


@pytest.fixture()
def model(tiny_model_dir):
    return load_model(tiny_model_dir)


@pytest.fixture()
def data(model):
    g = torch.Generator().manual_seed(0)
    n = 6
    captions = ["a red circle on a blue background", "a green square on a white background"]
    return PairData(
        x0_w=torch.rand(n, 1, 3, 16, 16, generator=g) * 2 - 1,
        x0_l=torch.rand(n, 1, 3, 16, 16, generator=g) * 2 - 1,
        context=model.encode_prompts(captions),
        caption_index=torch.tensor([0, 1, 0, 1, 0, 1]),
        empty=model.encode_prompts([""])[0],
    )


def test_dpo_shares_t_and_noise_and_starts_at_log2(model, data):
    objective = DPO(model.unet, 2000.0, data=data, abar=model.alphas_cumprod, batch_size=4, caption_dropout=0.0)
    batch = draw(objective, 1)
    assert batch["noise"].shape == batch["x0_w"].shape == (4, 3, 16, 16) and batch["t"].shape == (4,)
    loss, metrics = objective(**batch)
    # the reference is a copy of the policy, so every logit is 0 and the loss is log 2
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert metrics["implicit_acc"] == 0.0
    assert float(metrics["model_mse"]) == pytest.approx(float(metrics["ref_mse"]), rel=1e-5)
    # the loss is Diffusion-DPO's on x_t = add_noise(x0, shared eps, t), recomputed here independently
    with torch.no_grad():
        objective.policy.conv_out.bias.add_(0.05)  # move the policy away from the reference
        loss, metrics = objective(**batch)
        x0 = torch.cat([batch["x0_w"], batch["x0_l"]])
        t = batch["t"].repeat(2)
        eps = batch["noise"].repeat(2, 1, 1, 1)
        x_t = add_noise(x0, eps, model.alphas_cumprod[t])
        ctx = batch["context"].repeat(2, 1, 1)
        m = per_sample_mse(objective.policy(x_t, t, encoder_hidden_states=ctx).sample, eps)
        r = per_sample_mse(objective.reference(x_t, t, encoder_hidden_states=ctx).sample, eps)
        expected, _ = dpo_loss(m[:4], m[4:], r[:4], r[4:], 2000.0)
    assert loss.item() == pytest.approx(expected.mean().item(), rel=1e-5)


def test_caption_dropout_uses_the_empty_prompt(model, data):
    objective = DPO(model.unet, 1.0, data=data, abar=model.alphas_cumprod, batch_size=64, caption_dropout=0.5)
    context = draw(objective, 2)["context"]
    empty = (context == data.empty).all(dim=(1, 2))
    assert 0.3 < empty.float().mean() < 0.7
    assert not (context[~empty] == data.empty).all(dim=(1, 2)).any()


def test_inpo_regresses_onto_tau_of_the_inverted_latent(model, data):
    settings = InversionSettings()
    objective = InPO(
        model.unet, 2000.0, settings, data=data, abar=model.alphas_cumprod, batch_size=3, caption_dropout=0.0
    )
    batch = draw(objective, 3)
    assert batch["eta_noise"].shape == (10, 6, 3, 16, 16) and "noise" not in batch
    loss, metrics = objective(**batch)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    t = batch["t"].repeat(2)
    x0 = torch.cat([batch["x0_w"], batch["x0_l"]])
    ctx = batch["context"].repeat(2, 1, 1)
    with torch.no_grad():
        x_t, evaluations = invert(
            lambda x, ts, i: model.unet(x, ts, encoder_hidden_states=ctx[i]).sample,
            x0,
            t,
            model.alphas_cumprod,
            settings,
            batch["eta_noise"],
        )
        tau = inpo_target(x_t, x0, model.alphas_cumprod[t])
        m = per_sample_mse(model.unet(x_t, t, encoder_hidden_states=ctx).sample, tau)
    assert metrics["model_mse"] == pytest.approx(m.mean().item(), rel=1e-5)
    assert metrics["inversion_evals"] == evaluations


def test_inpo_can_invert_with_the_reference(model, data):
    objective = InPO(
        model.unet,
        2000.0,
        InversionSettings(model="reference", guidance=3.0),
        data=data,
        abar=model.alphas_cumprod,
        batch_size=2,
        caption_dropout=0.0,
        t_min=100,
        t_max=300,
    )
    batch = draw(objective, 4)
    assert batch["t"].min() >= 100 and batch["t"].max() <= 300
    calls = []
    original = objective.reference.forward
    objective.reference.forward = lambda *a, **k: calls.append(a[0].shape[0]) or original(*a, **k)
    objective(**batch)
    # CFG doubles every inversion call; the last reference call is the loss's reference pass on all 4 images
    assert calls[-1] == 4 and all(c % 2 == 0 for c in calls[:-1]) and len(calls) > 1


def test_sft_trains_on_winners(model, data):
    objective = SFT(model.unet, data, model.alphas_cumprod, batch_size=4, caption_dropout=0.0)
    batch = draw(objective, 5)
    assert all(torch.equal(batch["x0"][i], data.x0_w[i, 0]) for i in range(4))
    assert not any(torch.equal(batch["x0"][0], w) for w in data.x0_l[:, 0])
    loss, metrics = objective(**batch)
    assert loss.requires_grad and metrics["model_mse"] == pytest.approx(loss.item())
    assert set(objective.trainable_modules()) == {"unet"}


def test_reference_is_frozen_and_outside_the_optimiser(model, data):
    objective = DPO(model.unet, 1.0, data=data, abar=model.alphas_cumprod, batch_size=2, caption_dropout=0.0)
    assert not any(p.requires_grad for p in objective.reference.parameters())
    trainable = {id(p) for m in objective.trainable_modules().values() for p in m.parameters()}
    assert trainable.isdisjoint(id(p) for p in objective.reference.parameters())
    with pytest.raises(ValueError, match="timestep range"):
        DPO(model.unet, 1.0, data=data, abar=model.alphas_cumprod, batch_size=2, caption_dropout=0.0, t_max=1000)


# --- the registry and every method's objective ------------------------------------------------------------------

ZOO = ["sft", "dpo", "inpo", "kto", "smpo", "mapo", "dspo"]


def test_the_registry_drives_the_schema_the_cli_and_the_default_config(default_config):
    from inpo_bench.cli import build_parser
    from inpo_bench.config import schema
    from inpo_bench.methods import names

    assert names() == ZOO
    properties = schema()["properties"]
    for name in ZOO:
        assert name in properties and name in schema()["required"] and name in default_config
        assert name in properties["ablations"]["properties"]
        assert set(get(name).schema) <= set(properties[name]["properties"])
    args = build_parser().parse_args(
        ["train", "--method", "kto", "--init", "i", "--pairs", "p", "--spec", "{}", "--out", "o", "--scratch", "s"]
    )
    assert args.method == "kto"
    with pytest.raises(ValueError, match=r"unknown method 'ipo'; known: \['sft'"):
        get("ipo")


class FakeScores:
    def __init__(self, w, l):
        self.w, self.l = np.asarray(w, float), np.asarray(l, float)

    def range(self):
        return float(min(self.w.min(), self.l.min())), float(max(self.w.max(), self.l.max()))


def build_method(name, model, data, scores=None, reference_dtype=None, **overrides):
    from inpo_bench.config import load_config

    config = load_config(REPO / "config" / "config.yaml")
    cfg = {**config[name], "batch_size": 4, "caption_dropout": 0.0, **overrides}
    scores = scores or FakeScores([0.2, 0.1, 0.3, 0.1, 0.2, 0.2], [0.1, 0.3, 0.1, 0.2, 0.2, 0.25])
    return get(name).build(Context(model.unet, data, cfg, model, reference_dtype, pair_scores=scores))


def test_sd_snr_sampling_trains_at_the_mapped_timesteps_of_the_same_draws(model, data):
    from inpo_bench.toyworld.schedule import sd_equivalent_timesteps

    uniform = build_method("dpo", model, data, batch_size=6)
    mapped = build_method("dpo", model, data, batch_size=6, t_sampling="sd_snr")
    drawn, trained = draw(uniform, 3)["t"], draw(mapped, 3)["t"]
    table = sd_equivalent_timesteps(model.alphas_cumprod.double().numpy(), model.resolution)
    assert trained.tolist() == table[drawn.numpy()].tolist() and trained.tolist() != drawn.tolist()
    assert draw(uniform, 3)["noise"].equal(draw(mapped, 3)["noise"])  # the other draws are untouched
    with pytest.raises(ValueError, match="t_table must map each of the 1000 timesteps"):
        DPO(
            model.unet,
            1.0,
            data=data,
            abar=model.alphas_cumprod,
            batch_size=2,
            caption_dropout=0.0,
            t_table=torch.arange(500),
        )


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.fixture()
def trained_model(model):
    """The tiny model with every weight moved off its initial value, as an SFT initialisation is: its GroupNorm and
    LayerNorm scales are no longer 1 (exact in half precision), so a reference whose norms were rounded to half
    precision would disagree with the float32 policy at step 0 (the paper path's bf16 InPO gap)."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    return model


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", ZOO)
def test_every_method_starts_at_its_known_value(trained_model, data, name, precision):
    """At step 0 (policy == reference) under CPU autocast at each training precision, with the reference stored as
    the trainer stores it under mixed precision."""
    dtype = PRECISIONS[precision]
    objective = build_method(name, trained_model, data, reference_dtype=dtype)
    batch = draw(objective, 7, indices=[0, 1, 2, 3])
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        loss, metrics = objective(**batch)
    assert loss.dtype == torch.float32 and loss.requires_grad and math.isfinite(loss.item())
    # metrics stay on the device as 0-dim tensors (the trainer syncs once per step); inversion_evals is a host count
    assert all(torch.is_tensor(v) and v.ndim == 0 for k, v in metrics.items() if k != "inversion_evals"), metrics
    if hasattr(objective, "reference"):  # the two UNets compute the same function: every logit is exactly 0
        assert metrics["model_mse"] == metrics["ref_mse"]
    if name in ("dpo", "inpo", "smpo"):
        assert loss.item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference: every logit is 0
        assert metrics["implicit_acc"] == 0.0
    elif name == "kto":
        assert loss.item() == pytest.approx(0.5, abs=1e-6)  # utility sigmoid(0) for every image, lambda 1
    elif name == "mapo":
        assert not hasattr(objective, "reference")  # reference-free: no second UNet (value: the test below)
    elif name == "dspo":  # the toy's sdxl form: no policy-reference gap (< 0.1), so mean (1 - sigmoid(0))^2
        assert objective.variant == "sdxl" and loss.item() == pytest.approx(0.25, abs=1e-6)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.policy.parameters())


def test_a_reference_in_half_precision_keeps_its_norms_in_float32(trained_model, data):
    """Only the layers autocast casts anyway are stored in half; rounding the norms too is what made the policy
    and the reference disagree (the official scripts' `ref_unet.to(weight_dtype)`), shown here by doing it."""
    objective = build_method("inpo", trained_model, data, reference_dtype=torch.bfloat16)
    dtypes = {type(m).__name__: p.dtype for m in objective.reference.modules() for p in m.parameters(recurse=False)}
    assert dtypes["Conv2d"] == dtypes["Linear"] == torch.bfloat16
    assert dtypes["GroupNorm"] == dtypes["LayerNorm"] == torch.float32
    objective.reference.to(torch.bfloat16)  # the whole module in bf16, as the official code casts it
    batch = draw(objective, 7, indices=[0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, metrics = objective(**batch)
    assert metrics["model_mse"] != metrics["ref_mse"] and abs(loss.item() - math.log(2)) > 1e-4


def test_mapo_reduces_in_float32_under_autocast(trained_model, data):
    """The per-sample MSEs and the loss are float32 reductions of the half-precision predictions: recomputed
    here in float64 from the same predictions."""
    from inpo_bench.methods.mapo import mapo_loss

    objective = build_method("mapo", trained_model, data)
    batch = draw(objective, 3, indices=[0, 1, 2, 3])
    x0 = torch.cat([batch["x0_w"], batch["x0_l"]])
    t, eps = batch["t"].repeat(2), batch["noise"].repeat(2, 1, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = objective(**batch)
        with torch.no_grad():
            pred = objective.policy(
                add_noise(x0, eps, trained_model.alphas_cumprod[t]),
                t,
                encoder_hidden_states=batch["context"].repeat(2, 1, 1),
            ).sample
    assert pred.dtype == torch.bfloat16 and loss.dtype == torch.float32
    m = (pred.double() - eps.double()).pow(2).flatten(1).mean(1)
    expected, _ = mapo_loss(m[:4], m[4:], 0.1, 0.5, 1000)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_dspo_sd15_form_starts_at_the_winners_denoising_loss(model, data):
    objective = build_method("dspo", model, data, variant="sd15", beta=0.001)
    batch = draw(objective, 7, indices=[0, 1, 2, 3])
    loss, _ = objective(**batch)
    x_t = add_noise(batch["x0_w"], batch["noise"], model.alphas_cumprod[batch["t"]])
    with torch.no_grad():  # policy == reference: the correction term vanishes
        pred = objective.policy(x_t, batch["t"], encoder_hidden_states=batch["context"]).sample
    assert loss.item() == pytest.approx(per_sample_mse(pred, batch["noise"]).mean().item(), rel=1e-5)


def test_mapo_value_at_init_by_recomputation(model, data):
    from inpo_bench.methods.mapo import mapo_loss

    objective = build_method("mapo", model, data)
    batch = draw(objective, 3, indices=[0, 1, 2, 3])
    loss, _ = objective(**batch)
    x0 = torch.cat([batch["x0_w"], batch["x0_l"]])
    t, eps = batch["t"].repeat(2), batch["noise"].repeat(2, 1, 1, 1)
    with torch.no_grad():
        pred = objective.policy(
            add_noise(x0, eps, model.alphas_cumprod[t]), t, encoder_hidden_states=batch["context"].repeat(2, 1, 1)
        ).sample
    m = per_sample_mse(pred, eps)
    expected, _ = mapo_loss(m[:4], m[4:], 0.1, 0.5, 1000)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_smpo_orders_pairs_by_the_label_scorer_and_scales_beta(model, data):
    objective = build_method("smpo", model, data)
    batch = draw(objective, 1, indices=[0, 1, 2, 3])
    # pairs 1 and 3 score their loser higher: the label scorer's order replaces the human one
    for i, swapped in enumerate([False, True, False, True]):
        expected = data.x0_l[i, 0] if swapped else data.x0_w[i, 0]
        assert torch.equal(batch["x0_w"][i], expected), i
    assert (batch["label_scale"] > 0).all() and batch["t"].shape == (4,) and "eta_noise" not in batch
    assert objective.inversion.renoise and objective.inversion.steps == 5


def test_kto_draws_desirable_images_at_its_ratio(model, data):
    objective = build_method("kto", model, data, batch_size=64)
    batch = draw(objective, 2, indices=list(range(6)) * 11)
    share = batch["desirable"][:64].float().mean().item()
    assert 0.65 < share < 0.95  # desirable_ratio 0.8
    for i, desirable in enumerate(batch["desirable"][:6]):
        source = data.x0_w if desirable else data.x0_l
        assert torch.equal(batch["x0"][i], source[i, 0])


def test_the_sdpo_safeguard_only_rescales_the_loser_gradient(model, data):
    plain, guarded = build_method("dpo", model, data), build_method("dpo", model, data, safeguard_mu=0.5)
    with torch.no_grad():
        for a, b in zip(plain.policy.parameters(), guarded.policy.parameters()):
            assert a is b  # the same UNet: the two objectives differ in the loss only
        plain.policy.conv_out.bias.add_(0.05)
    batch = draw(plain, 4, indices=[0, 1, 2, 3])
    loss_plain, _ = plain(**batch)
    loss_guarded, metrics = guarded(**batch)
    assert loss_guarded.item() == pytest.approx(loss_plain.item(), rel=1e-6)  # the forward value is unchanged
    assert 0.0 <= metrics["loser_scale"] <= 1.0


# UNet forward-equivalents per micro-batch of B pairs, derived by hand: every image through a UNet is one, a
# backward through the trained UNet two more; inverting methods add their inversion's evaluations (all policy
# passes without gradient, one each)
HAND_COUNTED = {
    "sft": lambda b: 3 * b,  # the winners through the policy, forward and backward
    "dpo": lambda b: 2 * b * 3 + 2 * b,  # winners and losers: policy with backward, reference
    "inpo": lambda b: 8 * b,
    "smpo": lambda b: 8 * b,
    "dspo": lambda b: 8 * b,
    "kto": lambda b: 3 * b + b,  # one image per pair
    "mapo": lambda b: 2 * b * 3,  # reference-free
}


@pytest.mark.parametrize("name", ZOO)
def test_the_trainer_counts_every_unet_pass_of_a_step(model, data, name, tmp_path):
    from inpo_bench.train import TrainSettings, train

    objective = build_method(name, model, data, t_max=300)  # short inversions keep the test quick
    sampled = []

    def evaluate(step):  # the progress evaluation's passes are not training compute
        with torch.no_grad():
            sampled.append(
                model.unet(torch.zeros(5, 3, 16, 16), torch.tensor([10] * 5), data.context[[0, 1, 0, 1, 0]]).sample
            )
        return {"step": step}

    settings = TrainSettings(steps=2, lr=1e-5, examples_per_step=8, seed=1)  # 2 micro-batches of 4 per step
    log, _ = train(objective, settings, tmp_path, evaluate=evaluate, eval_every=1)
    assert len(sampled) == 3
    per_step = log.unet_forwards.diff().fillna(log.unet_forwards).to_numpy()
    inversion = 2 * log["inversion_evals"].to_numpy() if "inversion_evals" in log else 0.0
    np.testing.assert_allclose(per_step, 2 * HAND_COUNTED[name](4) + inversion, rtol=0, atol=1e-9)
    if name in ("inpo", "smpo"):
        assert (log["inversion_evals"] > 0).all()


def denoising_margin(policy, reference, data, alphas_cumprod, t_max, draws=8):
    """Mean over pairs and fixed (t, eps) draws, t <= t_max, of (m_w - r_w) - (m_l - r_l): how much better the policy
    denoises the winners than the losers relative to the reference. Written here from the UNets alone, independent of
    any method's loss: 0 when policy == reference, negative once the policy prefers the winners."""
    g = torch.Generator().manual_seed(123)
    x0_w, x0_l = data.x0_w[:, 0], data.x0_l[:, 0]
    ctx = data.context[data.caption_index]
    margins = []
    with torch.no_grad():
        for _ in range(draws):
            t = torch.randint(0, t_max + 1, (len(x0_w),), generator=g)
            eps = torch.randn(x0_w.shape, generator=g)
            mse = {}
            for name, unet in (("m", policy), ("r", reference)):
                for side, x0 in (("w", x0_w), ("l", x0_l)):
                    pred = plain_eps(unet, add_noise(x0, eps, alphas_cumprod[t]), t, ctx)
                    mse[name + side] = per_sample_mse(pred, eps)
            margins.append(((mse["mw"] - mse["rw"]) - (mse["ml"] - mse["rl"])).mean())
    return torch.stack(margins).mean().item()


def mean_loss(objective, seeds=range(4)):
    """The objective's own loss on fixed draws (same pairs, timesteps, noise for every call)."""
    with torch.no_grad():
        return float(np.mean([objective(**draw(objective, seed))[0].item() for seed in seeds]))


@pytest.mark.parametrize("name", ZOO)
def test_every_method_fits_six_pairs(model, data, name, tmp_path):
    """Each objective, trained 20 steps on six pairs, lowers its own loss on fixed draws: the trainer descends every
    method's objective. The methods that regress onto the forward noise (all but InPO and SmPO) must also make the
    policy denoise the winners better than the losers relative to where it started, a measure recomputed here from
    the UNets alone: a sign error in their loss or gradient rescale (KTO's detached reference point, SDPO's loser
    scale) fails it. InPO and SmPO regress onto DDIM-inverted latents instead; on these random images and a random
    UNet the inversions are far from Gaussian noise and their forward-noise margin is not theirs to move, so this
    test holds them to their own loss only (their loss values are checked by hand above and in test_losses.py)."""
    import copy

    from inpo_bench.train import TrainSettings, train

    t_max = 300  # short inversions keep the test quick
    agreeing = FakeScores([0.3] * 6, [0.1] * 6)  # SmPO's label scorer agrees with the labels here
    objective = build_method(name, model, data, scores=agreeing, batch_size=6, t_max=t_max)
    start, before = copy.deepcopy(model.unet), mean_loss(objective)
    train(objective, TrainSettings(steps=20, lr=3e-4, examples_per_step=6, seed=0), tmp_path)
    assert mean_loss(objective) < before
    if name not in ("inpo", "smpo"):
        assert denoising_margin(model.unet, start, data, model.alphas_cumprod, t_max) < 0


def test_pair_metrics_by_hand():
    from inpo_bench.methods.dpo import pair_metrics

    model = torch.tensor([0.30, 0.50, 0.40, 0.60], dtype=torch.float64)  # winners 0.30, 0.50; losers 0.40, 0.60
    ref = torch.tensor([0.40, 0.52, 0.45, 0.58], dtype=torch.float64)
    inside = torch.tensor([0.7, -0.2], dtype=torch.float64)
    got = {k: float(v) for k, v in pair_metrics(model, ref, inside).items()}
    assert got["winner_mse_gap"] == pytest.approx((-0.10 - 0.02) / 2)
    assert got["loser_mse_gap"] == pytest.approx((-0.05 + 0.02) / 2)
    assert got["reward_margin"] == pytest.approx(0.25) and got["implicit_acc"] == 0.5
    assert got["model_mse"] == pytest.approx(0.45) and got["ref_mse"] == pytest.approx(0.4875)


def test_a_dpo_log_carries_each_sides_gap_and_their_margin(model, data, tmp_path):
    """In a DPO run's train_log the margin is -0.5 beta (winner gap - loser gap), step by step (linear in the
    per-pair logits, so exact for a constant beta), and both gaps leave 0 once the policy has moved."""
    from inpo_bench.train import TrainSettings, train

    objective = build_method("dpo", model, data, batch_size=2, beta=500.0)
    settings = TrainSettings(steps=3, lr=1e-3, examples_per_step=4, seed=1)
    log, _ = train(objective, settings, tmp_path / "scratch")
    expected = -0.5 * 500.0 * (log.winner_mse_gap - log.loser_mse_gap)
    assert np.allclose(log.reward_margin, expected, rtol=1e-6, atol=1e-9)
    assert (log.winner_mse_gap.iloc[0], log.loser_mse_gap.iloc[0]) == (0.0, 0.0)  # step 1: policy == reference
    assert (log.winner_mse_gap.iloc[1:] != 0).all() and (log.loser_mse_gap.iloc[1:] != 0).all()
