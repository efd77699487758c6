"""ToonCrafter Studio: in-betweening for 2D animation."""

__version__ = "0.1.0"
