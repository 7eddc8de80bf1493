"""Layer 5, stages: one MLflow run each (preprocess, train, gan, predict, report); never each other."""
