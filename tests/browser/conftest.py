"""Fixtures for the browser tests: one JupyterLab server and one Chromium per session, a page per test.

Every test's page collects browser console errors; a test fails on any error not listed in
``labdriver.CONSOLE_ALLOW``. A failing test leaves a screenshot under ``tests/_artifacts/``.
"""

from __future__ import annotations

import re
import time

import labdriver
import pytest


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A JupyterLab server on 127.0.0.1 for the whole session (root: ``lab.root``)."""
    server = labdriver.start_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through playwright, with every DNS look-up blocked.

    Per module, not per session: playwright's sync API keeps its event loop marked as running in
    the main thread while it lives, so later tests' ``asyncio`` calls (IPython's top-level
    ``await``) would fail with "This event loop is already running"."""
    if not labdriver.chromium_available():
        pytest.skip(
            f"{labdriver.CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=labdriver.CHROMIUM, headless=True, args=labdriver.LAUNCH_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def lab_page(request: pytest.FixtureRequest, browser, lab: labdriver.LabServer):
    """A fresh browser context and page on the Lab server; kernels are shut down afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = labdriver.LabPage(context.new_page(), lab)
    request.node._lab_page = page
    try:
        yield page
    finally:
        request.node._lab_page = None
        context.close()
        lab.shutdown_kernels()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After the test body: fail on console errors that are not explicitly allowed."""
    result = yield
    page = getattr(item, "_lab_page", None)
    if page is not None:
        page.page.wait_for_timeout(200)  # let last console messages arrive
        bad = page.unexpected_errors()
        if bad:
            listed = "\n".join(f"  {e}" for e in bad)
            raise AssertionError(f"browser console errors not in CONSOLE_ALLOW:\n{listed}")
        if page.external_requests:
            listed = "\n".join(f"  {u}" for u in page.external_requests)
            raise AssertionError(f"the page requested something off 127.0.0.1:\n{listed}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed test: save a screenshot of its page and say where; attach the console log."""
    report = yield
    page = getattr(item, "_lab_page", None)
    if report.when == "call" and report.failed and page is not None:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-120:] + f"-{int(time.time())}"
        try:
            path = page.screenshot(name)
            message = f"screenshot: {path}"
        except Exception as exc:  # noqa: BLE001 - report the test's failure, not this one
            message = f"screenshot failed: {exc!r}"
        terminal = item.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"\n[browser] {item.nodeid}: {message}")
        report.sections.append(("browser screenshot", message))
        if page.errors:
            log = "\n".join(str(e) for e in page.errors)
            report.sections.append(("browser console errors", log))
    return report
