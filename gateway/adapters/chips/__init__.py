"""I2C and SPI chips (BME280, SHT3x, ADS1115, MCP3008) polled through the drivers in ``drivers/``."""
