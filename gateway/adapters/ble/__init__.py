"""The BLE adapter (bleak): advertisements decoded by ``drivers.ble``, GATT reads on a schedule.

* ``config``  the ``[adapters.ble]`` table (no bleak import: the config loader stays light)
* ``scanner`` bleak's scanner facade with a replay backend, and bleak's types mapped to ours
* ``gatt``    GATT reads on a schedule and writes, within a connection limit and timeouts
* ``adapter`` the adapter: scan, decode, pair, de-duplicate, publish, availability, restarts
"""
