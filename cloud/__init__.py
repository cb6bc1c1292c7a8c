"""The cloud companion: embedded MQTT broker, ingest, store and HTTP API in one process.

Entry points: :func:`cloud.config.load` and :func:`cloud.server.serve` (or :class:`cloud.server.CloudServer`).
"""
