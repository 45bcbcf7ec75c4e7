"""The checkout's entry point, ``python -m src.tune``; the library itself is ``hpo_tune`` (``src/hpo_tune``).

The library is not called ``src`` so that an app with its own ``src`` package can install and use it. From a
checkout that was not installed (``pip install -e .``), this puts ``src/`` on the path so ``hpo_tune`` and the
Hydra plugins import.
"""

import sys
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
