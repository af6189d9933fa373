"""``python -m web``: the ``chatter`` command line (`web.cli`)."""

import sys

from web.cli import main

sys.exit(main())
