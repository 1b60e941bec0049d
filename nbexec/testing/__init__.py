"""Testing your own notebooks with nbval: the sanitize file nbexec ships, and helpers.

``pytest --nbval --nbval-sanitize-with="$(python -c 'import nbexec.testing as t; print(t.sanitize_file())')"``
makes outputs that differ only by ports, addresses, uuids, hex ids (``at 0x...``) and the durations
in nbexec's task tables compare equal. Nothing else is hidden: task tables (names, states, counts),
values, stdout and stderr are compared as they are.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["sanitize_file", "sanitize_patterns", "sanitize", "nbval_args", "prune_widget_state"]

_FILE = "nbval-sanitize.cfg"


def sanitize_file() -> str:
    """The absolute path of nbexec's nbval sanitize file (for ``--nbval-sanitize-with``)."""
    path = resources.files(__name__).joinpath(_FILE)
    return str(Path(str(path)).resolve())


@lru_cache(maxsize=1)
def sanitize_patterns() -> tuple[tuple[str, str], ...]:
    """The file's ``(regex, replace)`` pairs in order, read exactly as nbval reads them."""
    text = Path(sanitize_file()).read_text(encoding="utf-8")
    pairs = re.findall("^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)
    return tuple((regex, replace) for regex, replace in pairs)


def sanitize(text: str) -> str:
    """``text`` as nbval sees it with the sanitize file applied (to compare outputs yourself)."""
    for regex, replace in sanitize_patterns():
        text = re.sub(regex, replace, text)
    return text


def nbval_args(*, lax: bool = False) -> list[str]:
    """pytest arguments that check notebooks with nbval and nbexec's sanitize file.

    e.g. ``pytest.main([*nbexec.testing.nbval_args(), "notebooks/"])``; strict unless ``lax``.
    """
    return ["--nbval-lax" if lax else "--nbval", f"--nbval-sanitize-with={sanitize_file()}"]


_VIEW = "application/vnd.jupyter.widget-view+json"
_STATE = "application/vnd.jupyter.widget-state+json"


def prune_widget_state(nb: Any) -> int:
    """Drop from ``nb.metadata.widgets`` the models no output shows (directly or as a child).

    nbclient stores every model a kernel ever opened, closed ones too; JupyterLab saves only live
    ones. Returns how many models were dropped; ``metadata.widgets`` goes when none is left.
    """
    widgets = nb.get("metadata", {}).get("widgets", {})
    state = widgets.get(_STATE, {}).get("state")
    if not state:
        return 0
    todo = [
        out["data"][_VIEW].get("model_id")
        for cell in nb.get("cells", [])
        for out in cell.get("outputs", [])
        if _VIEW in out.get("data", {})
    ]
    keep: set[str] = set()
    while todo:
        model = todo.pop()
        if model in state and model not in keep:
            keep.add(model)
            todo.extend(re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model])))
    dropped = [model for model in state if model not in keep]
    for model in dropped:
        del state[model]
    if not state:
        del nb["metadata"]["widgets"]
    return len(dropped)
