from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="session")
def filled_reduced_model():
    """The reduced model of the vectors, weights by the fill rule (shared with the verify tool)."""
    from tooncrafter_studio.diffusion.checks.verify_sampler import reduced_filled_model

    return reduced_filled_model()
