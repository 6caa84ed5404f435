"""`python -m gradattn ...`: see gradattn.cli."""
import sys

from gradattn.cli import main

sys.exit(main())
