"""The device-management agent: commands from the cloud (``cmd/{request_id}``) and their results."""
