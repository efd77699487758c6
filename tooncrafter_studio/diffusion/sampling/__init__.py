"""The sampling loop: DDIM and the sketch guidance that steers it (small pure functions with callbacks)."""
