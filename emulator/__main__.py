"""``python -m emulator``: the rotation offline. emulator/cli.py reads the command line; --help explains it."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
