"""Model architectures, one file each. ``unweave.registry`` imports the modules in
``ARCHITECTURE_MODULES`` to register them (kept out of this ``__init__`` so that importing
``unweave.models.base`` does not build every architecture)."""

ARCHITECTURE_MODULES = ("demucs", "conv_tasnet", "spec_unet", "mrx")
