"""BLE advertisements: pure decoders for BTHome v2 (plain and encrypted), Ruuvi RAWv2, pvvx/atc1441, iBeacon, Eddystone.

* ``advertisement`` the Advertisement value and the raw AD-structure parser
* ``decode``        one entry point (:func:`drivers.ble.decode.decode`), the replay state, the decoder tables
* ``bthome``, ``ruuvi``, ``atc``, ``beacons``  one module per format family, written from the public specs
* ``errors``        the BleDecodeError tree
* ``emulator``      builds valid advertisements of every format from values, and a small emulated fleet
"""
