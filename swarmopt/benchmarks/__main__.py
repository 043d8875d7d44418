"""``python -m swarmopt.benchmarks``: see :func:`swarmopt.benchmarks.main`."""

import sys

from swarmopt.benchmarks import main

sys.exit(main())
