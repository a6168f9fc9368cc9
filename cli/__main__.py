"""`python -m cli …` runs the `shipshape` command (the console script's entry point is `cli.main:main`)."""

import sys

from cli.main import main

sys.exit(main())
