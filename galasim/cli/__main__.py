import sys

from galasim.cli import main

sys.exit(main())
