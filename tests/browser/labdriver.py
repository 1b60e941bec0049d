"""Drive JupyterLab in headless Chromium: start a server, write notebooks, open them, run them.

Used by ``tests/browser/conftest.py`` (fixtures) and the browser tests. Follows the project's
proven recipe (``testing-recipes.md``, "Real browser"): Debian's chromium through the playwright
Python package, JupyterLab on 127.0.0.1 with temporary config/runtime/settings/workspace
directories, a ``kernel_info_reply`` on the page's websocket before Run All, and every DNS look-up
blocked so nothing can come from the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
ARTIFACTS = Path(__file__).resolve().parent.parent / "_artifacts"

#: Browser console errors a test may see, each an exact substring of the message and the reason
#: it is tolerated. Anything else logged at level "error" fails the test. Keep it short and exact.
CONSOLE_ALLOW: list[tuple[str, str]] = []

# Settings written into the temporary JUPYTERLAB_SETTINGS_DIR.
LAB_SETTINGS = {
    # No news toast, no update check (the recipe: --LabApp.news_url=None is not enough).
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Attach every cell to the DOM, so a long notebook's outputs can all be checked.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


# --- the server ---------------------------------------------------------------------------------


@dataclass
class LabServer:
    """A JupyterLab server started by ``start_lab``; ``root`` is where notebooks go."""

    url: str
    token: str
    root: Path
    proc: subprocess.Popen
    log_path: Path
    startup_seconds: float = 0.0

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """Call the REST API (``path`` like ``/api/kernels``); returns decoded JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    app: str = "jupyterlab"

    def lab_url(self, path: str = "") -> str:
        if self.app == "notebook":  # Notebook 7: one document per page
            return f"{self.url}/notebooks/{path}?token={self.token}"
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def shutdown_kernels(self) -> None:
        """Shut every session and kernel down (each test starts from a clean server)."""
        with contextlib.suppress(Exception):
            for s in self.api("GET", "/api/sessions"):
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/api/sessions/{s['id']}", timeout=30)
        with contextlib.suppress(Exception):
            for k in self.api("GET", "/api/kernels"):
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/api/kernels/{k['id']}", timeout=30)

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self, timeout: float = 20) -> None:
        """``POST /api/shutdown`` and wait; SIGKILL the server's process group as a fallback."""
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.api("POST", "/api/shutdown", timeout=5)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Kernels are children in the server's process group: none may outlive the server.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def start_lab(base: Path, timeout: float = 60, app: str = "jupyterlab") -> LabServer:
    """Start JupyterLab (or, with ``app="notebook"``, Notebook 7) on 127.0.0.1 and a free port
    with everything it writes under ``base``."""
    dirs = {name: base / name for name in ("config", "runtime", "settings", "workspaces", "root")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    for rel, value in LAB_SETTINGS.items():
        path = dirs["settings"] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    token = secrets.token_hex(16)
    port = free_port()
    env = dict(os.environ)
    env.pop("NBEXEC_EXECUTOR", None)  # the tests name their modes
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        sys.executable, "-m", app, "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={dirs['root']}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]  # fmt: skip
    log_path = base / "jupyterlab.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it until it stops
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=dirs["root"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    server = LabServer(f"http://127.0.0.1:{port}", token, dirs["root"], proc, log_path, app=app)
    deadline = t0 + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            server.api("GET", "/api/status", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"JupyterLab did not answer in {timeout} s:\n{server.log_tail()}"
                ) from None
            time.sleep(0.2)
    server.startup_seconds = time.monotonic() - t0
    return server


# --- notebooks ----------------------------------------------------------------------------------


def write_notebook(root: Path, name: str, cells: list[str | tuple[str, str]]) -> str:
    """Write ``root/name`` from code sources (or ``("markdown", text)``); returns ``name``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in cells:
        if isinstance(cell, tuple):
            kind, source = cell
            make = (
                nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
            )
            nb.cells.append(make(source))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell))
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return name


# --- the page -----------------------------------------------------------------------------------


@dataclass
class ConsoleEntry:
    kind: str  # "console" or "pageerror"
    text: str
    location: str = ""

    def __str__(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"[{self.kind}] {self.text}{where}"


def allowed_reason(text: str) -> str | None:
    for substring, reason in CONSOLE_ALLOW:
        if substring in text:
            return reason
    return None


@dataclass
class LabPage:
    """One browser page on the Lab server; collects console errors and kernel websocket frames."""

    page: Any
    server: LabServer
    errors: list[ConsoleEntry] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    kernel_infos: int = 0

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_pageerror)
        self.page.on("websocket", self._on_websocket)
        self.page.on("request", self._on_request)

    # events
    def _on_console(self, msg: Any) -> None:
        if msg.type == "error":
            loc = msg.location or {}
            where = f"{loc.get('url', '')}:{loc.get('lineNumber', '')}" if loc.get("url") else ""
            self.errors.append(ConsoleEntry("console", msg.text, where))

    def _on_pageerror(self, exc: Any) -> None:
        self.errors.append(ConsoleEntry("pageerror", f"{exc.name}: {exc.message}"))

    def _on_request(self, request: Any) -> None:
        url = request.url
        if not url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            self.external_requests.append(url)

    def _on_websocket(self, ws: Any) -> None:
        if "/api/kernels/" in ws.url:
            ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        if b'"kernel_info_reply"' in data:
            self.kernel_infos += 1

    def unexpected_errors(self) -> list[ConsoleEntry]:
        return [e for e in self.errors if allowed_reason(e.text) is None]

    # actions
    def wait_until(self, predicate: Any, timeout: float, what: str) -> None:
        """Poll ``predicate()`` (letting playwright dispatch events) until true or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.page.wait_for_timeout(100)

    def open(self, name: str, timeout: float = 60) -> None:
        """Open notebook ``name`` and wait until its kernel answered ``kernel_info_request``."""
        seen = self.kernel_infos
        self.page.goto(self.server.lab_url(name), wait_until="domcontentloaded")
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=timeout * 1000)
        self.wait_until(lambda: self.kernel_infos > seen, timeout, "a kernel_info_reply frame")
        # Idle kernel shown in the toolbar as well (the reply alone proves the websocket works).
        self.page.wait_for_function(
            "() => { const n = window.jupyterapp.shell.currentWidget;"
            " return n && n.sessionContext && n.sessionContext.session"
            " && n.sessionContext.session.kernel"
            " && n.sessionContext.session.kernel.status === 'idle'; }",
            timeout=timeout * 1000,
        )

    def run_all(self) -> None:
        """Run All (the menu command ``runmenu:run-all``) on the current notebook; returns at once.

        The command's promise resolves only when every cell ran: it is not awaited here.
        """
        self.page.evaluate("() => { window.jupyterapp.commands.execute('runmenu:run-all'); }")

    def run_cell(self, index: int) -> None:
        """Run the cell at ``index`` (``notebook:run-cell``) on the current notebook; not awaited."""
        self.page.evaluate(
            """(i) => { const nb = window.jupyterapp.shell.currentWidget.content;
                       nb.activeCellIndex = i;
                       window.jupyterapp.commands.execute('notebook:run-cell'); }""",
            index,
        )

    def cells(self) -> list[dict]:
        """Every cell of the current notebook, from its model: ``index``, ``type``, ``source``
        (non-empty), ``count``, ``prompt`` (``[*]`` while queued or running), ``tags``,
        ``errors`` ("ename: evalue" per error output) and ``stderr`` (stderr texts)."""
        return self.page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.widgets.map((c, i) => {
              const cell = {index: i, type: c.model.type, tags: c.model.getMetadata('tags') || [],
                            source: c.model.sharedModel.getSource().trim().length > 0,
                            count: null, prompt: '', errors: [], stderr: []};
              if (c.model.type !== 'code') return cell;
              cell.count = c.model.executionCount;
              cell.prompt = (c.node.querySelector('.jp-InputPrompt') || {}).textContent || '';
              for (const o of c.model.outputs.toJSON()) {
                if (o.output_type === 'error') cell.errors.push(o.ename + ': ' + o.evalue);
                if (o.output_type === 'stream' && o.name === 'stderr') {
                  cell.stderr.push([].concat(o.text).join(''));
                }
              }
              return cell;
            })"""
        )

    def cell_states(self) -> list[dict]:
        """``cells()`` of the code cells only."""
        return [c for c in self.cells() if c["type"] == "code"]

    def cell_errors(self) -> dict[int, str]:
        """``{cell index: text}`` of the cells with an error output or stderr."""
        found = {}
        for c in self.cells():
            texts = c["errors"] + [f"stderr: {t}" for t in c["stderr"]]
            if texts:
                found[c["index"]] = "\n".join(texts)
        return found

    def kernel_status(self) -> str:
        return self.page.evaluate(
            "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;"
            " return k ? k.status : 'none'; }"
        )

    def wait_cells_done(self, timeout: float = 120, upto: int | None = None) -> list[dict]:
        """Wait until the (first ``upto``) code cells stopped running and the kernel is idle.

        Done means: no cell queued or running (``[*]``), the kernel idle, and every non-empty cell
        has an execution count, or one raised (Run All then skips the rest). Returns the states.
        """

        def done() -> bool:
            cells = self.cell_states()[:upto]
            if any("*" in c["prompt"] for c in cells) or self.kernel_status() != "idle":
                return False
            return all(c["count"] is not None for c in cells if c["source"]) or bool(
                self.cell_errors()
            )

        stable = 0

        def settled() -> bool:  # 3 polls in a row: the kernel is idle between two cells
            nonlocal stable
            stable = stable + 1 if done() else 0
            return stable >= 3

        try:
            self.wait_until(settled, timeout, "every cell to finish")
        except AssertionError as exc:
            busy = [c["index"] for c in self.cell_states()[:upto] if "*" in c["prompt"]]
            raise AssertionError(
                f"{exc}; kernel {self.kernel_status()}, cells still queued or running "
                f"(index among all cells): {busy}"
            ) from None
        return self.cell_states()[:upto]

    def outputs(self, cell: int) -> Any:
        """Locator of code cell ``cell``'s outputs (0-based among all cells)."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-OutputArea-output")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
