"""Layer 3, training: device and seed, the one training loop, evaluation, the GAN loop; no MLflow."""
