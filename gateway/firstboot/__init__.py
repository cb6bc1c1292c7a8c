"""First boot: the installer's ``roost.toml`` on the boot partition becomes a configured gateway.

``validate`` reads the file and collects every problem at once (key, line, what is allowed);
``apply`` writes the system's files under a root prefix (``/`` on a device, a folder in tests):
gateway.toml, hostname, Wi-Fi, time zone, SSH, the claim token, the setup PIN's hash, the gateway's
key pair and the local page's certificate; it grows the root file system, removes the secrets from
the boot partition and writes ``/var/lib/roost/firstboot.done`` last. A file with problems still
gets a gateway the technician can reach (docs/install.md, "When something is wrong").
"""
