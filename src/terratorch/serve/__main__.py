"""``terratorch serve -c config.yaml --ckpt_path model.ckpt``: serve predictions over HTTP.

Builds the model once (as ``terratorch predict`` does), then answers ``POST /predict``,
``GET /health`` and ``GET /metadata`` with uvicorn until Ctrl-C or SIGTERM (exit code
:data:`terratorch.exit_codes.INTERRUPTED` after a graceful shutdown). Config overrides in the
LightningCLI form (``--data.init_args.batch_size 4``) are passed on to the config parser.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from terratorch import exit_codes

__all__ = ["main"]

#: Prefixes of the extra arguments forwarded to the LightningCLI config parser.
CONFIG_OVERRIDE_PREFIXES = ("--data.", "--model.", "--trainer.", "--seed_everything", "--custom_modules_path")


def _parser() -> argparse.ArgumentParser:
    from terratorch.serve.settings import DEFAULT_MAX_BATCH, DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_WAIT_MS

    parser = argparse.ArgumentParser(
        prog="terratorch serve",
        description="Serve a fine-tuned model's GeoTIFF predictions over HTTP (POST /predict, GET /health, "
        "GET /metadata). Other --data.*, --model.*, --trainer.* arguments override the config.",
    )
    parser.add_argument(
        "-c", "--config", required=True, help="fit config (or the config_deploy.yaml of a run)"
    )
    parser.add_argument("--ckpt_path", "--ckpt-path", dest="ckpt_path", help="Lightning checkpoint to load")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--max-batch",
        "--max_batch",
        dest="max_batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help="most concurrent requests in one forward pass (default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait-ms",
        "--max_wait_ms",
        dest="max_wait_ms",
        type=float,
        default=DEFAULT_MAX_WAIT_MS,
        help="longest wait of a batch's first request for others (default: %(default)s)",
    )
    parser.add_argument(
        "--max-upload-mb",
        "--max_upload_mb",
        dest="max_upload_mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help="largest accepted request body in MiB (default: %(default)s)",
    )
    parser.add_argument(
        "--path-root",
        "--path_root",
        dest="path_root",
        help='only serve {"path": ...} requests for files under this folder (default: any readable file)',
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the config's trainer accelerator)")
    parser.add_argument(
        "--log-level",
        "--log_level",
        dest="log_level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level; info also logs every request (default: %(default)s)",
    )
    return parser


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = _parser()
    args, extra = parser.parse_known_args(list(argv))
    unknown = [a for a in extra if a.startswith("-") and not a.startswith(CONFIG_OVERRIDE_PREFIXES)]
    if unknown:
        from terratorch.choices import did_you_mean

        options = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
        parser.error(f"unrecognized argument {unknown[0]}.{did_you_mean(unknown[0], options)}")
    if args.max_batch < 1:
        parser.error(f"--max-batch must be >= 1, got {args.max_batch}")
    if args.max_wait_ms < 0:
        parser.error(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    if args.max_upload_mb <= 0:
        parser.error(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    return args, extra


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: a free one), so a busy port fails before the model loads.

    Raises:
        terratorch.cli.errors.ConfigError: The address cannot be bound (in use, not local, ...).
    """
    from terratorch.cli.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {error.strerror or error}. Choose another --port "
            "(0 picks a free one) or --host."
        ) from None
    return sock


def _serving_libraries() -> Any:
    """Import the optional serving stack (the ``serve`` extra); return the ``uvicorn`` module.

    Raises:
        ImportError: A package of the extra is missing; says how to install it.
    """
    import importlib

    for name in ("fastapi", "multipart", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(
                f"terratorch serve needs fastapi, uvicorn and python-multipart ({name} is missing): "
                "pip install 'terratorch[serve]'"
            ) from error
    return sys.modules["uvicorn"]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry of ``terratorch serve`` (``argv`` without the word ``serve``).

    Returns:
        :data:`~terratorch.exit_codes.INTERRUPTED` after Ctrl-C/SIGTERM stopped the server;
        configuration errors raise (the dispatcher prints them and exits with their code).
    """
    args, overrides = _parse(sys.argv[1:] if argv is None else argv)
    uvicorn = _serving_libraries()
    from terratorch.serve.app import create_app
    from terratorch.serve.predictor import Predictor

    sock = bind_socket(args.host, args.port)
    try:
        predictor = Predictor.from_config(
            args.config, args.ckpt_path, device=args.device, overrides=overrides
        )
        app = create_app(
            predictor,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_upload_mb=args.max_upload_mb,
            path_root=args.path_root,
        )
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level=args.log_level, access_log=args.log_level in ("info", "debug"))
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        print(
            f"terratorch serve: {type(predictor.task).__name__} on http://{shown}:{port} "
            f"(max batch {args.max_batch}, max wait {args.max_wait_ms:g} ms); Ctrl-C to stop",
            flush=True,
        )
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # uvicorn re-raises it after shutdown
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt as stop:
            print(f"terratorch serve: stopped ({stop or 'SIGINT'})", file=sys.stderr, flush=True)
            return exit_codes.INTERRUPTED
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if not server.started:
            raise RuntimeError(f"the server on {host}:{port} did not start (see uvicorn's log above)")
        return exit_codes.OK
    finally:
        sock.close()


if __name__ == "__main__":
    raise SystemExit(main())
