"""The cloud companion in one process: store, embedded broker, ingest and the HTTP API on one event loop.

    async with CloudServer(config) as server:   # listening once entered
        print(server.info.base_url)
        await server.wait()                      # until cancelled, or a part fails

:func:`serve` does just that and calls ``ready`` once HTTP and the broker accept connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn

from cloud.api import ApiContext, create_app
from cloud.apimgmt.service import ManagedApi
from cloud.authz import AllowListAuthorizer, Authorizer
from cloud.broker.base import MessageBroker
from cloud.broker.embedded import EmbeddedBroker
from cloud.broker.rabbitmq_admin import ConnectionClosing
from cloud.broker.rabbitmq_auth import RabbitMQAuth, rabbitmq_auth_router
from cloud.cloudrules.feed import RulesFeed
from cloud.cloudrules.routes import rules_router
from cloud.cloudrules.runner import CloudRules
from cloud.config import CloudConfig
from cloud.console import console_router
from cloud.errors import CloudError, ListenError
from cloud.events_api import events_router
from cloud.export_api import export_router
from cloud.fleet.bundles import BundleStore, load_key
from cloud.fleet.campaign_routes import campaign_router, link_for
from cloud.fleet.campaigns import CampaignDB, CampaignRunner
from cloud.fleet.commands import CommandCenter
from cloud.fleet.fleet_routes import fleet_router
from cloud.fleet.registry import FleetRegistry
from cloud.fleet.routes import commands_router
from cloud.fleet.service import FleetService, Selector
from cloud.identity.mqtt_refresh import MqttTokenRefresher
from cloud.identity.service import IdentityService
from cloud.ingest import Ingest
from cloud.policy.authorizer import PolicyAuthorizer
from cloud.policy.decision import DecisionPoint
from cloud.reports.routes import reports_router
from cloud.reports.service import reports_for
from cloud.retention import RetentionPolicy, RetentionTask
from cloud.stats import Stats
from cloud.stores import make_store
from cloud.tokenauth import TokenAuthenticator
from cloud.worker_health import ingest_health_app

if TYPE_CHECKING:
    from cloud.broker.rabbitmq_amqp import RabbitMQBroker

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where a running cloud listens (the real ports, also when the config asked for port 0)."""

    host: str
    port: int
    scheme: str
    tcp_port: int | None = None

    @property
    def base_url(self) -> str:
        """``http(s)://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def mqtt_ws_url(self) -> str:
        """``ws(s)://host:port/mqtt``."""
        return ("wss" if self.scheme == "https" else "ws") + self.base_url.removeprefix(self.scheme) + "/mqtt"

    @property
    def api_url(self) -> str:
        """``http(s)://host:port/api/v1``."""
        return self.base_url + "/api/v1"


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=512)
    except OSError as exc:
        raise ListenError(f"{host}:{port}", exc.strerror or str(exc)) from exc


