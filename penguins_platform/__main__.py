import sys

from penguins_platform.cli import main

sys.exit(main())
