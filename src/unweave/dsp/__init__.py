"""unweave.dsp."""
