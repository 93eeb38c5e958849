"""Toy noise schedules: SD's scaled-linear log-SNR, the resolution-matched one, and what diffusers stores."""

from __future__ import annotations

import numpy as np
import pytest
from diffusers import DDIMScheduler

from inpo_bench.models.tiny import build_scheduler
from inpo_bench.toyworld import schedule

TOY = {"train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02}


def test_scaled_linear_is_diffusers_and_has_the_snr_the_issue_quotes():
    ours = schedule.scaled_linear()
    theirs = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-5)
    snr = np.exp(schedule.log_snr(ours))
    assert snr[500] == pytest.approx(0.38, abs=0.005) and snr[900] == pytest.approx(0.014, abs=0.0005)
    linear = np.exp(schedule.log_snr(schedule.linear(1000, 0.0001, 0.02)))
    assert linear[500] == pytest.approx(0.084, abs=0.001) and linear[900] == pytest.approx(0.0003, abs=0.00005)


def test_sd_matched_raises_sds_snr_by_the_resolution_factor_and_ends_at_sds_terminal_snr():
    matched, sd = schedule.sd_matched(16, taper_from=0.8), schedule.scaled_linear()
    shift = schedule.log_snr(matched) - schedule.log_snr(sd)
    body = np.arange(1000) <= 0.8 * 999
    np.testing.assert_allclose(shift[body], 2 * np.log(4), rtol=1e-12)  # SNR x (64 / 16)^2 = 16
    assert np.exp(schedule.log_snr(matched)[500]) == pytest.approx(16 * np.exp(schedule.log_snr(sd)[500]))
    assert shift[-1] == pytest.approx(0, abs=1e-12) and (np.diff(shift[~body]) < 0).all()
    assert (np.diff(schedule.log_snr(matched)) < 0).all()
    np.testing.assert_allclose(schedule.sd_matched(64), sd, rtol=1e-12)  # at SD's own latent size: SD
    with pytest.raises(ValueError, match="taper_from"):
        schedule.sd_matched(16, taper_from=1.0)


def test_betas_rebuild_the_schedule_and_the_scheduler_stores_them():
    matched = schedule.sd_matched(16)
    betas = schedule.betas(matched)
    assert ((betas > 0) & (betas < 1)).all()
    np.testing.assert_allclose(np.cumprod(1 - betas), matched, rtol=1e-12)
    stored = build_scheduler({**TOY, "beta_schedule": "sd_matched"}, 16)
    np.testing.assert_allclose(stored.alphas_cumprod.double().numpy(), matched, rtol=1e-4)
    named = build_scheduler({**TOY, "beta_schedule": "linear"}, 16)
    np.testing.assert_allclose(named.alphas_cumprod.double().numpy(), schedule.linear(1000, 0.0001, 0.02), rtol=1e-4)
    with pytest.raises(ValueError, match="decrease"):
        schedule.betas(np.array([0.9, 0.95]))


def test_sd_equivalent_timesteps_match_sds_information_by_brute_force():
    toy = schedule.linear(1000, 0.0001, 0.02)
    mapped = schedule.sd_equivalent_timesteps(toy, 16)
    # independently: for each SD timestep, the toy SNR nearest (in log) to SD's SNR x (64 / 16)^2
    sd_snr = np.exp(schedule.log_snr(schedule.scaled_linear())) * 16
    toy_snr = np.exp(schedule.log_snr(toy))
    brute = np.abs(np.log(toy_snr)[None, :] - np.log(sd_snr)[:, None]).argmin(axis=1)
    np.testing.assert_array_equal(mapped, brute)
    assert mapped[0] == 0 and mapped[500] == 118 and mapped[999] == 511  # the values the docstring quotes
    assert (np.diff(mapped) >= 0).all()
    # SD's own schedule at SD's latent size maps onto itself
    np.testing.assert_array_equal(schedule.sd_equivalent_timesteps(schedule.scaled_linear(), 64), np.arange(1000))
    # a toy schedule that keeps more signal than SD's noisiest latents: its last timestep stands for SD's last ones
    gentle = schedule.linear(1000, 0.0001, 0.004)
    brute = np.abs(schedule.log_snr(gentle)[None, :] - np.log(sd_snr)[:, None]).argmin(axis=1)
    np.testing.assert_array_equal(schedule.sd_equivalent_timesteps(gentle, 16), brute)
    assert brute[-1] == 999
    with pytest.raises(ValueError, match="decrease"):
        schedule.sd_equivalent_timesteps(np.concatenate([toy[:998], [0.5, 0.6]]), 16)
    with pytest.raises(ValueError, match="has 500 timesteps"):
        schedule.sd_equivalent_timesteps(schedule.linear(500, 0.0001, 0.02), 16)
