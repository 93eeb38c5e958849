"""Result tables, as long-format CSV and readable Markdown: mean scores (scores.py), win rates (wins.py), the toy
world's training curves and claims (curves.py), ablation tables (ablation.py), the paper comparison (paper.py),
the models and the sampler they share (models.py), a learned scorer against the oracle (agreement.py)."""

from .ablation import ablation_markdown, ablation_parameters, ablation_table
from .agreement import scorer_agreement
from .curves import steps_to_reach, toy_claims, training_curves
from .models import model_table, models_markdown, sampler_settings
from .paper import independent_comparison, paper_comparison
from .scores import (
    cluster_bootstrap_mean,
    frame_markdown,
    markdown_table,
    mean_scores,
    mean_scores_markdown,
    read_scores,
)
from .wins import paired_outcomes, win_rate, win_rates, win_rates_markdown

__all__ = [
    "ablation_markdown",
    "ablation_parameters",
    "ablation_table",
    "cluster_bootstrap_mean",
    "frame_markdown",
    "independent_comparison",
    "markdown_table",
    "mean_scores",
    "mean_scores_markdown",
    "model_table",
    "models_markdown",
    "paired_outcomes",
    "paper_comparison",
    "read_scores",
    "sampler_settings",
    "scorer_agreement",
    "steps_to_reach",
    "toy_claims",
    "training_curves",
    "win_rate",
    "win_rates",
    "win_rates_markdown",
]
