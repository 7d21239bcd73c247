"""``python -m ovbackup``."""

import sys

from ovbackup.cli import main

sys.exit(main())
