import os
import sys
from pathlib import Path

# Two OpenMP runtimes live in the test process (torch's and visionc's); spinning idle
# threads of one starve the other on small machines. Passive waiting keeps both fast.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Tests run against the installed package; a source checkout with an in-place build works too.
ROOT = Path(__file__).resolve().parents[1]
try:
    import visionc  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Nothing in the tests may reach a network hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
