"""Without ipywidgets, or outside a kernel, every view degrades to text/HTML and nothing raises."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


NO_IPYWIDGETS = """
import json, os, sys
sys.modules["ipywidgets"] = None
os.environ.pop("NBEXEC_EXECUTOR", None)
import nbexec
import nbexec.widgets as nw
shown = []
nw.in_kernel = lambda: True  # a kernel whose environment lacks ipywidgets
nw.display = shown.append
from nbexec.core.render import render_text
from nbexec.core.run import Run
from nbexec.widgets import live

run = Run(nbexec.LocalExecutor())
view = live.show_run(run, dashboard=True)
with run:
    run.map(lambda x: x, range(5))
view.finish()
view.finish()
bundles = [x._repr_mimebundle_() for x in shown]

panel = nbexec.ExecutorPanel()
panel.mode.value = "threads"
panel.workers.value = 2
magic = panel.magic
executor = panel.apply()
applied = executor is nbexec.current() and executor.describe().workers == 2
panel.mode.value = "dask"
panel.memory_limit.value = "lots"
bad = panel.apply() is None and "memory_limit" in panel.message.value
panel.stop_button.click()
out = {
    "bundles": bundles,
    "final": render_text(run.snapshot()),
    "magic": magic,
    "applied": applied,
    "bad": bad,
    "stopped": nbexec.current() is None,
    "panel": panel._repr_mimebundle_(),
    "board": nbexec.dashboard()._repr_mimebundle_(),
    "table": view.table is None,
    "ipywidgets": sys.modules.get("ipywidgets") is None,
}
print(json.dumps(out))
"""


def test_without_ipywidgets():
    out = _run(NO_IPYWIDGETS)
    bundles = out["bundles"]
    assert [set(b) for b in bundles] == [{"text/plain", "text/html"}] * 2
    assert bundles[0]["text/plain"] == out["final"]  # nothing before the run's static view
    assert "<table" in bundles[0]["text/html"] and "finished" in bundles[0]["text/html"]
    assert bundles[1]["text/plain"] == "nbexec dashboard: task-stream, progress, workers-memory"
    assert bundles[1]["text/html"].count("<rect") == 5
    assert out["magic"] == "%executor threads --workers 2"
    assert out["applied"] and out["bad"] and out["stopped"] and out["table"]
    assert out["panel"]["text/plain"] == "nbexec executor panel"
    assert "<code>%executor dask --workers 2</code>" in out["panel"]["text/html"]  # "lots" refused
    assert "<svg" in out["board"]["text/html"]
    assert out["ipywidgets"]


PLAIN_SHELL = """
import json, os
os.environ.pop("NBEXEC_EXECUTOR", None)
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
import nbexec
from nbexec.core.run import Run
from nbexec.widgets import live

shell = InteractiveShell.instance()
with capture_output() as cap:
    run = Run(nbexec.LocalExecutor())
    view = live.show_run(run, dashboard=True)
    with run:
        run.map(lambda x: x, range(3))
    view.finish()
    from IPython.display import display
    display(nbexec.ExecutorPanel())
    display(nbexec.dashboard())
print(json.dumps({"outputs": [o.data for o in cap.outputs], "stdout": cap.stdout}))
"""


def test_plain_ipython_shell_gets_text_and_html():
    out = _run(PLAIN_SHELL)
    outputs = out["outputs"]
    assert [set(o) for o in outputs] == [{"text/plain", "text/html"}] * len(outputs)
    texts = [o["text/plain"] for o in outputs]
    assert texts[0].startswith("nbexec tasks: 3 tasks - 3 success")
    assert "nbexec executor panel" in texts
    assert texts[-1] == "nbexec dashboard: task-stream, progress, workers-memory"


def test_without_any_ipython_display_prints_text():
    out = _run(
        """
        import io, json, contextlib, sys
        sys.modules["IPython"] = None
        sys.modules["ipywidgets"] = None
        import nbexec
        from nbexec.core.run import Run
        from nbexec.widgets import live
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            run = Run(nbexec.LocalExecutor())
            view = live.show_run(run)
            with run:
                run.submit(abs, -1)
            view.finish()
        print(json.dumps({"printed": buf.getvalue()}))
        """
    )
    assert out["printed"].splitlines()[0] == "nbexec tasks: 1 task - 1 success"


@pytest.mark.parametrize("module", ["nbexec.widgets", "nbexec.widgets.live"])
def test_widgets_package_imports_light(module):
    out = _run(
        f"""
        import json, sys
        import {module}
        heavy = ["ipywidgets", "IPython", "bokeh", "distributed", "jupyter_bokeh", "anywidget"]
        print(json.dumps({{"loaded": [m for m in heavy if m in sys.modules]}}))
        """
    )
    assert out["loaded"] == []
