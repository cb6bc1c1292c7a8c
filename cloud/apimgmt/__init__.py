"""The managed API: applications (OAuth2 clients developers register), plans, throttling, usage, developer portal.

plans.py        plans as data: a token bucket's rate and burst per named plan, per tenant
ratelimit.py    the in-memory token buckets and the IETF RateLimit header fields
gate.py         per request: the plan the policies allow the caller, the throttle, the usage record
usage.py        per-minute counters and bounded latency histograms in memory, flushed to SQLite
db.py           the managed API's SQLite database (applications, plans, usage)
credentials.py  an application's OAuth2 client in the identity database: new secret, deletion
service.py      the object the cloud server builds, opens and hooks into its app
models.py       request and response bodies (the OpenAPI document's schemas)
routes.py       /api/v1/applications, /api/v1/plans, /api/v1/usage
portal.py       the developer portal at /developers (server-rendered HTML), its sign-in check
pages.py        the portal's pages; reference.py the API reference from OpenAPI; svgchart.py the chart
"""
