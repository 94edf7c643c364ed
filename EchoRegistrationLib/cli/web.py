"""``echoreg web``: the Slicer module's workflow in a browser page served from this machine
(:mod:`..web.app`; needs the ``[web]`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import port_number, positive_number


def _cmd_web(args: argparse.Namespace) -> int:
    """``echoreg web``; a --cine that the page could not open (missing, of no format echoreg reads, or unreadable:
    a folder without CAMUS images, a corrupt file, a single frame) is refused before the server starts: it is
    read here first, as the page will read it again (:func:`..io.load_sequence`: FileNotFoundError,
    EchoDataError)."""
    from ..io import load_sequence

    cine = None if args.cine is None else str(Path(args.cine).expanduser())  # as the page opens it
    if cine is not None:
        load_sequence(cine).require_frames(2)  # as the page's Session.open_cine
    from ..web.app import serve

    serve(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, cine=cine)
    return 0


def add_web_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``web`` on the ``echoreg`` sub-parsers; returns its parser."""
    web = sub.add_parser("web", help="the Slicer module's workflow in a browser page served from this machine "
                                     "(needs the [web] extra)")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    web.add_argument("--port", type=port_number, default=8080, help="TCP port 0..65535 (default 8080; 0: any free "
                                                                     "port)")
    web.add_argument("--max-upload-mb", type=positive_number, default=200.0,
                     help="largest upload accepted, MB > 0 (default 200)")
    web.add_argument("--cine", help="a cine on this machine to open at start (refused before the server starts "
                                    "when echoreg cannot read it)")
    web.set_defaults(run=_cmd_web)
    return web
