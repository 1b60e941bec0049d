"""Testing your own notebooks with nbval: the sanitize file nbexec ships, and helpers.

``pytest --nbval --nbval-sanitize-with "$(python -c 'import nbexec.testing as t; print(t.sanitize_file())')"``
makes outputs that differ only by ports, addresses, uuids and hex ids (``at 0x...``) compare equal.
Nothing else is hidden: task tables, values, stdout and stderr are compared as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["sanitize_file", "sanitize_patterns", "sanitize", "nbval_args"]

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
    return ["--nbval-lax" if lax else "--nbval", "--nbval-sanitize-with", sanitize_file()]
