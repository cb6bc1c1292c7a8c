"""The serial adapter: one task per ``[[adapters.serial]]`` port, speaking the Roost protocol, NMEA or lines.

Layout: :mod:`.config` (the port tables, no I/O and no pyserial, so the config loader stays light),
:mod:`.port` (opening, losing and reopening a port), :mod:`.adapter` (the Adapter the daemon runs) and
one handler per protocol (:mod:`.roost_protocol`, :mod:`.nmea_protocol`, :mod:`.line_protocol`). The
decoding itself lives in ``drivers`` (``drivers.roostserial``, ``drivers.nmea``, ``drivers.linetext``).
"""
