import sys

from batchsms.cli import main

sys.exit(main())
