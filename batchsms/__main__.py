import sys

from batchsms.cli.commands import main

sys.exit(main())
