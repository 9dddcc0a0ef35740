"""README.md's "Security" table: each NATS identity's rights, generated from deploy/nats/nats-server.conf.

`nats_config` reads nats-server's configuration format, `identities` finds the users and their
permissions, `rights` groups each permission's subjects in plain words, and `readme` writes the table
between README.md's markers (`make security-table`, `python -m stepout_security_table`). It reads
whatever identities the file holds. A development tool, kept out of the image like the rest of tools/.
"""

from .identities import Party, Rule, parties
from .nats_config import ConfigError, parse, read
from .readme import block, render
from .rights import Row, collapse, rows

__all__ = ["ConfigError", "Party", "Row", "Rule", "block", "collapse", "parse", "parties", "read", "render", "rows"]
