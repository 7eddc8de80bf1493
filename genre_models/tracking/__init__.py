"""Layer 4, tracking: every MLflow call (runs, queries, shipped data, the server)."""
