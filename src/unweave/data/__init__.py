"""unweave.data."""
