import sys

from bayes_lsl.cli import main

sys.exit(main())
