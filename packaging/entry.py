"""The frozen app's entry point: the same dispatch as `tooncrafter-studio` (no command opens the app)."""

import sys

from tooncrafter_studio.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
