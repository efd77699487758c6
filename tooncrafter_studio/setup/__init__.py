"""What installs things: the engine's own Python environment, the engine install, the model download.

Imports only `core`, so every layer above (engines, pipeline, cli, qt) may use it.
"""
