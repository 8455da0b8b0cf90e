"""python -m tunekit ...: the same as the tunekit command."""

import sys

from .cli import main

sys.exit(main())
