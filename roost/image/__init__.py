"""``roost image build``: the SD-card (and PC/VM) image, built from Debian packages without loop devices or mounts.

Steps (each its own module): :mod:`recipe` reads ``image/recipe.toml``; :mod:`rootfs` makes the base root file
system with mmdebstrap (cached as a tarball) and installs Roost into it; :mod:`bootfiles` writes cmdline.txt,
config.txt and fstab; :mod:`layout` computes the partition table; :mod:`assemble` builds the FAT and ext4 file
systems as files and puts them into the image at their offsets; :mod:`treehash` and :mod:`manifest` describe
what was built.
"""
