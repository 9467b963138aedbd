"""``python -m speaker_id``: the ``speaker-id`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
