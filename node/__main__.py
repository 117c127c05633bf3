"""``python -m node ARGS`` is ``finvault node ARGS``: the node without the console script."""

from __future__ import annotations

import sys

from chain.entry import main

if __name__ == "__main__":
    main(["node", *sys.argv[1:]])
