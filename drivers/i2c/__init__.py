"""I2C chip drivers (over :class:`drivers.bus.I2cBus`), their register-level emulators and the bus scan."""
