"""``terratorch serve`` as a user runs it: a subprocess on a free port, real HTTP requests with httpx.

Its answers must be the very files ``terratorch predict`` writes for the same config, checkpoint
and inputs (bit for bit, on CPU), alone and under concurrent load; bad uploads get 4xx while the
server stays up; SIGTERM stops it gracefully with the INTERRUPTED exit code.
"""

from __future__ import annotations

import concurrent.futures
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.serve.conftest import FittedModel, ServerProcess

from terratorch import exit_codes
from terratorch.__main__ import main as terratorch_main


@pytest.fixture(scope="module")
def predicted(fitted: FittedModel) -> Path:
    """``terratorch predict`` on the demo chips with the fitted checkpoint: the expected outputs."""
    out = fitted.root / "predict_out"
    args = [
        "predict",
        "-c",
        str(fitted.config),
        "--ckpt_path",
        str(fitted.ckpt),
        "--predict_output_dir",
        str(out),
    ]
    assert terratorch_main(args) == exit_codes.OK
    return out


@pytest.fixture(scope="module")
def served(fitted: FittedModel):
    args = ["-c", str(fitted.config), "--ckpt_path", str(fitted.ckpt), "--port", "0"]
    server = ServerProcess(
        [*args, "--max-batch", "4", "--max-wait-ms", "1500", "--max-upload-mb", "1"], fitted.root
    )
    yield server
    server.stop()


def post_file(url: str, path: Path) -> httpx.Response:
    with path.open("rb") as handle:
        return httpx.post(f"{url}/predict", files={"file": (path.name, handle, "image/tiff")}, timeout=120)


def test_served_predictions_equal_terratorch_predict_alone_and_concurrently(served, predicted, fitted):
    inputs = fitted.inputs()
    expected = {p.name: (predicted / f"{p.stem}_pred.tif").read_bytes() for p in inputs}

    first = post_file(served.url, inputs[0])
    assert first.status_code == 200, first.text
    assert first.content == expected[inputs[0].name]  # one request: a batch of 1 after the wait

    with concurrent.futures.ThreadPoolExecutor(len(inputs)) as pool:
        answers = list(pool.map(lambda p: post_file(served.url, p), inputs))
    assert [a.status_code for a in answers] == [200] * len(inputs), [a.text for a in answers]
    assert [a.content for a in answers] == [expected[p.name] for p in inputs]

    batching = httpx.get(f"{served.url}/metadata").json()["batching"]
    assert batching["max_batch"] == 4 and batching["max_wait_ms"] == 1500
    stats = batching["stats"]
    assert stats["requests"] == 1 + len(inputs)
    assert stats["largest_batch"] == 4 and stats["batches"] < stats["requests"]  # requests shared passes
    assert max(int(a.headers["x-batch-size"]) for a in answers) == 4


def test_bad_uploads_get_4xx_and_the_server_stays_up(served, fitted, tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    too_big = tmp_path / "too_big.tif"
    too_big.write_bytes(b"II*\x00" + bytes(2 * 2**20))  # 2 MiB > --max-upload-mb 1
    answers = {
        415: post_file(served.url, junk),
        413: post_file(served.url, too_big),
        404: httpx.post(f"{served.url}/predict", json={"path": str(tmp_path / "missing.tif")}),
    }
    for status, answer in answers.items():
        assert answer.status_code == status, answer.text
        assert answer.json()["detail"]
    chunked = httpx.post(  # no Content-Length: the limit is enforced while the body streams in
        f"{served.url}/predict",
        content=iter([bytes(2**19)] * 4),
        headers={"Content-Type": "image/tiff"},
        timeout=60,
    )
    assert chunked.status_code == 413 and "at most 1 MiB" in chunked.json()["detail"]
    assert httpx.get(f"{served.url}/health").json() == {"status": "ok"}
    assert post_file(served.url, fitted.inputs()[2]).status_code == 200


# ----------------------------------------------------------------------------- command-line errors


def test_command_line_errors_are_usage_errors(capsys):
    for args, message in (
        (["--ckpt_path", "x.ckpt"], "the following arguments are required: -c/--config"),
        (["-c", "x.yaml", "--max-batch", "0"], "--max-batch must be >= 1"),
        (["-c", "x.yaml", "--max-upload-mb", "-1"], "--max-upload-mb must be > 0"),
        (["-c", "x.yaml", "--max-wiat-ms", "3"], "Did you mean '--max-wait-ms'"),
    ):
        with pytest.raises(SystemExit) as stop:
            terratorch_main(["serve", *args])
        assert stop.value.code == exit_codes.USAGE
        assert message in capsys.readouterr().err


def test_missing_config_and_busy_port_are_invalid_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        terratorch_main(["serve", "-c", str(tmp_path / "none.yaml"), "--port", "0"])
    assert stop.value.code == exit_codes.INVALID_INPUT
    assert "none.yaml' does not exist" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            terratorch_main(["serve", "-c", str(tmp_path / "none.yaml"), "--port", str(port)])
    assert stop.value.code == exit_codes.INVALID_INPUT
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_sigterm_stops_the_server_gracefully(served):
    """Runs after the other tests of the module's server: it stops that server."""
    assert httpx.get(f"{served.url}/health").json() == {"status": "ok"}
    assert served.stop() == exit_codes.INTERRUPTED
    assert "stopped (SIGTERM)" in "".join(served.stderr)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served.url}/health")


def test_serve_help_and_package_import_stay_light():
    code = (
        "import sys, contextlib, io\n"
        "import terratorch.serve\n"
        "from terratorch.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        main(['serve', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'lightning') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert '--max-wait-ms' in out.getvalue() and '--ckpt_path' in out.getvalue()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
