"""`python -m stepout_simulate ARGS` is `stepout simulate ARGS`: the same arguments, settings and exit codes."""

import sys

from stepout_cli.main import main

sys.exit(main(["simulate", *sys.argv[1:]]))
