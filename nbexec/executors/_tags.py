"""Task tags: ``dask-resource:NAME=AMOUNT`` becomes a Dask worker resource (Prefect 1's syntax).

The one parser of resource tags: ``@nbexec.task(tags=...)`` checks them with it when the task is
defined, and the Dask executor turns them into ``resources=`` when a task is submitted.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["parse_resources"]

_PREFIX = "dask-resource"


def parse_resources(tags: Iterable[str] | None) -> dict[str, float]:
    """Dask worker resources from tags ``dask-resource:NAME=AMOUNT`` (prefix case-insensitive).

    Other tags are ignored; a malformed resource tag is a ValueError naming it.
    """
    resources: dict[str, float] = {}
    for tag in tags or ():
        if not isinstance(tag, str) or not tag.lower().startswith(_PREFIX):
            continue
        prefix, sep, value = tag.partition("=")
        parts = prefix.split(":")
        if not sep or len(parts) < 2 or not parts[1]:
            raise ValueError(
                f"malformed resource tag {tag!r}: expected 'dask-resource:NAME=AMOUNT'"
            )
        try:
            resources[parts[1]] = float(value)
        except ValueError:
            raise ValueError(f"malformed resource tag {tag!r}: {value!r} is not a number") from None
    return resources
