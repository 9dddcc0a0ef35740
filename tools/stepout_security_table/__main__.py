"""`python -m stepout_security_table [--check]` is `make security-table`."""

import sys

from .readme import main

sys.exit(main())
