"""`python -m streams.cli`: the `storystream` command."""

import sys

from streams.cli.main import entry

sys.exit(entry())
