"""ExecutorPanel driven from code: fields per mode, the equivalent magic line, Apply/Stop, status."""

from __future__ import annotations

import socket

import pytest

import nbexec
import nbexec.widgets as nw
from nbexec import session
from nbexec.config.options import parse_line
from nbexec.core.run import Run
from nbexec.widgets.panel import PANEL_TEXT, ExecutorPanel
from nbexec.widgets.table import RunTable

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


pytestmark = pytest.mark.usefixtures("clean_session")


def _shown(panel: ExecutorPanel) -> set[str]:
    """The fields a user sees: their row is displayed, and so is the class form holding them."""
    shown = {name for name, field in panel._own.items() if field.layout.display != "none"}
    if panel.cluster_form_box.layout.display != "none" and panel.cluster_form_box.children:
        shown |= set(panel._form.fields)
    assert shown == set(panel.visible_fields())
    return shown


def _roundtrip(panel: ExecutorPanel) -> tuple:
    assert panel.magic.startswith("%executor ")
    return parse_line(panel.magic[len("%executor ") :])


def test_fields_follow_the_mode():
    panel = ExecutorPanel()
    assert panel.mode.value == "local"
    assert _shown(panel) == set()
    panel.mode.value = "threads"
    assert _shown(panel) == {"workers"}
    panel.mode.value = "dask"
    executor_fields = {"workers", "address", "cluster_class", "cluster_kwargs", "adapt_min",
                       "adapt_max", "timeout"}  # fmt: skip
    local_fields = {"threads_per_worker", "processes", "memory_limit", "dashboard_address"}
    assert executor_fields | local_fields <= _shown(panel)
    panel.address.value = "tcp://10.0.0.5:8786"
    assert _shown(panel) == {"address", "timeout"}
    panel.address.value = ""
    panel.cluster_class.value = "dask_jobqueue.SLURMCluster"
    shown = _shown(panel)
    assert "threads_per_worker" not in shown and "cluster_kwargs" in shown
    assert {"cores", "memory", "queue", "walltime", "account", "job_extra_directives"} <= shown


def test_no_fake_zero_defaults():
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    for name in ("workers", "threads_per_worker", "timeout", "adapt_max"):
        assert panel.fields[name].value == "", name
    assert panel.threads_per_worker.placeholder == "default: cores ÷ workers"
    assert panel.timeout.placeholder == "default: 10"
    assert panel.workers.placeholder == "default: one per core"
    assert panel.magic == "%executor dask"


@pytest.mark.parametrize(
    "mode, values, line",
    [
        ("local", {}, "%executor local"),
        ("sync", {"workers": 4}, "%executor sync"),
        ("threads", {"workers": 3}, "%executor threads --workers 3"),
        ("processes", {"workers": 2}, "%executor processes --workers 2"),
        ("dask", {"workers": 2}, "%executor dask --workers 2"),
        (
            "dask",
            {"workers": 2, "threads_per_worker": 1, "processes": False, "memory_limit": "1GiB"},
            "%executor dask --workers 2 --threads-per-worker 1 --no-processes --memory-limit 1GiB",
        ),
        (
            "dask",
            {"address": "tcp://10.0.0.5:8786", "workers": 3, "timeout": 5.0},
            "%executor dask --address tcp://10.0.0.5:8786 --timeout 5.0",
        ),
        (
            "dask",
            {"cluster_class": "dask_jobqueue.SLURMCluster", "workers": 4,
             "cluster_kwargs": '{"memory": "8GiB", "cores": 4}', "adapt_min": 1, "adapt_max": 10},
            "%executor dask --workers 4 --cluster-class dask_jobqueue.SLURMCluster "
            """--cluster-kwargs '{"cores": 4, "memory": "8GiB"}' --adapt 1 10""",
        ),
    ],
)  # fmt: skip
def test_magic_line_for_each_mode(mode, values, line):
    panel = ExecutorPanel()
    panel.mode.value = mode
    for name, value in values.items():
        panel.fields[name].value = value
    assert panel.magic == line
    assert panel.magic_text.value == line
    assert panel.copy_button.text == line
    parsed_mode, options = _roundtrip(panel)
    assert parsed_mode == mode
    assert options == panel.form_options()[0]


def test_magic_text_is_selectable_but_not_editable():
    panel = ExecutorPanel()
    panel.mode.value = "threads"
    panel.magic_text.value = "%executor dask --workers 99"
    assert panel.magic_text.value == "%executor threads"


def test_cluster_kwargs_validated_live():
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.cluster_kwargs.value = '{"cores": 4'
    assert "not valid JSON" in panel.error_text("cluster_kwargs")
    assert "cluster-kwargs" not in panel.magic
    panel.cluster_kwargs.value = "[1, 2]"
    assert "JSON object" in panel.error_text("cluster_kwargs")
    panel.cluster_kwargs.value = '{"cores": 4}'
    assert panel.error_text("cluster_kwargs") == ""
    assert "--cluster-kwargs" in panel.magic


def test_apply_and_stop():
    panel = ExecutorPanel()
    panel.mode.value = "threads"
    panel.workers.value = 2
    executor = panel.apply()
    assert executor is nbexec.current()
    assert executor.scheduler == "threads" and executor.describe().workers == 2
    assert "executor: threads --workers 2" in panel.status.value
    assert "workers: 2" in panel.status.value
    assert panel.message.value == ""
    panel.mode.value = "local"
    panel.apply_button.click()
    assert nbexec.current().mode == "local"
    panel.stop_button.click()
    assert nbexec.current() is None
    assert "executor: none" in panel.status.value


def test_panel_starts_from_the_session():
    nbexec.use("threads", workers=3)
    panel = ExecutorPanel()
    assert panel.mode.value == "threads"
    assert panel.workers.value == "3"
    assert panel.magic == "%executor threads --workers 3"


