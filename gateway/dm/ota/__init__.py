"""Software updates over the air: signed bundles (wire.bundle) installed into A/B slots with automatic rollback.

``slots``: the layout, state file, switch and boot check (standard library only); ``download``: HTTP(S)
with resume; ``updater``: one update, run in a process of its own; ``health``: the new version confirms
itself; ``command``: the DM agent's ``update`` and ``update-status``. docs/ota.md tells the whole story.
"""
