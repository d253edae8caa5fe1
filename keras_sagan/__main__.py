"""`python -m keras_sagan`: see `keras_sagan.cli`."""

import sys

from keras_sagan.cli import main

if __name__ == "__main__":
    sys.exit(main())