class CloudServer:
    """Store, broker, ingest and HTTP API; an async context manager that starts and stops them in order."""

    def __init__(self, config: CloudConfig, *, authorizer: Authorizer | None = None) -> None:
        """Wire the parts; with no ``authorizer`` given, the enforcement points are built from the config.

        Authentication: the authorization server's access tokens (when identity is enabled), then the
        ``[auth]`` allow-list. Authorization: the policy decision point, whose policy history is kept in
        ``policies.jsonl`` next to the store (a policy set changed through the API survives a restart).
        """
        self.config = config
        self.stats = Stats()
        self.identity: IdentityService | None = (
            IdentityService(config.identity, config.identity_db_path, public_url=config.server.public_url)
            if config.identity.enabled
            else None
        )
        self.tokens: TokenAuthenticator | None = None
        self.policy: PolicyAuthorizer | None = None
        decisions: DecisionPoint | None = None
        if authorizer is None:
            authenticator: Authorizer = AllowListAuthorizer(config.auth)
            if self.identity is not None:
                self.tokens = TokenAuthenticator(
                    self.identity.verifier,
                    authenticator,
                    leeway_s=config.identity.leeway_s,
                    is_revoked=self.identity.is_revoked,
                    on_invalid=self._token_refused,
                )
                authenticator = self.tokens
            decisions = DecisionPoint(history_path=config.store.path.parent / "policies.jsonl")
            self.policy = PolicyAuthorizer(decisions, authenticator)
            authorizer = self.policy
        self.authorizer: Authorizer = authorizer
        self.store = make_store(config)
        self.retention: RetentionTask | None = None
        self.role = config.server.role
        self.embedded: EmbeddedBroker | None = None
        self.rabbit: RabbitMQBroker | None = None
        self.broker: MessageBroker
        if config.broker.kind == "rabbitmq":  # scale-out: RabbitMQ's MQTT plugin faces the gateways (docs/deploy.md)
            consume = self.role != "api"
            # aio-pika (about 17 MB) is loaded only here, by a cloud that uses RabbitMQ
            from cloud.broker.rabbitmq_amqp import RULES_KINDS, AmqpSettings, RabbitMQBroker

            amqp = AmqpSettings.from_config(config.broker, consume=consume, exchange=config.rabbitmq.exchange)
            if self.role == "rules":  # every gateway's readings and status, from a queue of its own
                amqp = dataclasses.replace(amqp, queue=config.rules.amqp_queue, bindings=RULES_KINDS)
            self.rabbit = RabbitMQBroker(amqp)
            self.broker = self.rabbit
        else:
            self.embedded = EmbeddedBroker(
                self.authorizer,
                self.stats,
                tcp_listen=config.broker.tcp_address,
                connect_timeout_s=config.broker.connect_timeout_s,
                queue_max=config.broker.queue_max,
                session_check=self.tokens.still_valid if self.tokens is not None else None,
            )
            if decisions is not None:  # a policy change re-checks the subscriptions of connected clients
                self.embedded.follow_policy(decisions)
            self.broker = self.embedded
        self.token_refresher: MqttTokenRefresher | None = (
            MqttTokenRefresher(self.identity, self._publish_token_result) if self.identity is not None else None
        )
        self.commands = CommandCenter(config.store.path.parent / "fleet.sqlite", self.broker)
        self.registry = FleetRegistry(config.store.path.parent / "fleet.sqlite")
        self.fleet = FleetService(self.store, self.registry, self.commands, self.broker, self.identity)
        self.bundles: BundleStore | None = None
        self.campaigns: CampaignRunner | None = None
        if config.updates.key_file is not None:  # update campaigns (docs/ota.md)
            self.bundles = BundleStore(config.updates.folder, load_key(config.updates.key_file))
            self.campaigns = CampaignRunner(
                CampaignDB(config.store.path.parent / "fleet.sqlite"),
                self.commands,
                link=link_for(self.bundles, config.updates.grant_ttl_s),
                version_of=self._reported_version,
                audit=self.registry.audit,
            )
        self.ingest = Ingest(
            self.broker,
            self.store,
            self.stats,
            config.ingest,
            on_token=self.token_refresher.submit if self.token_refresher is not None else None,
            on_command_result=self.commands.on_result,
            on_reported=self.fleet.on_reported,
            on_online=self.fleet.on_online,
        )
        # Rules over the ingest stream, for rules that span gateways (docs/rules.md, "Rules in the cloud")
        self.cloud_rules: CloudRules | None = (
            CloudRules(config.rules, self.store, registry=self.registry, commands=self.commands)
            if config.rules.enabled and self.role in ("all", "rules")  # an ingest worker sees only its share
            else None
        )
        self.rules_feed: RulesFeed | None = None
        if self.cloud_rules is not None and self.role == "rules":
            self.rules_feed = RulesFeed(self.broker, self.cloud_rules, config.ingest)
        elif self.cloud_rules is not None:
            self.ingest.listener = self.cloud_rules
        self.reports = reports_for(config, self.store, self.registry)  # daily reports (docs/reports.md)
        self.ingest.on_received = self.reports.traffic.received
        self.rabbitmq_auth: RabbitMQAuth | None = (
            RabbitMQAuth(
                config.rabbitmq,
                self.authorizer,
                self.stats,
                audit=self.policy.decision_point.audit if self.policy is not None else None,
                still_valid=self.tokens.still_valid if self.tokens is not None else None,
            )
            if config.rabbitmq.enabled
            else None
        )
        self.rabbitmq_closing: ConnectionClosing | None = None
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._info: ServerInfo | None = None
        self.managed_api: ManagedApi | None = None

    async def _reported_version(self, tenant: str, gateway: str) -> str | None:
        found = await self.fleet.select(tenant, Selector(ids=(gateway,)))
        version = found[0]["version"] if found else None
        return version if isinstance(version, str) else None

    async def _publish_token_result(self, topic: str, payload: bytes) -> None:
        await self.broker.publish(topic, payload, qos=1, retain=False)

    def _token_refused(self, _reason: str) -> None:
        self.stats.refused_tokens += 1

    @property
    def info(self) -> ServerInfo:
        """Where the server listens; only once started."""
        if self._info is None:
            raise CloudError("the cloud server is not running")
        return self._info

    async def __aenter__(self) -> CloudServer:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        cfg = self.config
        deadline = _Deadline(cfg.server.shutdown_timeout_s)
        await self.store.open()
        self._stack.push_async_callback(deadline.run, "store", self.store.close)
        if self.role in ("all", "ingest"):  # retention and partitions ahead: the workers that write (docs/storage.md)
            self.retention = RetentionTask(
                self.store, RetentionPolicy.from_config(cfg.retention), interval_s=cfg.retention.interval_s
            )
            retention_task = asyncio.create_task(self.retention.run(), name="store-retention")
            self._stack.push_async_callback(deadline.run, "retention", lambda: _cancel(retention_task))
        await self.commands.open()
        self._stack.push_async_callback(deadline.run, "commands", self.commands.close)
        await self.registry.open()
        self._stack.push_async_callback(deadline.run, "fleet registry", self.registry.close)
        self._stack.push_async_callback(deadline.run, "fleet", self.fleet.close)
        self.reports.start(schedule=cfg.reports.enabled and self.role in ("all", "api"))
        self._stack.push_async_callback(deadline.run, "reports", self.reports.stop)
        if self.identity is not None:
            await self.identity.open()
            self._stack.push_async_callback(deadline.run, "identity", self.identity.close)
            purge_task = asyncio.create_task(self.identity.purge_forever(), name="identity-purge")
            self._tasks.append(purge_task)
            self._stack.push_async_callback(deadline.run, "identity purge", lambda: _cancel(purge_task))
        if self.token_refresher is not None:
            self._stack.push_async_callback(deadline.run, "token refresh", self.token_refresher.close)
        if self.cloud_rules is not None:  # before ingest starts; stopped after it, so its last outputs are stored
            await self.cloud_rules.start()
            self._stack.push_async_callback(deadline.run, "cloud rules", self.cloud_rules.close)
        await self.broker.start()
        if self.rules_feed is not None:  # the rules worker: its own queue, no storing
            feed_task = asyncio.create_task(self.rules_feed.run(), name="cloud-rules-feed")
            self._tasks.append(feed_task)
            self._stack.push_async_callback(deadline.run, "rules feed", lambda: _finish(feed_task))
        elif self.role != "api":  # an API worker publishes (commands, desired state) but consumes nothing
            ingest_task = asyncio.create_task(self.ingest.run(), name="cloud-ingest")
            self._tasks.append(ingest_task)
            self._stack.push_async_callback(deadline.run, "ingest", lambda: _finish(ingest_task))
        self._stack.push_async_callback(deadline.run, "broker", self.broker.stop)
        if self.role in ("ingest", "rules"):
            details = self.rabbit.details if self.rabbit is not None else dict
            if self.rules_feed is not None:
                feed, rabbit = self.rules_feed, details
                details = lambda: {**rabbit(), "rules_feed": dataclasses.asdict(feed.stats)}  # noqa: E731
            app = ingest_health_app(self.store, self.broker, self.stats, self._ingest_error, details)
            await self._serve_http(app, deadline)
            return
        if self.campaigns is not None:
            await self.campaigns.db.open()
            self._stack.push_async_callback(deadline.run, "campaign tables", self.campaigns.db.close)
            await self.campaigns.start()
            self._stack.push_async_callback(deadline.run, "campaigns", self.campaigns.close)

        embedded = self.embedded
        app = create_app(
            ApiContext(
                config=cfg,
                store=self.store,
                stats=self.stats,
                authorizer=self.authorizer,
                broker=self.broker,
                serve_websocket=embedded.serve_websocket if embedded is not None else None,
                tcp_port=lambda: embedded.tcp_port if embedded is not None else None,
                ingest_error=self._ingest_error,
                identity=self.identity,
                policy=self.policy,
            )
        )
        app.include_router(commands_router(self.commands))
        app.include_router(fleet_router(self.fleet))
        updates = campaign_router(
            self.bundles, self.campaigns, self.fleet, public_url=cfg.server.public_url,
            max_gateways=cfg.updates.max_campaign_gateways,
        )  # fmt: skip
        app.include_router(updates)
        app.include_router(events_router(self.store))
        app.include_router(rules_router(self.cloud_rules))
        app.include_router(export_router(self.store))
        app.include_router(reports_router(self.reports))
        app.include_router(console_router())  # the operators' web app at /console/ (and /)
        if self.rabbitmq_auth is not None:  # RabbitMQ's HTTP auth backend (docs/rabbitmq.md)
            app.include_router(rabbitmq_auth_router(self.rabbitmq_auth))
        if self.identity is not None and cfg.api.enabled:  # the managed API (docs/developers.md)
            decisions = self.policy.decision_point if self.policy is not None else None
            self.managed_api = ManagedApi(cfg.api, cfg.store.path.parent / "apimgmt.sqlite", self.identity, decisions)
            await self.managed_api.open()
            self._stack.push_async_callback(deadline.run, "managed API", self.managed_api.close)
            self.managed_api.install(app)
        self._start_rabbitmq_closing(deadline)
        await self._serve_http(app, deadline)

    def _ingest_error(self) -> str | None:
        return self.ingest.last_store_error if self.role != "api" else None

    async def _serve_http(self, app: Any, deadline: _Deadline) -> None:
        cfg = self.config
        sock = _listen(cfg.server.host, cfg.server.port)
        uv_config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            ssl_certfile=str(cfg.server.certfile) if cfg.server.certfile else None,
            ssl_keyfile=str(cfg.server.keyfile) if cfg.server.keyfile else None,
            timeout_graceful_shutdown=max(1, int(cfg.server.shutdown_timeout_s / 2)),
            # MQTT has its own keep-alive; WebSocket pings only hurt: paho 2.x answers them with an
            # unmasked pong, which the server must treat as a protocol error and disconnect for.
            ws_ping_interval=None,
        )
        uv_config.load()
        http = uvicorn.Server(uv_config)
        http.lifespan = uv_config.lifespan_class(uv_config)  # what Server._serve sets up; we skip its signal handlers
        try:
            await http.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        http_task = asyncio.create_task(http.main_loop(), name="cloud-http")
        self._tasks.append(http_task)
        self._stack.push_async_callback(deadline.run, "http", lambda: _stop_http(http, http_task, sock))
        bound = sock.getsockname()
        tcp_port = self.embedded.tcp_port if self.embedded is not None else None
        self._info = ServerInfo(
            host=cfg.server.host,
            port=bound[1],
            scheme="https" if cfg.server.certfile else "http",
            tcp_port=tcp_port,
        )
        if self.embedded is None:
            _LOGGER.info("cloud %s worker listening on %s (broker: RabbitMQ)", self.role, self._info.base_url)
            return
        _LOGGER.info(
            "cloud listening on %s (MQTT over WebSockets %s%s)",
            self._info.base_url,
            self._info.mqtt_ws_url,
            f", MQTT over TCP port {tcp_port}" if tcp_port else "",
        )

    def _start_rabbitmq_closing(self, deadline: _Deadline) -> None:
        """With a RabbitMQ management URL: revoked (and expired) tokens close their RabbitMQ connections."""
        identity = self.identity
        if not self.config.rabbitmq.management_url or identity is None:
            return

        def subject_of(jti: str) -> str | None:
            record = identity.db.access(jti)
            return record.subject if record is not None else None

        self.rabbitmq_closing = ConnectionClosing(
            self.config.rabbitmq,
            self.stats,
            revoked=lambda: identity.db.revoked_jtis(time.time()),
            subject_of=subject_of,
            auth=self.rabbitmq_auth,
            still_valid=self.tokens.still_valid if self.tokens is not None else None,
        )
        self.rabbitmq_closing.start()
        self._stack.push_async_callback(deadline.run, "rabbitmq connection closer", self.rabbitmq_closing.stop)

    async def wait(self) -> None:
        """Wait until cancelled; raise CloudError when a part (ingest, HTTP) stops on its own."""
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        task = done.pop()
        exc = task.exception() if not task.cancelled() else None
        raise CloudError(f"{task.get_name()} stopped unexpectedly" + (f": {exc!r}" if exc else "")) from exc


class _Deadline:
    """One shutdown budget shared by the steps (it starts with the first); a step past it is logged, left behind."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._end: float | None = None

    async def run(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run one shutdown step within what is left of the budget."""
        loop = asyncio.get_running_loop()
        if self._end is None:
            self._end = loop.time() + self._seconds
        try:
            await asyncio.wait_for(step(), timeout=max(0.2, self._end - loop.time()))
        except TimeoutError:
            _LOGGER.warning("shutdown: %s still busy after the deadline, left behind", name)
        except Exception:
            _LOGGER.exception("shutdown: %s failed", name)


async def _finish(task: asyncio.Task[None]) -> None:
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        _LOGGER.exception("ingest had failed")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _stop_http(http: uvicorn.Server, task: asyncio.Task[None], sock: socket.socket) -> None:
    http.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await http.shutdown(sockets=[sock])


async def serve(config: CloudConfig, *, ready: Callable[[ServerInfo], None] | None = None) -> None:
    """Run the cloud until cancelled; ``ready(info)`` is called once HTTP and the broker accept connections."""
    async with CloudServer(config) as server:
        if ready is not None:
            ready(server.info)
        await server.wait()
