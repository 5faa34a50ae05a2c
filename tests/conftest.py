from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STATE = REPO / "inventory" / "state.yaml"

sys.path.insert(0, str(REPO))
