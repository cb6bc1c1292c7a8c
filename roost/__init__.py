"""The ``roost`` command line and the demo: the layer above the gateway and the cloud."""
