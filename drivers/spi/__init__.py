"""SPI chip drivers (over :class:`drivers.bus.SpiDevice`) and their byte-level emulators."""
