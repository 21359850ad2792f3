import sys

from fpagent.cli import main

sys.exit(main())
