"""The `forethought` command. Control subcommands are built here; `forethought lm ...` is handed
to `forethought.lm.cli.main` so the language track owns its own arguments."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "lm":
        from forethought.lm.cli import main as lm_main

        return lm_main(argv[1:])
    print("control subcommands not wired yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
