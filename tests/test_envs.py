"""The conda environments of `--software-deployment-method conda` are generated from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import REPO


def check(root):
    return subprocess.run(
        [sys.executable, str(root / "envs" / "generate.py"), "--check"], capture_output=True, text=True
    )


def test_env_files_match_pyproject():
    result = check(REPO)
    assert result.returncode == 0, result.stdout


def test_a_dependency_missing_from_an_env_file_fails_the_check(tmp_path):
    (tmp_path / "envs").mkdir()
    for name in ("envs/generate.py", "envs/cpu.yaml", "envs/cuda.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    assert check(tmp_path).returncode == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('  "pyyaml>=6",\n', '  "pyyaml>=6",\n  "regex>=2024",\n'))
    result = check(tmp_path)
    assert result.returncode == 1 and "envs/cpu.yaml, envs/cuda.yaml differ" in result.stdout
    subprocess.run([sys.executable, str(tmp_path / "envs" / "generate.py")], check=True)
    assert "      - regex>=2024\n" in (tmp_path / "envs" / "cuda.yaml").read_text()
    assert check(tmp_path).returncode == 0
    # every runtime dependency reaches the jobs' environments, the scheduler does not
    text = (tmp_path / "envs" / "cpu.yaml").read_text()
    assert "ftfy==6.3.1" in text and "snakemake" not in text.split("dependencies:")[1]


def test_records_name_the_code_commit_and_the_machine():
    import torch  # noqa: F401  (the machine's torch part is recorded once torch is imported)

    from inpo_bench.runtime import provenance

    record = provenance(x=1)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (CI's is): the commit it runs from
        assert record["code"]["commit"] == head.stdout.strip() and isinstance(record["code"]["dirty"], bool)
    assert record["code"]["package"] == record["versions"]["inpo-bench"]
    machine = record["machine"]
    assert machine["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "NEON", "SVE256"}
    assert (machine["gpu"], machine["gpus_visible"]) == (None, []) or "tf32" in machine
