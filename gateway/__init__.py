"""The gateway daemon: config, hub, adapters (southbound), buffer, uplink."""
