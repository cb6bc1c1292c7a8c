"""Roost serial protocol v1 (docs/protocols/serial.md): frames, messages and a sensor-node emulator.

Pure code, no I/O: :mod:`.frame` cuts and checks COBS frames (CRC-16/XMODEM), :mod:`.messages`
encodes and decodes what they carry, :mod:`.node_emulator` is a node's state machine. The gateway's
serial adapter and the ``roost decode serial`` command use them; the tests and the demo run the
emulator over a pty with :mod:`drivers.ptylink`.
"""
