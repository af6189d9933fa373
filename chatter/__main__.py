"""``python -m chatter``: the command line."""

import sys

from chatter.cli import main

sys.exit(main())
