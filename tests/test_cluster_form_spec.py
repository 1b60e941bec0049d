"""Cluster classes as forms: discovery, fields from signatures and docstrings, checks, previews
(dask-jobqueue installed for real; nothing submitted), and scale/adapt on a running LocalCluster."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from distributed.deploy import Cluster

import nbexec
from nbexec.config.options import parse_line
from nbexec.widgets.cluster_spec import describe, installed_cluster_classes
from nbexec.widgets.panel import ExecutorPanel

SLURM = "dask_jobqueue.SLURMCluster"
PBS = "dask_jobqueue.PBSCluster"
JOB = {"cores": 8, "memory": "16GiB", "queue": "gpu", "account": "proj42",
       "walltime": "02:00:00", "job_extra_directives": ["--gres=gpu:1"], "python": "python3"}  # fmt: skip


class FakeCluster(Cluster):
    """A cluster of pretend nodes, for tests.

    Parameters
    ----------
    nodes : int
        How many nodes to book.
    memory : str
        Memory per node.
    gpus : bool
        Whether each node gets a GPU.
    tags : list of str, optional
        Labels for the nodes.
    env : dict, optional
        Environment variables on each node.
    """

    def __init__(self, nodes: int = 2, memory: str = "1GiB", gpus: bool = False,
                 tags: list | None = None, env: dict | None = None, **kwargs):  # fmt: skip
        raise AssertionError("a form must never start the cluster")


FAKE = f"{FakeCluster.__module__}.FakeCluster"


@pytest.fixture
def batch_commands(tmp_path, monkeypatch):
    """sbatch/qsub/squeue/qstat on PATH that record being called: nothing may be submitted."""
    calls = tmp_path / "calls"
    for name in ("sbatch", "qsub", "squeue", "qstat", "scancel", "qdel"):
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\necho {name} "$@" >> {calls}\necho 1234\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    yield calls
    assert not calls.exists(), f"something was submitted: {calls.read_text()}"


def test_installed_classes_found_without_importing_them():
    names = installed_cluster_classes()
    assert names[0] == "distributed.LocalCluster"
    for queue in ("SLURM", "PBS", "SGE", "LSF", "HTCondor", "OAR", "Moab"):
        assert f"dask_jobqueue.{queue}Cluster" in names
    code = (
        "import sys, nbexec.widgets.cluster_spec as c; names = c.installed_cluster_classes(); "
        "print('dask_jobqueue.SLURMCluster' in names, 'dask_jobqueue' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_entry_point_classes_are_listed_not_loaded(tmp_path, monkeypatch):
    dist = tmp_path / "site_cluster-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: site-cluster\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[nbexec.cluster_classes]\nsite = site_cluster.deploy:SiteCluster\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "site_cluster.deploy.SiteCluster" in installed_cluster_classes()
    assert "site_cluster" not in sys.modules


@pytest.mark.parametrize("name", ["os.path.join", "subprocess.Popen", "builtins.print", "x;y", ""])
def test_only_cluster_classes_resolve(name):
    if not name:
        assert describe(name).cls.__name__ == "LocalCluster"
        return
    with pytest.raises(ValueError, match="not a distributed.deploy.Cluster subclass"):
        describe(name)


def test_slurm_fields_come_from_the_job_class():
    spec = describe(SLURM)
    names = [f.name for f in spec.fields]
    assert names[:6] == ["cores", "memory", "processes", "queue", "account", "walltime"]
    assert "job_extra_directives" in names and "job_mem" in names
    for hidden in ("n_workers", "loop", "job_cls", "scheduler", "env_extra", "job_extra", "extra"):
        assert hidden not in names, hidden
    kinds = {f.name: f.kind for f in spec.fields}
    assert kinds["cores"] == "int" and kinds["memory"] == "bytes" and kinds["nanny"] == "bool"
    assert kinds["walltime"] == "walltime" and kinds["job_extra_directives"] == "list"
    assert kinds["scheduler_options"] == "dict" and kinds["death_timeout"] == "seconds"
    cores = spec.field("cores")
    assert cores.tooltip == "cores (int): Total number of cores per job"
    assert cores.placeholder == "required"
    assert spec.field("walltime").placeholder == "default: 00:30:00 (dask config)"
    assert "#SBATCH" in spec.field("queue").help


def test_values_checked_by_type_unit_and_the_class():
    spec = describe(SLURM)
    errors = spec.check({**JOB, "memory": "lots", "walltime": "soon", "cores": "8"})
    assert set(errors) == {"memory", "walltime", "cores"}
    assert "'lots'" in errors["memory"] and "8GiB" in errors["memory"]
    assert "02:00:00" not in errors["walltime"] and "'soon'" in errors["walltime"]
    assert spec.check(JOB) == {}
    # The class's own check: SLURM jobs need cores and memory.
    errors = spec.check({"queue": "gpu"})
    assert list(errors) == ["cores"] and "cores and memory" in errors["cores"]
    assert "takes no argument 'cors'" in spec.check({**JOB, "cors": 4})["cors"]


@pytest.mark.usefixtures("clean_session")
def test_jobqueue_parameters_the_class_refuses_are_not_offered(batch_commands):
    # JobQueueCluster's signature takes dashboard_address and host but raises when they are set.
    from dask_jobqueue import SLURMCluster

    for name in ("dashboard_address", "host"):
        with pytest.raises(ValueError, match="scheduler_options"):
            SLURMCluster(**JOB, **{name: "x"})
    spec = describe(SLURM)
    names = [f.name for f in spec.fields]
    assert "dashboard_address" not in names and "host" not in names
    assert "scheduler_options" in names
    errors = spec.check({**JOB, "dashboard_address": ":8788"})
    assert (
        list(errors) == ["dashboard_address"] and "scheduler_options" in errors["dashboard_address"]
    )
    assert spec.check({**JOB, "scheduler_options": {"dashboard_address": ":8788"}}) == {}
    # Given through the panel's "more kwargs": refused before Apply, naming the field.
    before = nbexec.use("threads", workers=1)
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.cluster_class.value = SLURM
    assert "host" not in panel.fields and "dashboard_address" not in panel.fields
    panel.fields["cores"].value = 8
    panel.fields["memory"].value = "16GiB"
    panel.cluster_kwargs.value = '{"host": "login1"}'
    with pytest.raises(ValueError, match="host: SLURMCluster refuses host"):
        panel.preview()
    assert panel.apply() is None and nbexec.current() is before
    assert "refuses host" in panel.message.value


def test_slurm_and_pbs_job_scripts_without_submitting(batch_commands):
    script = describe(SLURM).preview(JOB)
    assert script.startswith("#!/usr/bin/env bash")
    for line in ("#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH -t 02:00:00",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:1"):  # fmt: skip
        assert line in script.splitlines(), (line, script)
    assert "python3 -m distributed.cli.dask_worker" in script
    pbs = describe(PBS).preview({**JOB, "job_extra_directives": ["-l place=scatter"]})
    for line in ("#PBS -q gpu", "#PBS -A proj42", "#PBS -l walltime=02:00:00",
                 "#PBS -l place=scatter"):  # fmt: skip
        assert line in pbs.splitlines(), (line, pbs)
    with pytest.raises(ValueError, match="memory"):
        describe(PBS).preview({**JOB, "memory": "lots"})


def test_fake_cluster_class_form_and_python_preview():
    spec = describe(FAKE)
    assert [(f.name, f.kind) for f in spec.fields[:5]] == [
        ("memory", "bytes"), ("nodes", "int"), ("gpus", "bool"), ("tags", "list"), ("env", "dict"),
    ]  # fmt: skip
    assert spec.field("nodes").placeholder == "default: 2"
    assert spec.field("gpus").tooltip == "gpus (bool): Whether each node gets a GPU."
    assert spec.check({"nodes": 3, "memory": "2GiB", "gpus": True}) == {}
    assert set(spec.check({"nodes": 2.5, "memory": "a lot", "tags": "x"})) == {
        "nodes", "memory", "tags",
    }  # fmt: skip
    text = spec.preview({"nodes": 3, "tags": ["a"]}, workers=4, adapt=(1, 6))
    assert text == textwrap.dedent(f"""\
        from distributed import Client
        from {FakeCluster.__module__} import FakeCluster

        cluster = FakeCluster(
            nodes=3,
            tags=['a'],
        )
        cluster.scale(4)
        cluster.adapt(minimum=1, maximum=6)
        client = Client(cluster)""")


@pytest.mark.usefixtures("clean_session")
def test_panel_builds_the_slurm_form_and_keeps_the_magic_in_step(batch_commands):
    before = nbexec.use("threads", workers=1)
    panel = ExecutorPanel()
    assert SLURM in panel.cluster_class.options and PBS in panel.cluster_class.options
    panel.mode.value = "dask"
    panel.cluster_class.value = SLURM
    fields = panel.fields
    assert fields["cores"].tooltip == "cores (int): Total number of cores per job"
    assert fields["cores"].value == "" and fields["cores"].placeholder == "required"
    fields["cores"].value = 8
    fields["memory"].value = "16GiB"
    fields["queue"].value = "gpu"
    fields["walltime"].value = "02:00:00"
    fields["job_extra_directives"].value = "--gres=gpu:1\n--constraint=haswell"
    panel.workers.value = 4
    kwargs = {"cores": 8, "job_extra_directives": ["--gres=gpu:1", "--constraint=haswell"],
              "memory": "16GiB", "queue": "gpu", "walltime": "02:00:00"}  # fmt: skip
    mode, options = parse_line(panel.magic[len("%executor ") :])
    assert (mode, options) == (
        "dask",
        {"workers": 4, "cluster_class": SLURM, "cluster_kwargs": kwargs},
    )
    assert panel.magic.startswith(
        f"%executor dask --workers 4 --cluster-class {SLURM} --cluster-kwargs"
    )
    script = panel.preview()
    assert "#SBATCH -p gpu" in script and "#SBATCH --constraint=haswell" in script
    assert "#SBATCH -p gpu" in panel.preview_area.value
    # A bad unit: refused next to its field, left out of the magic, nothing starts.
    fields["memory"].value = "lots"
    assert "lots" in panel.error_text("memory")
    assert '"memory"' not in panel.magic
    with pytest.raises(ValueError, match="memory"):
        panel.preview()
    assert panel.apply() is None and nbexec.current() is before
    assert "memory" in panel.message.value
    # The class's own check (cores and memory required) shows next to cores.
    fields["memory"].value = ""
    fields["cores"].value = ""
    panel.preview_button.click()
    assert "cores and memory" in panel.error_text("cores")
    assert "cores and memory" in panel.message.value


@pytest.mark.usefixtures("clean_session")
def test_panel_fake_class_and_other_modes_preview():
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.cluster_class.value = FAKE
    panel.fields["nodes"].value = "3"
    panel.fields["gpus"].value = True
    assert panel.magic == (
        f"""%executor dask --cluster-class {FAKE} --cluster-kwargs '{{"gpus": true, "nodes": 3}}'"""
    )
    assert "cluster = FakeCluster(\n    nodes=3,\n    gpus=True,\n)" in panel.preview()
    panel.cluster_class.value = "os.system"
    assert "not a distributed.deploy.Cluster subclass" in panel.error_text("cluster_class")
    assert panel.cluster_form_box.children == ()
    panel.mode.value = "threads"
    panel.workers.value = 2
    assert panel.preview() == "import nbexec\n\nnbexec.use('threads', workers=2)"


def _wait_status(panel: ExecutorPanel, *texts: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        panel.refresh_status()
        if all(text in panel.status.value for text in texts):
            return
        assert time.monotonic() < deadline, (texts, panel.status.value)
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.usefixtures("clean_session")
def test_local_cluster_scaled_1_to_3_then_adaptive():
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.workers.value = 1
    panel.threads_per_worker.value = 1
    panel.fields["host"].value = "127.0.0.1"
    panel.fields["dashboard_address"].value = "127.0.0.1:0"
    assert "cluster = LocalCluster(\n    n_workers=1," in panel.preview()
    assert panel.controls.widget.layout.display == "none"
    executor = panel.apply()
    assert executor is not None, panel.message.value
    assert panel.controls.widget.layout.display is None
    client = executor.client
    assert "workers: 1" in panel.status.value and "adaptive" not in panel.status.value
    panel.scale(3)  # the cluster takes the request on its event loop, then starts workers
    client.wait_for_workers(3, timeout=60)
    _wait_status(panel, "workers: 3", "3 workers requested")
    panel.controls.adapt_min.value = "1"
    panel.controls.adapt_max.value = "4"
    panel.controls.adapt_button.click()
    assert panel.message.value == ""
    assert "adaptive: 1–4 workers" in panel.status.value
    assert client.cluster._adaptive.minimum == 1 and client.cluster._adaptive.maximum == 4
    panel.controls.scale_n.value = "2"
    panel.controls.scale_button.click()  # manual scaling stops adaptive, as distributed's widget
    assert "adaptive" not in panel.status.value
    _wait_status(panel, "2 workers requested")
    with pytest.raises(ValueError, match="minimum 5 is larger than maximum 2"):
        panel.adapt(5, 2)
    nbexec.stop()
    panel.refresh_status()
    with pytest.raises(RuntimeError, match="no running cluster"):
        panel.scale(2)
