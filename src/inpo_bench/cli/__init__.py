"""`inpo-bench <stage>`: what the Snakemake rules call, one subcommand per stage.

Each stage's commands live beside the stage they serve: cli/data.py, train.py, sample.py, score.py, report.py,
study.py.
Rules pass their config section as a JSON string (`--spec`), so a stage reruns only when its own settings
change. Heavy imports (torch, diffusers) happen inside the handlers, so light stages start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import data, report, sample, score, study, train, world

STAGES = (data, train, sample, score, world, report, study)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpo-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(handler=handler)
        return p

    for stage in STAGES:
        stage.register(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    # job logs should hold the stage's own lines, not hub progress bars and advisory warnings
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    from ..errors import InpoBenchError

    try:
        args.handler(args)
    except InpoBenchError as error:
        print(f"inpo-bench {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
