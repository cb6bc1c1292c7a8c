"""Cloud rules: the gateway's rule engine (:mod:`rules`) run in the cloud over the ingest stream.

For rules that span gateways: the average of every freezer of a site, more than three gateways of a
site offline within ten minutes, a reading missing from any gateway of a tag. ``docs/rules.md``
("Rules in the cloud") is the user's reference.

- :mod:`cloud.cloudrules.naming`: how a gateway's reading looks to cloud rules (sensor
  ``{gateway}/{sensor}``; tags ``gateway``, ``site`` and the operators' tags), the presence readings
  the cloud makes from ``status`` (sensor ``{gateway}``, metric ``online``), the ``cloud`` gateway id
  its alerts are stored under, and where a command goes;
- :mod:`cloud.cloudrules.folder`: the rule files, one folder per tenant, checked like ``roost rules check``;
- :mod:`cloud.cloudrules.runner`: one engine per tenant, fed after each durable commit (never in the
  way of storage), its alerts stored like gateway alerts, its commands sent through the fleet's path;
- :mod:`cloud.cloudrules.routes`: ``GET /api/v1/rules``, ``GET|PUT|DELETE /api/v1/rules/{name}``,
  ``POST /api/v1/rules/reload``.
"""

from __future__ import annotations

from cloud.cloudrules.naming import CLOUD_GATEWAY

__all__ = ["CLOUD_GATEWAY"]
