"""Lambdasite cell runner, PID 1 of every sandbox container: the entry point.

``python3 -I -S`` leaves the script's folder off sys.path, so it is added here;
the runner's modules live in the ``lambdasite_runner`` package next to this file
(see its ``__init__`` for the security design and the protocol)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lambdasite_runner.main import main  # noqa: E402

if __name__ == "__main__":
    main()
