"""``python -m service`` is ``mlapi``."""

from service.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
