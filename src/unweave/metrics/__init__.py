"""unweave.metrics."""
