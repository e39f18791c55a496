"""Widget factories."""
