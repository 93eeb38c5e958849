import json
import os
import shlex
import sys

# Jobs run this checkout's package, installed or not (a conda environment from envs/ holds only dependencies),
# so a stale install can never answer for the code here.
SRC = os.path.join(REPO, "src")
sys.path.insert(0, SRC)
# (the prefix is formatted like a shell command, hence the doubled braces)
shell.prefix("export PYTHONPATH=" + shlex.quote(SRC) + "${{PYTHONPATH:+:$PYTHONPATH}}; ")

from inpo_bench.config import ConfigError, validate_config
from inpo_bench.scorers import ORACLE_SCORERS

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

OUT = f"results/{config['run']}"
ENV = f"../../envs/{config['software_env']}.yaml"
MODELS = ["base"]
PROMPTSETS = config["eval"]["promptsets"]
SCORERS = config["eval"]["scorers"]


wildcard_constraints:
    model=r"[A-Za-z0-9_.~/-]+",
    promptset=r"[^/]+",
    scorer=r"[^/]+",


def folder(name):
    """A params function: the directory of the named input or output file."""
    kind, key = name.split(".")
    return lambda wc, input, output: os.path.dirname(
        getattr({"input": input, "output": output}[kind], key)
    )


def spec(**sections):
    """A stage's settings as one JSON argument; a change reruns only the rules whose sections changed."""
    return json.dumps(sections, sort_keys=True)
