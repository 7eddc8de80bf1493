"""genre-bench command-line runner (click)."""
