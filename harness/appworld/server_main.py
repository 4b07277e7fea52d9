"""One AppWorld environment server on 127.0.0.1 (runs in the AppWorld venv, never in the harness).

`appworld serve environment` binds 0.0.0.0, which would expose a model-code executor to the
network; this serves the same FastAPI app (appworld.serve.environment) on loopback only.
Run as `<appworld venv>/bin/python -I server_main.py --port P` with APPWORLD_ROOT set.
The asyncio loop runs on the main thread, so AppWorld's SIGALRM execution timeouts work.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    import uvicorn
    from appworld.serve.environment import app

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
