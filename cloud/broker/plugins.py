"""amqtt plugins that put every CONNECT, SUBSCRIBE and PUBLISH through the cloud's Authorizer and feed the ingest.

amqtt imports plugins by their dotted path and builds them itself, so they find their broker's hooks in
:data:`_REGISTRY`, keyed by the ``broker_key`` each plugin is configured with (one entry per broker instance).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin

from cloud.authz import Authorizer, Principal
from cloud.policy.model import RequestContext
from cloud.stats import Stats

_LOGGER = logging.getLogger(__name__)

PRINCIPAL_ATTR = "roost.principal"
"""Key of the authenticated Principal in an amqtt Session's ``attributes``."""
CONTEXT_ATTR = "roost.context"
"""Key of the connection's RequestContext (source address, transport) in a Session's ``attributes``."""

AdmissionKey = tuple[str, str | None, str | None]
"""(client id, username, password) of a CONNECT the broker's gate admitted."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the plugins of one broker instance call."""

    authorizer: Authorizer
    stats: Stats
    on_message: Callable[[str, bytes, str, Principal | None], None]
    """Called, in arrival order, for every publish the topic plugin allowed."""
    admitted: dict[AdmissionKey, tuple[Principal, RequestContext]] | None = None
    """CONNECTs the gate authenticated already (the auth plugin takes the principal instead of asking again)."""


_REGISTRY: dict[str, Hooks] = {}


def register(key: str, hooks: Hooks) -> None:
    """Make ``hooks`` the hooks of the plugins configured with ``broker_key = key``."""
    _REGISTRY[key] = hooks


def unregister(key: str) -> None:
    """Forget a broker's hooks (after it stopped)."""
    _REGISTRY.pop(key, None)


def context_of(session: Any) -> RequestContext | None:
    """The request context of an amqtt session's connection, if known."""
    attributes = getattr(session, "attributes", None)
    context = attributes.get(CONTEXT_ATTR) if isinstance(attributes, dict) else None
    return context if isinstance(context, RequestContext) else None


def principal_of(session: Any) -> Principal | None:
    """The principal an amqtt session authenticated as, if any."""
    attributes = getattr(session, "attributes", None)
    principal = attributes.get(PRINCIPAL_ATTR) if isinstance(attributes, dict) else None
    return principal if isinstance(principal, Principal) else None


@dataclass
class PluginConfig:
    """The configuration amqtt hands each of these plugins."""

    broker_key: str = ""


def _hooks(config: Any) -> Hooks:
    key = getattr(config, "broker_key", "")
    try:
        return _REGISTRY[key]
    except KeyError:
        raise RuntimeError(f"no broker hooks registered under {key!r}") from None


class AuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """CONNECT: ask the Authorizer; remember the principal on the session."""

    Config = PluginConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._hooks = _hooks(self.config)

    async def authenticate(self, *, session: Any) -> bool:
        """True when the Authorizer knows the client; the principal is kept on the session."""
        client_id = session.client_id or ""
        admitted = self._hooks.admitted
        found = admitted.pop((client_id, session.username, session.password), None) if admitted is not None else None
        if found is not None:  # the gate verified this CONNECT a moment ago: do not verify the token twice
            principal: Principal | None = found[0]
            session.attributes[CONTEXT_ATTR] = found[1]
        else:
            principal = self._hooks.authorizer.authenticate(client_id, session.username, session.password)
        if principal is None:
            self._hooks.stats.denied_connects += 1
            _LOGGER.warning("CONNECT refused: client %r, username %r", client_id[:40], (session.username or "")[:40])
            return False
        session.attributes[PRINCIPAL_ATTR] = principal
        _LOGGER.debug(
            "CONNECT accepted: client %r as %s %r (tenant %s)",
            client_id,
            principal.kind,
            principal.id,
            principal.tenant,
        )
        return True


_WARNED: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_WARNED_MAX = 1024


def _log_denial(what: str, client: str, topic: str | None) -> None:
    """WARNING the first time a client is denied a topic, DEBUG after (the counters keep the total)."""
    key = (what, client, (topic or "")[:200])
    if key in _WARNED:
        _LOGGER.debug("%s: client %r, topic %r (again)", what, client, key[2])
        return
    _WARNED[key] = None
    if len(_WARNED) > _WARNED_MAX:
        _WARNED.popitem(last=False)
    _LOGGER.warning("%s: client %r, topic %r (repeats are counted, logged at DEBUG)", what, client, key[2])


class TopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """SUBSCRIBE and PUBLISH: ask the Authorizer; deliveries of allowed subscriptions pass."""

    Config = PluginConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._hooks = _hooks(self.config)

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None, action: Any = None) -> bool:
        """Whether the session's principal may do ``action`` on ``topic``."""
        if action == Action.RECEIVE:
            return True  # the subscription was authorized when it was made
        principal = principal_of(session)
        context = context_of(session)
        stats = self._hooks.stats
        client = (getattr(session, "client_id", None) or "")[:40]
        if action == Action.SUBSCRIBE:
            if (
                principal is not None
                and topic is not None
                and self._hooks.authorizer.may_subscribe(principal, topic, context=context)
            ):
                return True
            stats.denied_subscribes += 1
            _log_denial("SUBSCRIBE denied", client, topic)
            return False
        if (
            principal is not None
            and topic is not None
            and self._hooks.authorizer.may_publish(principal, topic, context=context)
        ):
            return True
        stats.denied_publishes += 1
        _log_denial("PUBLISH denied and dropped", client, topic)
        return False


class EventPlugin(BasePlugin):  # type: ignore[misc]
    """Hands every allowed publish to the cloud, in arrival order."""

    Config = PluginConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._hooks = _hooks(self.config)

    async def on_broker_message_broadcast(self, *, client_id: str, message: Any) -> None:
        """amqtt event: a publish passed the topic plugin and is being routed."""
        session = self.context.get_session(client_id) if client_id else None
        # No await before the hand-over: amqtt runs each event as its own task, and tasks start in order.
        self._hooks.on_message(message.topic, bytes(message.data or b""), client_id or "", principal_of(session))
