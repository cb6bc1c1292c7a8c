"""Device knowledge with no sockets of its own: decoders, chip drivers and their emulators."""
