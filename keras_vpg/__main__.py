"""``python -m keras_vpg``: the same as the ``keras-vpg`` command."""

import sys

from keras_vpg.cli import main

sys.exit(main())
