"""Reach a Dask scheduler within nbexec's own deadline.

``Client(address, timeout=...)`` alone can hang far past its timeout on a port that accepts TCP
connections and never answers; this probe opens a comm and asks for the scheduler's identity
under ``asyncio.wait_for``, in a short-lived thread with its own event loop (so it also works
inside a Jupyter kernel whose loop is already running).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["probe_scheduler"]


class _BadReply(Exception):
    """The peer accepted the connection but what it sent back is not Dask's protocol."""


async def _identity(address: str, connection_args: dict[str, Any], timeout: float) -> dict:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout, **connection_args)
    try:
        await comm.write({"op": "identity", "reply": True})
        try:
            return await comm.read()
        except (asyncio.CancelledError, OSError):
            raise
        except Exception as exc:  # e.g. a MemoryError for a "frame length" read from HTTP
            raise _BadReply(f"{type(exc).__name__} reading its reply") from exc
    finally:
        comm.abort()


def probe_scheduler(address: str, security: Any, timeout: float) -> dict:
    """Return the scheduler's identity, or raise TimeoutError/OSError naming ``address``.

    ``security`` is a ``distributed.Security``; its client-side connection arguments (TLS) are used.
    """
    connection_args = security.get_connection_args("client")
    result: dict[str, Any] = {}

    async def main() -> None:
        result["identity"] = await asyncio.wait_for(
            _identity(address, connection_args, timeout), timeout
        )

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, name="nbexec-probe-scheduler", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if thread.is_alive() or "identity" not in result and "error" not in result:
        raise TimeoutError(
            f"Timed out after {timeout:g} s reaching the Dask scheduler at {address}"
        )
    error = result.get("error")
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        raise TimeoutError(
            f"Timed out after {timeout:g} s reaching the Dask scheduler at {address}"
        ) from error
    if isinstance(error, OSError):
        raise OSError(f"Cannot reach the Dask scheduler at {address}: {error}") from error
    if isinstance(error, MemoryError):  # a "frame length" read from another protocol's bytes
        error = _BadReply("its reply is not in Dask's protocol")
    if isinstance(error, _BadReply):
        raise OSError(f"{address} did not answer as a Dask scheduler ({error})") from error
    if error is not None:  # e.g. a TypeError for a tls:// address without TLS settings
        raise OSError(
            f"Cannot reach the Dask scheduler at {address}: {type(error).__name__}: {error}"
        ) from error
    identity = result["identity"]
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        raise OSError(f"{address} did not answer as a Dask scheduler: {identity!r}")
    return identity
