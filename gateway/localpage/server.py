"""The local page's HTTPS server (aiohttp): routes, sign-in, CSRF checks, the live stream, mDNS.

Started by the daemon as one task when ``[local] enabled = true`` (:func:`serve`); it uses the same
handlers as the control socket (pair, devices, label, status), so the page and ``roost gateway ...``
always agree. Everything it shows is local: it works with no cloud at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web

from gateway.localpage import auth, cert, devices, pages, pin
from gateway.localpage import status as page_status
from gateway.localpage.config import PIN_FOLDER
from gateway.localpage.live import LiveFeed, TooManyClients

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.control import Handler
    from gateway.daemon import Daemon

_LOGGER = logging.getLogger(__name__)

SESSION_COOKIE = "roost_session"
FORM_COOKIE = "roost_signin"
CSRF_HEADER = "X-Roost-CSRF"
MAX_BODY = 16 * 1024
STREAM_PING_S = 15.0
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send "Origin: null" with forms
    "Cache-Control": "no-store",
}
_CLI_FIELDS = (("--mac", "Bluetooth address"), ("--key", "Bind key"), ("--name", "Name"), ("--location", "Location"))

PIN_KEY = web.RequestKey("pin", pin.PinHash)
SESSION_KEY = web.RequestKey("session", auth.Session)

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page_words(message: str) -> str:
    """The adapters' messages name command-line options; the page names its fields."""
    for option, label in _CLI_FIELDS:
        message = message.replace(option, label)
    return message


