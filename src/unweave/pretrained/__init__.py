"""unweave.pretrained."""
