"""Command-line options that several engine commands share: the state store and the admin API."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_STATE = ".roster/state.db"
DEFAULT_API_LISTEN = "127.0.0.1:8477"


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-listen",
        default=os.environ.get("ROSTER_API_LISTEN", DEFAULT_API_LISTEN),
        help=f"HOST:PORT of the admin API (env ROSTER_API_LISTEN; default {DEFAULT_API_LISTEN})",
    )
    parser.add_argument(
        "--api-token-file",
        type=Path,
        help="file holding the API token (default: env ROSTER_API_TOKEN, else api-token beside the state)",
    )
