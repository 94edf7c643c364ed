"""``echoreg web``: the Slicer module's workflow in a browser page served from this machine
(:mod:`..web.app`; needs the ``[web]`` extra)."""

from __future__ import annotations

import argparse


def _cmd_web(args: argparse.Namespace) -> int:
    from ..web.app import serve

    serve(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, cine=args.cine)
    return 0


def add_web_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``web`` on the ``echoreg`` sub-parsers; returns its parser."""
    web = sub.add_parser("web", help="the Slicer module's workflow in a browser page served from this machine "
                                     "(needs the [web] extra)")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    web.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free port)")
    web.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200)")
    web.add_argument("--cine", help="a cine on this machine to open at start")
    web.set_defaults(run=_cmd_web)
    return web
