"""``python -m keras_impl.exercises``: the exercises command without the ``mnistgen`` CLI."""

import sys

from keras_impl.exercises.command import main

sys.exit(main())
