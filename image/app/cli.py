"""The `spark-control` command: serves the app (default port 9999); `spark-control
transcribe FILE` sends a recording to a running spark-control instead."""

from __future__ import annotations

import argparse
import sys

# On SIGTERM, requests in flight get this long to finish before they are cancelled
# (docker-compose.yml's stop_grace_period is 2 min; plain `docker stop` needs -t 120).
SHUTDOWN_GRACE_S = 100
EPILOG = ("other command: spark-control transcribe FILE [--format ...] [--server URL] "
          "(see spark-control transcribe --help)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["transcribe"]:
        from .client import main as transcribe  # the client needs none of the server's imports
        return transcribe(args[1:])
    if args[:1] == ["serve"]:  # the default command, also reachable by name
        args = args[1:]
    return serve(args)


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spark-control [serve]", epilog=EPILOG,
                                     description="Serve spark-control (default port 9999).")
    parser.add_argument("--port", type=int, help="overrides BIND_PORT")
    parser.add_argument("--host", help="overrides BIND_HOST")
    args = parser.parse_args(argv)
    import uvicorn

    from .config import ConfigError, load_settings
    from .server import create_app
    from .logs import configure
    overrides = {k: v for k, v in (("bind_port", args.port), ("bind_host", args.host)) if v}
    try:
        settings = load_settings(**overrides)  # the login URL names the real port
    except ConfigError as exc:
        print(f"spark-control: bad configuration, not starting:\n{exc}", file=sys.stderr)
        return 2
    configure(settings.log_level)
    # access_log off: logs.RequestIdMiddleware writes one line per request, with its id
    uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.bind_port,
                log_level=settings.log_level, log_config=None, access_log=False,
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
