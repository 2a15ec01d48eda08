"""Data sources, parsers, and the dataset artifact (sequences + leave-one-out split)."""
