"""`python -m stepout_advisories refresh` is `make advisories`; `python -m stepout_advisories check`, `make lint`'s."""

import sys

from .cli import main

sys.exit(main())
