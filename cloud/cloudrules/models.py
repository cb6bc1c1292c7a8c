"""The shapes of the cloud rules API's answers (pydantic), for /openapi.json."""

from __future__ import annotations

from pydantic import Field

from cloud.api_models import Item


class RuleCounters(Item):
    """One rule's counters (docs/rules.md)."""

    events_in: int = Field(description="Readings the rule selected")
    outputs: int = Field(description="Alerts, annotations, commands and derived readings it emitted")
    errors: int = Field(description="Run-time errors caught")
    last_error: str | None = None
    late: int = Field(description="Readings that came after their window closed")
    skipped: int = 0
    overflow: int = 0
    active_alerts: int = 0
    disabled: bool = False


class CloudRule(Item):
    """A cloud rule as loaded from its file."""

    name: str
    file: str = Field(description="The rule file it is written in")
    line: int
    description: str = ""
    enabled: bool = True
    group_by: str = Field(description="sensor, series, all or tag:NAME")
    stats: RuleCounters | None = Field(description="Its counters; null for a disabled rule that never ran")


class RunnerCounters(Item):
    """The runner's own counters, over every tenant."""

    batches_in: int
    readings_in: int
    presence_in: int
    batches_dropped: int = Field(description="Stored batches the rules did not see: their queue was full")
    outputs_dropped: int
    events_stored: int
    derived_stored: int
    store_failures: int
    commands_sent: int
    commands_refused: int


class CloudRules(Item):
    """A tenant's cloud rules."""

    enabled: bool
    tenant: str
    files: list[str]
    rules: list[CloudRule]
    active_alerts: list[str] = Field(description="Keys of the alerts the rules hold open")
    last_error: str | None = Field(description="Why the files were not loaded last time; null when they were")
    gateways_tagged: int = Field(description="Gateways whose site and tags the rules know")
    runner: RunnerCounters


class RulesChanged(Item):
    """What writing, removing or reloading rule files did."""

    tenant: str
    file: str | None = None
    reloaded: bool = Field(description="false: the files have a problem and the rules running before stay")
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list, description="Unchanged: they keep their state")
    last_error: str | None = None
