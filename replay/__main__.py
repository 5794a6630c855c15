"""`python -m replay` runs the same command as the `replay` console script."""

from replay.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
