"""The cluster form in JupyterLab, in headless Chromium: choose SLURMCluster, fill its fields with
the mouse and keyboard, read the job script preview (nothing is submitted or started)."""

from __future__ import annotations

import re

import labdriver
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SETUP = "%load_ext nbexec\nimport nbexec\n\npanel = nbexec.ExecutorPanel()\npanel"


def _field(panel, label: str, kind: str = "input"):
    """The input of the panel's field whose description is exactly ``label``."""
    row = panel.locator(
        ".widget-inline-hbox", has=panel.page.locator("label", has_text=re.compile(f"^{label}$"))
    )
    return row.locator(kind).first


def test_slurm_form_filled_with_the_mouse_previews_the_job_script(lab_page, lab):
    name = labdriver.write_notebook(lab.root, "cluster_form.ipynb", [SETUP])
    lab_page.open(name)
    lab_page.run_cell(0)
    lab_page.wait_cells_done(upto=1)
    page = lab_page.page
    panel = page.locator(".jp-OutputArea-output .nbexec-panel")
    expect(panel).to_be_visible()
    select = panel.locator(".widget-dropdown select").first
    select.click()
    select.select_option(label="dask (Dask cluster)")
    # The class: typed into the combobox (its list offers the installed classes), Enter commits.
    combo = _field(panel, "cluster class")
    expect(combo).to_have_value("distributed.LocalCluster")
    options = panel.locator("datalist option")
    expect(options.filter(has=page.locator("xpath=self::*[@value='dask_jobqueue.PBSCluster']")))
    combo.click()
    combo.fill("dask_jobqueue.SLURMCluster")
    combo.press("Enter")
    cores = _field(panel, "cores")
    expect(cores).to_be_visible(timeout=30_000)
    expect(cores).to_have_attribute("placeholder", "required")
    tooltip = cores.evaluate(
        "e => { const row = e.closest('.widget-inline-hbox');"
        " return [row, ...row.querySelectorAll('[title]')].map(n => n.title || '').join(' | '); }"
    )
    assert "Total number of cores per job" in tooltip, cores.evaluate(
        "e => e.closest('.widget-inline-hbox').outerHTML"
    )
    for label, value in (("cores", "8"), ("memory", "lots"), ("queue", "gpu"),
                         ("account", "proj42"), ("walltime", "02:00:00")):  # fmt: skip
        field = _field(panel, label)
        field.click()
        field.fill(value)
        field.press("Tab")
    # A bad size: refused next to its field.
    expect(panel.get_by_text(re.compile("expected a size such as 8GiB"))).to_be_visible()
    memory = _field(panel, "memory")
    memory.click()
    memory.fill("16GiB")
    memory.press("Tab")
    expect(panel.get_by_text(re.compile("expected a size such as 8GiB"))).to_have_count(0)
    directives = _field(panel, "job_extra_directives", "textarea")
    directives.click()
    directives.fill("--gres=gpu:1")
    directives.press("Tab")
    magic = _field(panel, "magic")
    expect(magic).to_have_value(re.compile(r"--cluster-class dask_jobqueue\.SLURMCluster"))
    expect(magic).to_have_value(re.compile(r'"queue": "gpu"'))
    panel.get_by_role("button", name="Preview").click()
    preview = panel.locator(".nbexec-preview pre")
    expect(preview).to_contain_text("#SBATCH -p gpu", timeout=30_000)
    text = preview.inner_text()
    for line in ("#SBATCH -A proj42", "#SBATCH -t 02:00:00", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=16G", "#SBATCH --gres=gpu:1"):  # fmt: skip
        assert line in text, (line, text)
    panel.scroll_into_view_if_needed()
    lab_page.screenshot("cluster_form_slurm")
    assert lab_page.cell_errors() == {}
