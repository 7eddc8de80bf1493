"""Layer 2, models: the networks and the one registry of the nets (``registry.NETS``)."""
