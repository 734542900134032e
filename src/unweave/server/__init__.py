"""unweave.server."""
