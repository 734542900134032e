"""unweave.audio."""
