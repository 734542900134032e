"""Extractors: pull audio out of game/data containers found in Debian packages.

Each module reads one container format from bytes (no package layout knowledge):
``queen`` (queen.1c bundle), ``sky`` (sky.dnr + sky.dsk, RNC-packed), ``rnc`` (RNC ProPack
method 1 unpacker), ``wad`` (Doom IWAD/PWAD lumps), ``mus`` (MUS -> MIDI), ``zero_ad``
(0 A.D. public.zip members), ``codec`` (in-memory decoding with PyAV, G.722 included).
"""
