"""The `spark-control` command: serves the app (default port 9999)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from .config import ConfigError, load_settings
from .server import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark-control", description=__doc__)
    parser.add_argument("--port", type=int, help="overrides BIND_PORT")
    parser.add_argument("--host", help="overrides BIND_HOST")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"spark-control: bad configuration, not starting:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    uvicorn.run(create_app(settings), host=args.host or settings.bind_host,
                port=args.port or settings.bind_port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
