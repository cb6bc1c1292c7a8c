"""Southbound adapters: each does its protocol's I/O and hands Readings to the hub, never to the uplink."""
