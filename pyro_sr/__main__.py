import sys

from pyro_sr.cli import main

sys.exit(main())
