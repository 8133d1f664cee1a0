"""``terratorch embeddings search``: the nearest footprints of a file or geometry in GeoParquet embeddings.

Example::

    terratorch embeddings search --index embeddings/layer_00 --query-file chip_003 -k 5 --out near.geojson

Exit codes: :data:`~terratorch.exit_codes.OK`; :data:`~terratorch.exit_codes.INVALID_INPUT` for
missing files, unknown ids, unparseable geometries; :data:`~terratorch.exit_codes.USAGE` for a wrong
command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from terratorch import exit_codes

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``terratorch embeddings`` parser (subcommand ``search``)."""
    from terratorch.embeddings.index import BACKENDS, METRICS

    parser = argparse.ArgumentParser(
        prog="terratorch embeddings", description="Work with embeddings written by EmbeddingGenerationTask."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{search}")
    search = commands.add_parser(
        "search",
        help="k nearest footprints of a query file or geometry (GeoJSON out).",
        description="Index GeoParquet embeddings and return the k most similar footprints as GeoJSON.",
    )
    search.add_argument(
        "--index", nargs="+", required=True, metavar="PARQUET", help="GeoParquet files, folders or globs."
    )
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument(
        "--query-file", metavar="ID", help="An indexed file id (the input file's stem) or path."
    )
    query.add_argument(
        "--query-geometry",
        metavar="GEOMETRY",
        help="WKT, GeoJSON text or a .geojson file (in the index CRS).",
    )
    search.add_argument("-k", type=int, default=10, help="Number of results (default 10).")
    search.add_argument("--out", metavar="GEOJSON", help="Write the results here instead of stdout.")
    search.add_argument("--layer", type=int, help="Layer to search when the files hold several.")
    search.add_argument("--metric", choices=METRICS, default="cosine", help="Similarity (default cosine).")
    search.add_argument(
        "--backend", choices=BACKENDS, default="auto", help="faiss, numpy or auto (faiss when installed)."
    )
    search.add_argument("--query-crs", metavar="CRS", help="CRS of --query-geometry, e.g. EPSG:4326.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``terratorch embeddings ...`` (``argv`` without the word ``embeddings``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        return exit_codes.OK if stop.code in (0, None) else exit_codes.USAGE
    if args.k < 1:
        print(f"terratorch embeddings search: -k must be at least 1, got {args.k}.", file=sys.stderr)
        return exit_codes.USAGE
    from terratorch.embeddings.index import search

    try:
        result = search(
            args.index,
            query_file=args.query_file,
            query_geometry=args.query_geometry,
            k=args.k,
            layer=args.layer,
            metric=args.metric,
            backend=args.backend,
            query_crs=args.query_crs,
        )
    except (FileNotFoundError, KeyError, ValueError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"terratorch embeddings search: {message}", file=sys.stderr)
        return exit_codes.INVALID_INPUT
    text = json.dumps(result, indent=2)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"{len(result['features'])} results written to {out}", file=sys.stderr)
    else:
        print(text)
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(main())
