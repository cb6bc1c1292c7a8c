"""Errors of the policy decision point.

PolicyError                  root (a CloudError)
└── PolicyInvalid            a policy set that does not parse or validate (``.problems``: which policy, what)
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.errors import CloudError


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem in a policy set: the policy (its @id, or its position) and what is wrong."""

    policy: str
    problem: str

    def __str__(self) -> str:
        return f"{self.policy}: {self.problem}"


class PolicyError(CloudError):
    """Root of the policy decision point's errors."""


class PolicyInvalid(PolicyError):
    """A policy set that cannot be used; ``problems`` names each policy and what is wrong with it."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__("invalid policy set: " + "; ".join(str(p) for p in problems))
        self.problems = problems
