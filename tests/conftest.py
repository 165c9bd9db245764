import os
import sys
from pathlib import Path

# Two OpenMP runtimes live in the test process (torch's and visionc's); spinning idle
# threads of one starve the other on small machines. Passive waiting keeps both fast.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Tests run against the installed package, or against the source tree's in-place build
# (`make build`) when there is one: a developer's fresh build wins over an older install.
ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("VISIONC_PKG_DIR"):  # a build kept elsewhere (make sanitize)
    sys.path.insert(0, os.environ["VISIONC_PKG_DIR"])
elif list((ROOT / "python" / "visionc").glob("_C*.so")):
    sys.path.insert(0, str(ROOT / "python"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Nothing in the tests may reach a network hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
