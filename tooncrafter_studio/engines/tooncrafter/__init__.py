"""The ToonCrafter engine (generative in-betweens on the GPU); torch is imported only when it runs."""

from .engine import ToonCrafterEngine

__all__ = ["ToonCrafterEngine"]
