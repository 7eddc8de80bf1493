"""Layer 1, data: GTZAN on disk and everything computed from it (no torch training, no MLflow)."""
