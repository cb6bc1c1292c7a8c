"""The technician's local page: HTTPS on the site's network, behind the setup PIN (docs/local-page.md).

``config`` (the ``[local]`` table), ``pin``, ``cert`` and ``status`` import nothing heavy; ``server``
(aiohttp) and ``mdns`` (zeroconf) are imported by the daemon only when ``[local] enabled = true``.
"""
