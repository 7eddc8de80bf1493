"""Layer 7, sweep: grids as data, one point at a time or in parallel, under one parent run."""
