"""``python -m nbexec`` and the ``nbexec`` console script (see ``nbexec --help``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) its status."""
    from .frontends.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
