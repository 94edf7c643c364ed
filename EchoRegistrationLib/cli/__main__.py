"""``python -m EchoRegistrationLib.cli``: the ``echoreg`` command."""

import sys

from . import main

sys.exit(main())
