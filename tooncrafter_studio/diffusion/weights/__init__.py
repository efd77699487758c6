"""Checkpoint files: the safe readers, key tables, conversion and identification, loading into the nets."""
