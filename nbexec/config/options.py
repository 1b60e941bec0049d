"""The executor line syntax shared by ``%executor``, ``NBEXEC_EXECUTOR`` and ``python -m nbexec``.

``MODE [OPTIONS]``, e.g. ``threads -n 2`` or ``dask --address tcp://10.0.0.5:8786``. One table of
modes (``MODE_HELP``) and one of options (``OPTIONS``: flags, the modes that take them, what they
set on a LocalCluster) feed the parser here, ``config.modes``' checks, the magic's and the CLI's
help and the executor panel.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "MODES", "MODE_HELP", "OPTIONS", "MODE_OPTIONS", "LOCAL_CLUSTER_ONLY", "CLUSTER_SHAPING",
    "LOCAL_CLUSTER_KWARGS", "TIMEOUT_DEFAULT", "LineError", "parse_line", "format_line",
    "build_parser", "RaisingParser",
]  # fmt: skip

MODES = ("local", "sync", "threads", "processes", "dask")
#: What each mode runs on, in a few words (the panel's mode menu, the CLI's help).
MODE_HELP = {
    "local": "in the kernel",
    "sync": "Dask, one thread",
    "threads": "thread pool",
    "processes": "process pool",
    "dask": "Dask cluster",
}
#: Seconds to reach a Dask scheduler when the line gives no --timeout (distributed's default).
TIMEOUT_DEFAULT = 10
COMMANDS = ("status", "stop")


class LineError(ValueError):
    """A line that does not parse; the message names the problem and the valid choices, ``prog``
    the parser that refused it."""

    prog = "executor"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def seconds(text: str) -> float:
    """argparse type: a number of seconds > 0 and at most one day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0 and <= 86400, got {text!r}"
        )
    return value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"cores\": 4}}', got {text!r} ({exc.msg})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object ({{...}}), got {text!r}")
    return value


