"""The CPU optical-flow engine (the embedded default): engine.py adapts the numerics to the engine
interface; warp.py holds the per-segment interpolator, regions.py the flat-colour region seeds for
large motion, blend.py (with blend.onnx) the small learned blend."""

from .engine import VARIANTS, FlowEngine

__all__ = ["VARIANTS", "FlowEngine"]
