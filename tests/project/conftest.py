from __future__ import annotations

import pytest
from project_factories import make_shot

from tooncrafter_studio.project.document import Shot


@pytest.fixture
def shot() -> Shot:
    # 17 frames on 1s: keys at frames 1, 9, 17 (cells 0, 8, 16).
    return make_shot([1] * 17, keys=(0, 8, 16))
