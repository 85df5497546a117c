"""``python -m mattekit`` and the ``mattekit`` console script: the command line, or one line
saying how to install it when the ``cli`` extra is missing (:mod:`mattekit.extras`)."""

from __future__ import annotations

import sys

from .errors import MissingExtra
from .extras import require


def main() -> None:
    try:
        require("cli", "the mattekit command")
    except MissingExtra as exc:
        print(f"mattekit: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
