"""Fleet management: commands to gateways and their results (desired state and updates build on it)."""