@dataclass(frozen=True)
class Option:
    """One option of the executor line: its flags, its ``executor_for`` name, its help, the modes
    that take it, the LocalCluster keyword it sets (``local_kwarg``), whether only a LocalCluster
    takes it (``local_only``) and whether it shapes a cluster nbexec starts (``shapes_cluster``:
    refused with ``--address``)."""

    flags: tuple[str, ...]
    dest: str
    help: str
    type: Any = None
    nargs: Any = None
    metavar: Any = None
    action: str | None = None
    modes: tuple[str, ...] = ("dask",)
    local_kwarg: str | None = None
    local_only: bool = False
    shapes_cluster: bool = False

    def argparse_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``ArgumentParser.add_argument`` for this option."""
        kwargs: dict[str, Any] = {"dest": self.dest, "help": self.help, "default": None}
        for name in ("type", "nargs", "metavar", "action"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


OPTIONS: tuple[Option, ...] = (
    Option(
        ("-n", "--workers"),
        "workers",
        "number of workers (threads, processes or Dask workers)",
        type=_positive_int,
        metavar="N",
        modes=("threads", "processes", "dask"),
        local_kwarg="n_workers",
        shapes_cluster=True,
    ),
    Option(
        ("--threads-per-worker",),
        "threads_per_worker",
        "threads per Dask worker (LocalCluster)",
        type=_positive_int,
        metavar="N",
        local_kwarg="threads_per_worker",
        local_only=True,
        shapes_cluster=True,
    ),
    Option(
        ("--processes",),
        "processes",
        "LocalCluster workers in separate processes",
        action="store_true",
        local_kwarg="processes",
        local_only=True,
        shapes_cluster=True,
    ),
    Option(
        ("--no-processes",),
        "processes",
        "LocalCluster workers as threads of the kernel",
        action="store_false",
        local_kwarg="processes",
        local_only=True,
        shapes_cluster=True,
    ),
    Option(
        ("--memory-limit",),
        "memory_limit",
        "memory limit per Dask worker, e.g. 2GiB (LocalCluster)",
        metavar="X",
        local_kwarg="memory_limit",
        local_only=True,
        shapes_cluster=True,
    ),
    Option(
        ("--address",),
        "address",
        "address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786",
        metavar="ADDR",
    ),
    Option(
        ("--cluster-class",),
        "cluster_class",
        "dotted name of a distributed.deploy.Cluster subclass, e.g. dask_jobqueue.SLURMCluster",
        metavar="DOTTED.NAME",
        shapes_cluster=True,
    ),
    Option(
        ("--cluster-kwargs",),
        "cluster_kwargs",
        "keyword arguments of the cluster class, as JSON",
        type=_json_object,
        metavar="JSON",
        shapes_cluster=True,
    ),
    Option(
        ("--client-kwargs",),
        "client_kwargs",
        "keyword arguments of distributed.Client, as JSON",
        type=_json_object,
        metavar="JSON",
    ),
    Option(
        ("--adapt",),
        "adapt",
        "adaptive scaling between MIN and MAX workers",
        type=_positive_int,
        nargs=2,
        metavar=("MIN", "MAX"),
        shapes_cluster=True,
    ),
    Option(
        ("--timeout",),
        "timeout",
        f"seconds to reach a scheduler (default {TIMEOUT_DEFAULT})",
        type=seconds,
        metavar="SECONDS",
    ),
    Option(
        ("--tls-ca-file",), "tls_ca_file", "CA certificate file for a tls:// scheduler", metavar="F"
    ),
    Option(
        ("--tls-cert",), "tls_cert", "client certificate file for a tls:// scheduler", metavar="F"
    ),
    Option(
        ("--tls-key",), "tls_key", "client private key file for a tls:// scheduler", metavar="F"
    ),
)


def _dests(keep: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(o.dest for o in OPTIONS if keep(o)))


#: Which options each mode takes.
MODE_OPTIONS: dict[str, tuple[str, ...]] = {m: _dests(lambda o, m=m: m in o.modes) for m in MODES}
#: Options only a LocalCluster takes (another cluster class gets them in cluster_kwargs).
LOCAL_CLUSTER_ONLY = _dests(lambda o: o.local_only)
#: Options that shape a cluster nbexec starts (meaningless with --address).
CLUSTER_SHAPING = _dests(lambda o: o.shapes_cluster)
#: ``{option: LocalCluster keyword}``.
LOCAL_CLUSTER_KWARGS = {o.dest: o.local_kwarg for o in OPTIONS if o.local_kwarg}

#: Flags that shape the cell's output rather than the executor (accepted by the magic only).
DISPLAY_OPTIONS: tuple[Option, ...] = (
    Option(("--no-table",), "no_table", "do not show the live task table", action="store_true"),
    Option(
        ("--dashboard",),
        "dashboard",
        "show the Dask dashboard's plots under the cell",
        action="store_true",
    ),
    Option(
        ("--background",),
        "background",
        "return at once while the tasks run on",
        action="store_true",
    ),
)


class RaisingParser(argparse.ArgumentParser):
    """An argparse parser whose errors raise ``LineError`` (argparse would print and exit)."""

    def error(self, message: str) -> NoReturn:
        error = LineError(message)
        error.prog = self.prog
        raise error


def build_parser(prog: str = "executor", display_options: bool = False) -> argparse.ArgumentParser:
    """The argparse parser for ``MODE [OPTIONS]``; errors raise ``LineError``."""
    parser = RaisingParser(prog=prog, add_help=False, allow_abbrev=False)
    parser.add_argument("mode", nargs="?", default=None, help="one of: " + ", ".join(MODES))
    for option in OPTIONS + (DISPLAY_OPTIONS if display_options else ()):
        parser.add_argument(*option.flags, **option.argparse_kwargs())
    return parser


_PARSERS: dict[bool, argparse.ArgumentParser] = {}


def parse_line(line: str, *, display_options: bool = False) -> tuple[str | None, dict[str, Any]]:
    """Parse ``MODE [OPTIONS]`` into ``(mode, options)``; options left out are not in the dict.

    Raises ``LineError`` naming the problem and the valid choices. Nothing is ever eval'd.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise LineError(f"cannot split the line {line!r}: {exc}") from None
    parser = _PARSERS.get(display_options)
    if parser is None:  # built once: a cell magic parses its line every time it runs
        parser = _PARSERS[display_options] = build_parser(display_options=display_options)
    namespace = parser.parse_args(words)
    mode = namespace.mode
    if mode is not None and mode not in MODES:
        raise LineError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    options = {k: v for k, v in vars(namespace).items() if k != "mode" and v is not None}
    if "adapt" in options:
        options["adapt"] = tuple(options["adapt"])
    for option in DISPLAY_OPTIONS:  # switches: only "on" is an option
        if options.get(option.dest) is False:
            del options[option.dest]
    return mode, options


def format_line(mode: str, options: dict[str, Any]) -> str:
    """The line that ``parse_line`` reads back as ``(mode, options)``."""
    words = [mode]
    by_dest: dict[str, Option] = {}
    for option in OPTIONS:
        by_dest.setdefault(option.dest, option)
    for dest, value in options.items():
        if dest == "processes":
            words.append("--processes" if value else "--no-processes")
            continue
        known = by_dest.get(dest)
        if known is None:
            raise ValueError(f"unknown option {dest!r}")
        flag = known.flags[-1]
        if known.nargs == 2:
            words += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            words += [flag, shlex.quote(json.dumps(value, sort_keys=True))]
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)
