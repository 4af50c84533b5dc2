"""``python -m galasim`` (and ``torchrun -m galasim``): the ``galasim`` command line."""
import sys

from galasim.cli import main

if __name__ == "__main__":
    sys.exit(main())
