"""unweave.train."""
