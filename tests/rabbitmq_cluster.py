"""Real RabbitMQ 3.10 nodes (Debian's rabbitmq-server) on one machine, alone or as a cluster, for tests and benches.

    with RabbitCluster(tmp_path, size=3) as cluster:      # three nodes r1..r3@localhost, joined to r1
        cluster.nodes[0].mqtt                               # each node's own MQTT, Web MQTT, AMQP... ports
        cluster.kill(1); cluster.restart(1)                 # SIGKILL a node, start it again on its data

Everything is this harness's own and on 127.0.0.1: node names, AMQP/MQTT/Web-MQTT/management/distribution
ports, one epmd (started in the foreground on a free port, so it goes when stopped: a node-started epmd
would outlive the nodes), data and log directories, config and enabled-plugins files, and one Erlang cookie
shared by the nodes and the ``rabbitmqctl`` calls. The scripts run straight from the package's ``sbin``
(as root; the ``/usr/sbin`` wrappers switch user).

Authentication: RabbitMQ's internal database only (``auth_url=None``: benches add users with
:meth:`RabbitCluster.add_user`, or use the administrator), or, with ``auth_url``, internal first then
``rabbitmq_auth_backend_http`` pointed at a cloud behind ``rabbitmq_auth_backend_cache`` (docs/rabbitmq.md).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil

_LOGGER = logging.getLogger(__name__)

SBIN = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"))
EPMD = "/usr/bin/epmd"
VHOST = "roost"
ADMIN_USER = "roost-admin"
PLUGINS = (
    "rabbitmq_mqtt",
    "rabbitmq_web_mqtt",
    "rabbitmq_auth_backend_http",
    "rabbitmq_auth_backend_cache",
    "rabbitmq_management",
)
START_TIMEOUT_S = 120.0
CLUSTER_TIMEOUT_S = 90.0
CTL_TIMEOUT_S = 60.0


def missing() -> str | None:
    """Why no RabbitMQ node can run here (a skip reason), or None when the package is installed."""
    if not SBIN or not Path(EPMD).exists():
        return "Debian's rabbitmq-server package is not installed (`make deps` installs it when run as root)"
    if os.geteuid() != 0:
        return "the RabbitMQ scripts under /usr/lib/rabbitmq run directly only as root"
    return None


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RabbitError(AssertionError):
    """A node did not start, join or answer in time (with the tail of its logs)."""


@dataclass
class RabbitNode:
    """One node of a :class:`RabbitCluster` (or a single node): its name, ports, files and process."""

    name: str
    base: Path
    home: Path
    epmd_port: int
    password: str
    auth_url: str | None = None
    cache_ttl_ms: int = 2000
    stats_interval_ms: int = 5000
    amqp: int = field(default_factory=free_port)
    mqtt: int = field(default_factory=free_port)
    web_mqtt: int = field(default_factory=free_port)
    management: int = field(default_factory=free_port)
    dist: int = field(default_factory=free_port)
    extra_config: str = ""
    popen: subprocess.Popen[bytes] | None = None
    started_in_s: float = 0.0

    @property
    def management_url(self) -> str:
        """``http://127.0.0.1:port`` of the node's management API."""
        return f"http://127.0.0.1:{self.management}"

    def amqp_url(self, user: str = ADMIN_USER, password: str | None = None) -> str:
        """``amqp://user:password@127.0.0.1:port/roost`` (the administrator by default)."""
        return f"amqp://{user}:{password if password is not None else self.password}@127.0.0.1:{self.amqp}/{VHOST}"

    @property
    def alive(self) -> bool:
        """Whether the node's process runs."""
        return self.popen is not None and self.popen.poll() is None

    def config(self) -> str:
        """The node's rabbitmq.conf."""
        text = f"""
listeners.tcp.default = 127.0.0.1:{self.amqp}
mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt}
mqtt.allow_anonymous = false
mqtt.vhost = {VHOST}
mqtt.exchange = amq.topic
web_mqtt.tcp.ip = 127.0.0.1
web_mqtt.tcp.port = {self.web_mqtt}
management.tcp.ip = 127.0.0.1
management.tcp.port = {self.management}
collect_statistics_interval = {self.stats_interval_ms}
default_vhost = {VHOST}
default_user = {ADMIN_USER}
default_pass = {self.password}
default_user_tags.administrator = true
log.console = false
log.file.level = info
"""
        if self.auth_url is None:
            text += "auth_backends.1 = internal\n"
        else:
            auth = self.auth_url.rstrip("/")
            text += f"""auth_backends.1 = internal
auth_backends.2.authn = http
auth_backends.2.authz = cache
auth_cache.cached_backend = http
auth_cache.cache_ttl = {self.cache_ttl_ms}
auth_http.http_method = post
auth_http.user_path = {auth}/user
auth_http.vhost_path = {auth}/vhost
auth_http.resource_path = {auth}/resource
auth_http.topic_path = {auth}/topic
"""
        return text + self.extra_config

    def env(self) -> dict[str, str]:
        """The environment the node's scripts (and ``rabbitmqctl`` for it) run with; writes its files."""
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(self.config())
        (self.base / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
        ctl_port = free_port()
        return {
            **keep,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp),
            "RABBITMQ_DIST_PORT": str(self.dist),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        }

    def launch(self) -> None:
        """Start the node's process (in its own process group); :meth:`wait_ready` waits for it."""
        env = self.env()
        with (self.base / "node.out").open("ab") as out:
            self.popen = subprocess.Popen(
                [f"{SBIN[-1]}/rabbitmq-server"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._launched = time.monotonic()

    def ready(self) -> bool:
        """Whether the management API answers (the node booted with its plugins)."""
        try:
            r = httpx.get(f"{self.management_url}/api/overview", auth=(ADMIN_USER, self.password), timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the node answers; RabbitError (with its log tail) when it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.popen is None or self.popen.poll() is not None:
                code = None if self.popen is None else self.popen.returncode
                raise RabbitError(f"RabbitMQ node {self.name} exited ({code}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RabbitError(f"RabbitMQ node {self.name} did not answer in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.25)
        self.started_in_s = time.monotonic() - getattr(self, "_launched", time.monotonic())
        _LOGGER.info("RabbitMQ node %s answered after %.1f s", self.name, self.started_in_s)

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Launch the node and wait until it answers."""
        self.launch()
        self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL the node's whole process group (a crash, as far as the cluster can tell)."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(os.getpgid(self.popen.pid), signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the node's process group, SIGKILL after ``timeout``."""
        if self.popen is None or self.popen.poll() is not None:
            return
        pgid = os.getpgid(self.popen.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.popen.wait(10)

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT_S) -> str:
        """Run ``rabbitmqctl -n <node> args...``; its stdout, or RabbitError with its output."""
        out = subprocess.run(
            [f"{SBIN[-1]}/rabbitmqctl", "-n", self.name, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise RabbitError(f"rabbitmqctl {' '.join(args)} on {self.name} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def running_nodes(self) -> list[str]:
        """The cluster's running nodes as this node sees them (empty when it does not answer)."""
        try:
            r = httpx.get(f"{self.management_url}/api/nodes", auth=(ADMIN_USER, self.password), timeout=5)
        except httpx.HTTPError:
            return []
        if r.status_code != 200:
            return []
        return sorted(n["name"] for n in r.json() if n.get("running"))

    def tail(self, n: int = 40) -> str:
        """The last lines of the node's output and logs."""
        lines: list[str] = []
        for log in [self.base / "node.out", *sorted((self.base / "log").glob("*.log"))]:
            if log.exists():
                lines += [f"{log.name}: {line}" for line in log.read_text(errors="replace").splitlines()[-n:]]
        return "\n".join(lines)

    def rss_mb(self) -> float:
        """The resident memory of the node's Erlang VM (beam.smp), MB."""
        assert self.popen is not None
        children = psutil.Process(self.popen.pid).children(recursive=True)
        beam = [c for c in children if c.name().startswith("beam")]
        assert beam, f"the beam.smp process of {self.name} was not found"
        return float(beam[0].memory_info().rss) / (1 << 20)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the node's management API as the administrator; the decoded JSON (None when empty)."""
        r = httpx.request(
            method, f"{self.management_url}/api{path}", auth=(ADMIN_USER, self.password), json=body, timeout=10
        )
        if r.status_code >= 400:
            raise RabbitError(f"{method} /api{path} on {self.name}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None


class RabbitCluster:
    """``size`` RabbitMQ nodes ``r1@localhost``... sharing one epmd and cookie; r2.. joined to r1."""

    def __init__(
        self,
        base: Path,
        size: int = 3,
        *,
        auth_url: str | None = None,
        cache_ttl_ms: int = 2000,
        stats_interval_ms: int = 5000,
        extra_config: str = "",
    ) -> None:
        self.base = base
        self.home = base / "home"
        self.epmd_port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.cookie = secrets.token_hex(20)
        self.epmd: subprocess.Popen[bytes] | None = None
        self.formed_in_s = 0.0
        self.nodes = [
            RabbitNode(
                name=f"r{i + 1}@localhost",
                base=base / f"r{i + 1}",
                home=self.home,
                epmd_port=self.epmd_port,
                password=self.password,
                auth_url=auth_url,
                cache_ttl_ms=cache_ttl_ms,
                stats_interval_ms=stats_interval_ms,
                extra_config=extra_config,
            )
            for i in range(size)
        ]

    def __enter__(self) -> RabbitCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def amqp_urls(self) -> list[str]:
        """Every node's AMQP URL as the administrator."""
        return [n.amqp_url() for n in self.nodes]

    def start(self, timeout: float = CLUSTER_TIMEOUT_S + START_TIMEOUT_S) -> None:
        """Start epmd and every node, join r2.. to r1 and wait until all run in one cluster."""
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        self.base.mkdir(parents=True, exist_ok=True)
        with (self.base / "epmd.out").open("ab") as out:
            self.epmd = subprocess.Popen(
                [EPMD, "-address", "127.0.0.1", "-port", str(self.epmd_port)], stdout=out, stderr=subprocess.STDOUT
            )
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        self.wait_running(len(self.nodes), timeout=max(5.0, timeout - (time.monotonic() - started)))
        self.formed_in_s = time.monotonic() - started
        _LOGGER.info("RabbitMQ cluster of %d nodes formed in %.1f s", len(self.nodes), self.formed_in_s)

    def wait_running(self, count: int, timeout: float = CLUSTER_TIMEOUT_S) -> list[str]:
        """Wait until a live node reports ``count`` running nodes; their names."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.alive:
                    seen = node.running_nodes()
                    if len(seen) == count:
                        return seen
                    break
            time.sleep(0.5)
        status = ""
        for node in self.nodes:
            if node.alive:
                try:
                    status = node.ctl("cluster_status", "--formatter", "json", timeout=20)
                except (RabbitError, subprocess.TimeoutExpired) as exc:
                    status = str(exc)
                break
        raise RabbitError(f"the cluster has {seen} running, not {count} nodes, after {timeout:.0f} s:\n{status}")

    def cluster_status(self) -> dict[str, Any]:
        """``rabbitmqctl cluster_status`` of the first live node, as JSON."""
        node = next(n for n in self.nodes if n.alive)
        result: dict[str, Any] = json.loads(node.ctl("cluster_status", "--formatter", "json"))
        return result

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout: float = START_TIMEOUT_S) -> None:
        """Start node ``index`` again on its data (it rejoins the cluster) and wait until it answers."""
        self.nodes[index].start(timeout)

    def add_user(self, user: str, password: str, *, tags: str = "") -> None:
        """A user in RabbitMQ's internal database with every permission on the vhost (benches)."""
        node = next(n for n in self.nodes if n.alive)
        node.api("PUT", f"/users/{user}", {"password": password, "tags": tags})
        node.api("PUT", f"/permissions/{VHOST}/{user}", {"configure": ".*", "write": ".*", "read": ".*"})

    def rss_mb(self) -> list[float]:
        """Each live node's Erlang VM resident memory, MB."""
        return [n.rss_mb() for n in self.nodes if n.alive]

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL), then the epmd this cluster started, by its pid."""
        for node in self.nodes:
            if node.alive:
                assert node.popen is not None
                os.killpg(os.getpgid(node.popen.pid), signal.SIGTERM)
        for node in self.nodes:
            node.stop(timeout=20.0)
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(5)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait(5)
        self.epmd = None
