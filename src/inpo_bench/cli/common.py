"""What every stage command module shares: JSON-object arguments and the `add` helper of the parser."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

Add = Callable[[str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser]


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object, e.g. a rule's config section passed as --spec."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--spec is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--spec must be a JSON object")
    return value
