"""The Modbus RTU adapter: polls units on serial lines with pymodbus and hands their values to the hub.

Layout: :mod:`.config` (the ``[[adapters.modbus]]`` tables; no I/O and no pymodbus, so the config
loader stays light), :mod:`.line` (one serial line shared by its units: one pymodbus client, one
request at a time, retries and counters) and :mod:`.adapter` (each unit as a polled device, run by
the shared poller). Register decoding and read planning live in ``drivers.modbus_map``.
"""