class LocalPage:
    """The page's state: sessions, throttle, live feed; :meth:`run` serves until cancelled."""

    def __init__(
        self,
        config: GatewayConfig,
        daemon: Daemon,
        handlers: Mapping[str, Handler],
        *,
        mdns_interfaces: Sequence[str] | None = None,
        allowed: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.local = config.local
        self.daemon = daemon
        self.handlers = handlers
        self.host = cert.host_name(daemon.gateway_id)
        self.folder = config.gateway.state_dir / PIN_FOLDER
        self.sessions = auth.Sessions(self.local.session_idle_s)
        self.throttle = auth.Throttle(self.local.pin_attempts, self.local.lockout_s)
        self.feed = LiveFeed(daemon.hub, queue_size=self.local.live_queue, max_clients=self.local.live_clients)
        self.certificate: cert.PageCertificate | None = None
        self.port = self.local.port
        self.announced = False
        self.started = asyncio.Event()
        self.refused_csrf = 0
        self._mdns_interfaces = mdns_interfaces
        self.allowed = allowed
        self._pin_problem = ""
        """Device management's switch: the operator disabled the page, or locked the gateway."""
        self._static = {name: resources.files("gateway.localpage").joinpath("static", name).read_bytes()
                        for name in STATIC}  # fmt: skip

    # -- serving ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (routes and middlewares)."""
        app = web.Application(middlewares=[self._headers, self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/static/{name}", self._static_file)
        app.router.add_get("/signin", self._signin_form)
        app.router.add_post("/signin", self._signin)
        app.router.add_post("/signout", self._signout)
        app.router.add_get("/", self._status_page)
        app.router.add_get("/api/status", self._status_json)
        app.router.add_get("/pairing", self._pairing_page)
        app.router.add_post("/pairing/zigbee", self._zigbee_permit)
        app.router.add_post("/pairing/ble", self._ble_pair)
        app.router.add_post("/pairing/i2c", self._i2c_scan)
        app.router.add_get("/api/nearby", self._nearby_json)
        app.router.add_get("/wired", self._wired_page)
        app.router.add_post("/wired/test", self._wired_test)
        app.router.add_get("/live", self._live_page)
        app.router.add_get("/api/live", self._live_stream)
        app.router.add_get("/sensors", self._sensors_page)
        app.router.add_post("/sensors/label", self._label)
        return app

    async def run(self) -> None:
        """Serve HTTPS (and announce it over mDNS) until cancelled."""
        self.certificate = await asyncio.to_thread(cert.ensure, self.folder, self.host)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate.cert, self.certificate.key)
        # handler_cancellation: a browser that goes away frees its live stream at once, not at the next ping.
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.local.host, self.local.port, ssl_context=context)
            try:
                await site.start()
            except OSError as exc:
                hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)" if self.local.port < 1024 else ""
                _LOGGER.error("The local page cannot listen on port %d: %s%s", self.local.port, exc, hint)
                await asyncio.Event().wait()  # the gateway carries on without its page
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            self.feed.start()
            _LOGGER.info(
                "Local page on https://%s:%d/ (certificate SHA-256 %s)", self.host, self.port,
                self.certificate.fingerprint,
            )  # fmt: skip
            async with self._mdns() as up:
                self.announced = up
                self.started.set()
                await asyncio.Event().wait()
        finally:
            self.feed.stop()
            await runner.cleanup()

    @contextlib.asynccontextmanager
    async def _mdns(self) -> AsyncIterator[bool]:
        if not self.local.mdns:
            yield False
            return
        from gateway.localpage import mdns

        async with mdns.announced(self.host, self.port, interfaces=self._mdns_interfaces) as up:
            yield up

    # -- middlewares -----------------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Route) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if isinstance(response, web.HTTPException) and response.status >= 300:
            raise response
        return response

    @web.middleware
    async def _guard(self, request: web.Request, handler: Route) -> web.StreamResponse:
        """No PIN: only the notice. Not signed in: only sign-in. State changes: CSRF token and origin checked."""
        if request.path.startswith("/static/"):
            return await handler(request)
        if request.path == "/favicon.ico":
            raise web.HTTPNotFound()
        if not self.allowed():
            return self._html(pages.turned_off(self.host), status=503)
        try:
            hashed = await asyncio.to_thread(pin.load, self.local.pin_path(self.config.gateway.state_dir))
        except pin.PinFileError as exc:
            if str(exc) != self._pin_problem:  # once per problem, not once per request
                self._pin_problem = str(exc)
                _LOGGER.warning("The local page's PIN file is unusable (%s): the page stays locked", exc)
            return self._html(pages.no_pin(self.host), status=503)
        self._pin_problem = ""
        if hashed is None:
            return self._html(pages.no_pin(self.host), status=503)
        request[PIN_KEY] = hashed
        if request.path == "/signin":
            return await handler(request)
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if request.path.startswith("/api/") or request.method != "GET":
                return web.json_response({"error": "sign in first"}, status=401)
            raise web.HTTPSeeOther("/signin")
        request[SESSION_KEY] = session
        if request.method not in ("GET", "HEAD"):
            problem = await self._csrf_problem(request, session.csrf)
            if problem:
                self.refused_csrf += 1
                _LOGGER.info("Local page refused a %s %s: %s", request.method, request.path, problem)
                return web.json_response({"error": f"refused: {problem}; reload the page and try again"}, status=403)
        return await handler(request)

    async def _csrf_problem(self, request: web.Request, expected: str) -> str:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"https://{request.host}":
            return f"the request came from another site ({origin[:60]})"
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            form = await request.post()
            value = form.get("csrf")
            given = value if isinstance(value, str) else None
        if not auth.same_token(expected, given):
            return "the form's security token is missing or out of date"
        return ""

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _html(text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    def _page(self, request: web.Request, title: str, body: str, current: str, *, live: bool = False) -> web.Response:
        session = request[SESSION_KEY]
        flash, session.flash = list(session.flash), []
        return self._html(
            pages.layout(title, body, host=self.host, csrf=session.csrf, flash=flash, current=current, live=live)
        )

    @staticmethod
    def _back(request: web.Request, to: str, kind: str, text: str) -> NoReturn:
        session = request[SESSION_KEY]
        session.flash.append((kind, text))
        raise web.HTTPSeeOther(to)

    @staticmethod
    async def _form(request: web.Request) -> dict[str, str]:
        form = await request.post()
        return {k: v.strip() for k, v in form.items() if isinstance(v, str)}

    async def _status(self) -> dict[str, Any]:
        handler = self.handlers.get("status")
        if handler is not None:
            result: dict[str, Any] = await handler({"op": "status"})
            return result
        return await page_status.collect(self.config, self.daemon)

    # -- sign-in ---------------------------------------------------------------------------------

    async def _static_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=self._static[name], content_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    def _signin_response(self, request: web.Request, *, error: str = "", wait_s: float = 0.0,
                         status: int = 200) -> web.Response:  # fmt: skip
        # The same token for the whole sign-in: a second tab, or a browser's own request for /favicon.ico that
        # lands here, must not make the form on screen out of date.
        kept = request.cookies.get(FORM_COOKIE, "")
        token = kept if re.fullmatch(r"[A-Za-z0-9_-]{32}", kept) else secrets.token_urlsafe(24)
        response = self._html(pages.signin(self.host, token, error=error, wait_s=wait_s), status=status)
        response.set_cookie(FORM_COOKIE, token, secure=True, httponly=True, samesite="Strict", path="/signin")
        return response

    async def _signin_form(self, request: web.Request) -> web.StreamResponse:
        if self.sessions.get(request.cookies.get(SESSION_COOKIE)) is not None:
            raise web.HTTPSeeOther("/")
        client = request.remote or "?"
        wait = self.throttle.wait_s(client)
        error = f"Too many wrong PINs: wait {wait:.0f} s before trying again." if wait else ""
        return self._signin_response(request, error=error, wait_s=wait)

    async def _signin(self, request: web.Request) -> web.StreamResponse:
        client = request.remote or "?"
        form = await self._form(request)
        cookie = request.cookies.get(FORM_COOKIE)
        origin = request.headers.get("Origin")
        if (
            not cookie
            or not auth.same_token(cookie, form.get("csrf"))
            or (origin is not None and origin != f"https://{request.host}")
        ):
            self.refused_csrf += 1
            return self._signin_response(request, error="The sign-in form was out of date: sign in again.", status=403)
        wait = self.throttle.wait_s(client)
        if wait > 0:
            self.throttle.refused += 1
            return self._signin_response(
                request, error=f"Too many wrong PINs: wait {wait:.0f} s before trying again.", wait_s=wait, status=429
            )
        hashed = request[PIN_KEY]
        entered = form.get("pin", "")
        if not entered:
            return self._signin_response(request, error="Enter the setup PIN.", status=400)
        if not await asyncio.to_thread(hashed.matches, entered):
            locked = self.throttle.failed(client)
            _LOGGER.info("Local page: wrong PIN from %s", client)
            if locked:
                _LOGGER.warning("Local page: %s entered too many wrong PINs; it waits %.0f s", client, locked)
                msg = f"Wrong PIN. Too many wrong PINs: wait {locked:.0f} s before trying again."
                return self._signin_response(request, error=msg, wait_s=locked, status=429)
            left = self.throttle.remaining(client)
            msg = f"Wrong PIN: {left} attempt{'s' if left != 1 else ''} left this minute."
            return self._signin_response(request, error=msg, status=401)
        self.throttle.succeeded(client)
        session = self.sessions.create()
        _LOGGER.info("Local page: signed in from %s", client)
        response = web.HTTPSeeOther("/")
        response.set_cookie(SESSION_COOKIE, session.token, secure=True, httponly=True, samesite="Strict", path="/")
        response.del_cookie(FORM_COOKIE, path="/signin")
        raise response

    async def _signout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.end(request.cookies.get(SESSION_COOKIE))
        response = web.HTTPSeeOther("/signin")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    # -- status ----------------------------------------------------------------------------------

    async def _status_page(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "Status", pages.status_body(await self._status()), "/")

    async def _status_json(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self._status())

    # -- pairing ---------------------------------------------------------------------------------

    def _running(self, kind: str, method: str) -> bool:
        return any(getattr(a, "kind", None) == kind and hasattr(a, method) for a in self.daemon.adapters)

    async def _pairing_page(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        body = (
            pages.zigbee_section(session.csrf, self._running("zigbee", "permit"), list(self.feed.recent_events))
            + pages.ble_section(session.csrf, self._running("ble", "pending"), devices.nearby(self.daemon.adapters))
            + pages.i2c_section(session.csrf, session.results.get("i2c"))
        )
        return self._page(request, "Pairing", body, "/pairing", live=True)

    async def _nearby_json(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(devices.nearby(self.daemon.adapters))

    async def _zigbee_permit(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        raw = form.get("seconds", "")
        try:
            seconds = int(raw)
        except ValueError:
            return self._back(request, "/pairing", "error", f"Seconds: {raw[:20]!r} is not a whole number (1-254)")
        if not 1 <= seconds <= 254:
            return self._back(request, "/pairing", "error", "Seconds: a Zigbee pairing window lasts 1 to 254 seconds")
        req = {"op": "pair", "kind": "zigbee", "seconds": seconds, "name": form.get("name", "")[:64],
               "location": form.get("location", "")[:64]}  # fmt: skip
        try:
            result = await self.handlers["pair"](req)
        except Exception as exc:  # ControlError, ZigbeeError: the adapter's refusal, in its words
            return self._back(request, "/pairing", "error", f"Zigbee: {exc}")
        until = datetime.fromtimestamp(float(result["until"]), UTC).strftime("%H:%M:%S UTC")
        return self._back(request, "/pairing", "ok",
                          f"Zigbee: joining allowed for {result['seconds']} s (until {until}): "
                          "put the device in pairing mode now")  # fmt: skip

    async def _ble_pair(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        mac = form.get("mac", "")
        if not mac:
            return self._back(request, "/pairing", "error", "Bluetooth address: missing (like A4:C1:38:0A:1B:2C)")
        req = {"op": "pair", "kind": "ble", "id": mac, "key": form.get("key") or None,
               "name": form.get("name", ""), "location": form.get("location", "")}  # fmt: skip
        try:
            entry = await self.handlers["pair"](req)
        except Exception as exc:  # ControlError, PairingRefused: the message names the field, never the key
            return self._back(request, "/pairing", "error", _page_words(str(exc)))
        keyed = bool(entry.get("encrypted") or (entry.get("extra") or {}).get("bind_key_set"))
        what = f"{entry.get('id', mac)} added{' with its bind key' if keyed else ''}"
        tail = (": its readings appear on Live readings from its next advertisement" if entry.get("active")
                else ": recorded; BLE is not enabled in gateway.toml, so it is taken once it is")  # fmt: skip
        return self._back(request, "/pairing", "ok", what + tail)

    async def _i2c_scan(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        emulated = form.get("emulated") == "1"
        try:
            found = await devices.i2c_scan(form.get("bus", "1"), emulated)
        except devices.PageInputError as exc:
            return self._back(request, "/pairing", "error", str(exc))
        session = request[SESSION_KEY]
        session.results["i2c"] = {"bus": "emulated" if emulated else form.get("bus", "1"), "devices": found}
        raise web.HTTPSeeOther("/pairing#i2c")

    # -- wired -----------------------------------------------------------------------------------

    async def _wired_page(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        settings = devices.wired_settings(self.config, self.daemon.adapters)
        return self._page(
            request, "Wired devices", pages.wired_body(session.csrf, settings, session.results.get("test")), "/wired"
        )

    async def _wired_test(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        sensor = form.get("sensor", "")
        try:
            values = await devices.modbus_test_read(self.daemon.adapters, sensor)
        except devices.PageInputError as exc:
            return self._back(request, "/wired", "error", f"Test read: {exc}")
        session = request[SESSION_KEY]
        session.results["test"] = {"sensor": sensor, "values": values}
        raise web.HTTPSeeOther("/wired#modbus")

    # -- live readings ---------------------------------------------------------------------------

    async def _live_page(self, request: web.Request) -> web.StreamResponse:
        latest = sorted(self.feed.latest.values(), key=lambda r: (r["sensor"], r["metric"]))
        return self._page(request, "Live readings", pages.live_body(latest), "/live", live=True)

    async def _live_stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: each message is a JSON array of readings and device events."""
        token = request.cookies.get(SESSION_COOKIE)
        try:
            client = self.feed.open()
        except TooManyClients as exc:
            return web.json_response({"error": f"{exc}: close one and reload"}, status=503)
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS})
            await response.prepare(request)
            await response.write(b"retry: 3000\n\n")
            while not client.closed:
                if self.sessions.peek(token) is None:
                    await response.write(b"event: signedout\ndata: {}\n\n")
                    break
                messages = await client.get(STREAM_PING_S)
                if messages:
                    payload = json.dumps(messages, separators=(",", ":"), default=str)
                    await response.write(f"data: {payload}\n\n".encode())
                else:
                    await response.write(b": still here\n\n")
            return response
        finally:
            self.feed.close(client)

    # -- sensors ---------------------------------------------------------------------------------

    async def _sensors_page(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION_KEY]
        listed = await self.handlers["devices"]({"op": "devices"})
        return self._page(request, "Sensors", pages.sensors_body(session.csrf, listed), "/sensors")

    async def _label(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        kind, device_id = form.get("kind", ""), form.get("id", "")
        name, location = form.get("name", ""), form.get("location", "")
        for field, value in (("Name", name), ("Location", location)):
            if len(value) > 64 or any(ord(c) < 32 for c in value):
                return self._back(request, "/sensors", "error", f"{field}: one line of at most 64 characters")
        if not kind or not device_id:
            return self._back(request, "/sensors", "error", "Sensor: choose a sensor to name")
        try:
            entry = await self.handlers["label"](
                {"op": "label", "kind": kind, "id": device_id, "name": name, "location": location}
            )
        except Exception as exc:  # ControlError, an unknown device: in the adapter's words
            return self._back(request, "/sensors", "error", _page_words(str(exc)))
        return self._back(request, "/sensors", "ok",
                          f"{entry.get('id', device_id)}: name {entry.get('name', '')!r}, "
                          f"location {entry.get('location', '')!r}")  # fmt: skip


async def serve(
    config: GatewayConfig, daemon: Daemon, handlers: Mapping[str, Handler], allowed: Callable[[], bool]
) -> None:
    """The daemon's task: the page until cancelled; ``allowed()`` false (device management) shows only a notice."""
    await LocalPage(config, daemon, handlers, allowed=allowed).run()
