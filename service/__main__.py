"""``python -m service`` is ``mlapi``."""

from service.server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
