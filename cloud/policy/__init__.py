"""The policy decision point: Cedar policies held as data (``schema.cedarschema``, ``defaults.cedar``)."""

from cloud.policy.audit import AuditLog
from cloud.policy.decision import (
    CacheInfo,
    Decision,
    DecisionPoint,
    PolicyInfo,
    PolicyVersion,
    default_policies,
    default_schema,
)
from cloud.policy.errors import PolicyError, PolicyInvalid, PolicyProblem
from cloud.policy.model import RequestContext, Resource, Subject, filter_resource, tenant_resource, topic_resource

__all__ = [
    "AuditLog",
    "CacheInfo",
    "Decision",
    "DecisionPoint",
    "PolicyError",
    "PolicyInfo",
    "PolicyInvalid",
    "PolicyProblem",
    "PolicyVersion",
    "RequestContext",
    "Resource",
    "Subject",
    "default_policies",
    "default_schema",
    "filter_resource",
    "tenant_resource",
    "topic_resource",
]
