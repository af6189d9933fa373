"""``python -m bench.fanout``: the fan-out benchmark (``--help`` for its options)."""

import sys

from bench.fanout.runner import main

sys.exit(main())
