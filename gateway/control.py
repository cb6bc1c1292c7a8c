"""The gateway's local control endpoint: JSON lines on a unix socket in the state folder (mode 0600).

``roost gateway pair ...`` and ``roost gateway devices`` talk to the running daemon through it. It is
the minimal local way in until the local API (issue 9) exists: only users who can read the state
folder (the service user, root) reach it. One request per connection: a JSON object with ``op`` on one
line; the answer is one JSON line, ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024
REQUEST_TIMEOUT_S = 5.0
HANDLER_TIMEOUT_S = 30.0

Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class ControlError(Exception):
    """A control request that cannot be carried out; the message is shown to the technician."""


class NotRunning(ControlError):
    """No daemon answers on the control socket (it is not running, or runs with another state folder)."""


class ControlServer:
    """Serves ``handlers`` by ``op`` on a unix socket until cancelled."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.requests = 0
        self._started = asyncio.Event()

    async def wait_started(self) -> None:
        """Wait until the socket accepts connections."""
        await self._started.wait()

    async def run(self) -> None:
        """Listen until cancelled; the socket file is removed on the way out."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a daemon that was killed
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_REQUEST)
        except OSError as exc:  # a path too long for a unix socket, a read-only folder: the gateway runs on without
            _LOGGER.warning(
                "No local control socket at %s (%s): roost gateway pair/label cannot reach it", self.path, exc
            )
            await asyncio.Event().wait()
            raise  # pragma: no cover
        finally:
            os.umask(old)
        try:
            async with server:
                self._started.set()
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            answer = await self._answer(reader)
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            _LOGGER.debug("control client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), REQUEST_TIMEOUT_S)

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
            request = json.loads(line)
        except (ValueError, asyncio.LimitOverrunError, TimeoutError) as exc:
            return {"ok": False, "error": f"not a JSON request line: {exc}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object with 'op'"}
        op = request.get("op")
        handler = self.handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown op {op!r}; known: {', '.join(sorted(self.handlers))}"}
        try:
            result = await asyncio.wait_for(handler(request), HANDLER_TIMEOUT_S)
        except TimeoutError:
            return {"ok": False, "error": f"{op} took longer than {HANDLER_TIMEOUT_S:g} s"}
        except Exception as exc:  # the technician sees what went wrong; the daemon carries on
            _LOGGER.info("control %s failed: %s", op, exc)
            return {"ok": False, "error": str(exc) or type(exc).__name__}
        return {"ok": True, "result": result}


async def request(path: Path, payload: Mapping[str, Any], timeout: float = HANDLER_TIMEOUT_S + 5) -> Any:
    """Send one request to the daemon at ``path``; its result, or ControlError with the daemon's message."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=4 * 1024 * 1024), 5)
    except (OSError, TimeoutError) as exc:
        raise NotRunning(f"the gateway is not running, or not here (no control socket at {path}: {exc})") from None
    try:
        writer.write(json.dumps(dict(payload)).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"the gateway did not answer: {exc or 'timeout'}") from None
    finally:
        writer.close()
    try:
        answer = json.loads(line)
    except ValueError:
        raise ControlError("the gateway's answer is not JSON") from None
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "failed")))
    return answer.get("result")


def handlers_for(
    adapters: list[Any], registry: Any, status: Callable[[], Awaitable[Any]] | None = None
) -> dict[str, Handler]:
    """The daemon's control ops: pair (a permit-join window, or one device by ``id``), unpair, devices and label;
    ``status`` (what ``roost gateway status`` and the local page show) when ``status`` is given.

    Pairing a device by id (BLE: ``{"op": "pair", "kind": "ble", "id": MAC, "key": HEX, ...}``) goes to the
    running adapter of that kind (it records it in the registry and takes it at once); with no such adapter
    running, a BLE device is only recorded (``"active": false``) and taken when the adapter starts.
    """

    def by_id(kind: object, method: str) -> Any:
        return next((a for a in adapters if getattr(a, "kind", None) == kind and hasattr(a, method)), None)

    async def pair_device(req: Mapping[str, Any]) -> Any:
        kind = req.get("kind")
        adapter = by_id(kind, "pair_device")
        try:
            if adapter is not None:
                return await adapter.pair_device(
                    req.get("id"), key=req.get("key"), name=req.get("name"), location=req.get("location")
                )
            if kind != "ble":
                raise ControlError(f"{kind!r} devices are not paired by id")
            from gateway.adapters.ble import paired

            address, key = paired.check_mac(req.get("id")), paired.check_key(req.get("key"))
            name, location = (
                paired.check_label("name", req.get("name")),
                paired.check_label("location", req.get("location")),
            )
            entry = await asyncio.to_thread(paired.record, registry, address, key=key, name=name, location=location)
            return {**entry, "active": False}
        except ValueError as exc:  # PairingRefused: a malformed address or key
            raise ControlError(str(exc)) from None

    async def unpair(req: Mapping[str, Any]) -> Any:
        kind = req.get("kind")
        adapter = by_id(kind, "unpair_device")
        try:
            if adapter is not None:
                return await adapter.unpair_device(req.get("id"))
            if kind != "ble":
                raise ControlError(f"{kind!r} devices are not unpaired by id")
            from gateway.adapters.ble import paired

            address = paired.check_mac(req.get("id"))
            if not await asyncio.to_thread(paired.forget, registry, address):
                raise ControlError(f"{address} is not paired")
            return {"kind": kind, "id": address, "removed": True, "active": False}
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    async def pair(req: Mapping[str, Any]) -> Any:
        if req.get("id") is not None:
            return await pair_device(req)
        kind = req.get("kind")
        adapter = next((a for a in adapters if getattr(a, "kind", None) == kind and hasattr(a, "permit")), None)
        if adapter is None:
            can = [a.kind for a in adapters if hasattr(a, "permit")]
            raise ControlError(f"no {kind!r} adapter is running that can pair (running: {', '.join(can) or 'none'})")
        seconds = req.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            raise ControlError("seconds must be a whole number")
        return await adapter.permit(seconds, name=str(req.get("name") or ""), location=str(req.get("location") or ""))

    async def devices(req: Mapping[str, Any]) -> Any:
        """The registry's devices (never their secrets), then those heard but not paired (``pending()``)."""
        kind = req.get("kind") if isinstance(req.get("kind"), str) else None
        listed: list[dict[str, Any]] = await asyncio.to_thread(registry.devices, kind)
        for a in adapters:
            if hasattr(a, "pending") and kind in (None, getattr(a, "kind", None)):
                listed.extend(a.pending())
        return listed

    async def label(req: Mapping[str, Any]) -> Any:
        kind, device_id = req.get("kind"), req.get("id")
        if not isinstance(kind, str) or not isinstance(device_id, str):
            raise ControlError("label needs kind and id")
        name, location = req.get("name"), req.get("location")
        if kind == "ble":
            from gateway.adapters.ble.config import normalize_mac

            try:
                device_id = normalize_mac(device_id)
            except ValueError as exc:
                raise ControlError(str(exc)) from None
        adapter = next((a for a in adapters if getattr(a, "kind", None) == kind and hasattr(a, "label")), None)
        if adapter is not None:
            return await adapter.label(device_id, name=name, location=location)
        return await asyncio.to_thread(registry.label, kind, device_id, name=name, location=location)

    ops: dict[str, Handler] = {"pair": pair, "unpair": unpair, "devices": devices, "label": label}
    if status is not None:

        async def status_op(req: Mapping[str, Any]) -> Any:
            return await status()

        ops["status"] = status_op
    return ops