def test_panel_starts_from_a_dask_session_with_cluster_fields():
    # The LocalCluster form's fields are filled while the panel is being built.
    nbexec.use("dask", workers=1, threads_per_worker=1, processes=False)
    panel = ExecutorPanel()
    assert panel.mode.value == "dask"
    assert panel.fields["threads_per_worker"].value == "1"
    assert _roundtrip(panel) == (
        "dask",
        {"workers": 1, "threads_per_worker": 1, "processes": False},
    )


def test_bad_value_keeps_the_previous_executor():
    before = nbexec.use("threads", workers=1)
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.memory_limit.value = "lots"
    assert panel.apply() is None
    assert nbexec.current() is before
    assert "memory_limit" in panel.message.value and "lots" in panel.message.value
    panel.memory_limit.value = ""
    panel.cluster_kwargs.value = "{oops"
    assert panel.apply() is None
    assert "cluster_kwargs" in panel.message.value
    assert nbexec.current() is before
    panel.cluster_kwargs.value = ""
    panel.cluster_class.value = "os.path"
    panel.apply_button.click()
    assert "not a distributed.deploy.Cluster subclass" in panel.message.value
    assert nbexec.current() is before


def test_unreachable_scheduler_shows_error_and_keeps_executor():
    before = nbexec.use("local")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.address.value = f"tcp://127.0.0.1:{port}"
    panel.timeout.value = 1.0
    assert panel.apply() is None
    assert f"127.0.0.1:{port}" in panel.message.value
    assert nbexec.current() is before
    assert not panel.apply_button.disabled


def test_status_shows_the_override(monkeypatch):
    monkeypatch.setenv(session.ENV_VAR, "local")
    panel = ExecutorPanel()
    panel.mode.value = "threads"
    panel.workers.value = 2
    panel.apply()
    assert nbexec.current().mode == "local"
    assert "override: NBEXEC_EXECUTOR=&#x27;local&#x27;" in panel.status.value


def test_last_run_table():
    panel = ExecutorPanel()
    run = Run(nbexec.LocalExecutor())
    with run:
        run.map(lambda x: x, range(3))
    session.set_last_run(run)
    tables = [c for c in panel.last_table.children if isinstance(c, RunTable)]
    assert len(tables) == 1 and tables[0].run is run
    assert "3 success" in tables[0].html


def test_panel_text_plain(monkeypatch):
    panel = ExecutorPanel()
    bundle = panel._repr_mimebundle_()
    assert bundle["text/plain"] == PANEL_TEXT and "text/html" in bundle
    monkeypatch.setattr(nw, "in_kernel", lambda: True)
    bundle = panel._repr_mimebundle_()
    # the widget, and the static view a saved notebook keeps (the same in every mode)
    assert set(bundle) == {"text/plain", "text/html", WIDGET_VIEW}
    assert bundle["text/plain"] == PANEL_TEXT
    assert "executor panel" in bundle["text/html"] and "executor:" not in bundle["text/html"]
    assert repr(nbexec.ExecutorPanel()) == PANEL_TEXT


def test_apply_dask_shows_dashboard_link():
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.workers.value = 1
    panel.processes.value = False
    assert panel.magic == "%executor dask --workers 1 --no-processes"
    messages = []
    panel.message.observe(lambda change: messages.append(change["new"]), names="value")
    executor = panel.apply()
    assert "starting a Dask cluster…" in messages[0] and messages[-1] == ""
    assert executor is not None, panel.message.value
    assert executor.client is not None
    assert "workers: 1" in panel.status.value
    assert 'dashboard: <a href="http://127.0.0.1:' in panel.status.value


def test_last_run_table_follows_runs_without_new_widgets():
    panel = ExecutorPanel()
    runs = []
    for n in (2, 5):
        run = Run(nbexec.LocalExecutor())
        with run:
            run.map(abs, range(n))
        session.set_last_run(run)
        runs.append(run)
    table = panel.last_table.children[-1]
    assert table.run is runs[-1]
    assert "5/5" in table.html
    session.set_last_run(runs[-1])
    assert panel.last_table.children[-1] is table


def test_copy_button_copies_the_line():
    panel = ExecutorPanel()
    panel.mode.value = "processes"
    assert panel.copy_button.text == "%executor processes"
    assert "navigator.clipboard.writeText" in panel.copy_button._esm


def test_open_panels_follow_the_session_after_each_cell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    panel = ExecutorPanel()
    assert panel.mode.value == "local"
    assert shell.run_cell("import nbexec\nnbexec.use('threads', workers=3)").success
    assert panel.mode.value == "threads" and panel.workers.value == "3"
    assert panel.magic == "%executor threads --workers 3"
    assert "executor: threads --workers 3" in panel.status.value
    assert shell.run_cell("nbexec.stop()").success
    assert "executor: none" in panel.status.value


def test_every_labelled_row_uses_one_label_column():
    """The executor's rows (more kwargs, adapt, timeout), the cluster class's form, the mode,
    the magic line and the scale/adapt controls line their fields up on one label width."""
    panel = ExecutorPanel()
    panel.mode.value = "dask"
    panel.cluster_class.value = "dask_jobqueue.SLURMCluster"
    widgets = [panel.mode, panel.magic_text, panel.controls.scale_n, panel.controls.adapt_min]
    widgets += [panel.fields[name] for name in _shown(panel)]
    widths = {
        (getattr(w, "description", ""), w.style.description_width)
        for w in widgets
        if getattr(w, "description", "") and hasattr(w.style, "description_width")
    }
    assert len({width for _, width in widths}) == 1, sorted(widths)
