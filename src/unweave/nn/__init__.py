"""unweave.nn."""
