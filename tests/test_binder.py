"""binder/: repo2docker's steps reproduced in a fresh venv, then the notebooks under strict nbval.

mybinder.org builds an image with repo2docker: it copies the repository, installs
``binder/requirements.txt`` with pip, runs ``binder/postBuild`` with bash from the repository root,
and starts JupyterLab. Docker is not available here, so this test does the same in a new venv
(pip's cache is reused) and runs ``notebooks/`` under strict nbval with the installed sanitize file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def test_binder_files():
    requirements = (BINDER / "requirements.txt").read_text(encoding="utf-8").lower()
    for name in ("dask", "distributed", "bokeh", "ipywidgets", "jupyterlab", "jupyter_bokeh"):
        assert f"\n{name}==" in requirements, name
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK)
    assert post_build.read_text(encoding="utf-8").startswith("#!/bin/bash")
    assert "pip install" in post_build.read_text(encoding="utf-8")
    assert (BINDER / "runtime.txt").read_text(encoding="utf-8").strip().startswith("python-3.")


def _run(command: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _copy_repository(target: Path) -> None:
    """What a clone holds: tracked files plus new files that are not ignored."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
@pytest.mark.binder
def test_repo2docker_steps_in_a_fresh_venv_then_nbval(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    repo, venv, home = tmp_path / "repo", tmp_path / "venv", tmp_path / "jupyter"
    repo.mkdir()
    _copy_repository(repo)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "NBEXEC_EXECUTOR")
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_DATA_DIR=str(home / "data"),  # no user-level kernelspecs or extensions
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    python = str(bin_dir / "python")
    # repo2docker: install the requirements, then run postBuild from the repository root.
    _run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env, 600)
    _run(["bash", "binder/postBuild"], repo, env, 300)

    # nbexec is installed (not imported from the copy) with its package data.
    found = _run(
        [python, "-c", "import nbexec.testing as t; print(t.sanitize_file())"], tmp_path, env, 60
    ).stdout.strip()
    assert found.startswith(str(venv)) and Path(found).is_file(), found
    # JupyterLab sees the widget and Bokeh extensions.
    extensions = _run([python, "-m", "jupyter", "labextension", "list"], repo, env, 120)
    listing = extensions.stdout + extensions.stderr
    assert "@jupyter-widgets/jupyterlab-manager" in listing and "jupyter_bokeh" in listing, listing

    # The notebooks under strict nbval, in the new environment (the repository's pytest settings
    # name plugins that only the test extra installs, so use an empty configuration).
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    notebooks = sorted(str(p) for p in (repo / "notebooks").glob("*.ipynb"))
    proc = subprocess.run(
        [python, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "-p", "no:cacheprovider",
         "-q", "--color=no", "--nbval", "--nbval-sanitize-with", found, *notebooks],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout.splitlines()[-1]
