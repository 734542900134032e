"""unweave.inference."""
