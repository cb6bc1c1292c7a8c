"""Updating a Roost serial node's firmware through the gateway (DM command ``node-firmware``).

``intelhex`` checks an image before anything touches the node, ``avrdude`` runs the programmer and
follows its progress, ``command`` ties them to the serial adapter (release the port, flash, take it
back, wait for the node to announce).
"""
