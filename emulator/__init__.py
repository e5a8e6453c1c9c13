"""An offline emulator for this SAM application: the real template, ASL and Lambda on moto, in one process."""

import sys
from pathlib import Path

# The Lambda runtime puts the function's directory on sys.path; the emulator and the tests do the same, so
# the handler's own imports (``import decisions``) work unchanged and constants have one source.
LAMBDA_CODE = Path(__file__).resolve().parent.parent / "functions" / "rotation"
if str(LAMBDA_CODE) not in sys.path:
    sys.path.insert(0, str(LAMBDA_CODE))
