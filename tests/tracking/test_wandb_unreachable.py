"""Training never hangs on, and never dies of, a wandb server that does not work.

Online mode (`WANDB_MODE=online`, a fake `WANDB_API_KEY`) against servers on 127.0.0.1 that accept TCP: one
that never answers, and one that answers HTTP but is not W&B; plus a closed port. wandb runs for real
(no mock): `wandb.init` is bounded (`WANDB_INIT_TIMEOUT=3` keeps the tests short; the default bound is
`INIT_TIMEOUT`), the run falls back to offline with one message, training finishes, and the offline run
on disk holds the training's rows for `wandb sync`.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from transformers import TrainerCallback

from hf_search_wandb.tracking.wandb_api import INIT_TIMEOUT, init_timeout, start_run
from tests.helpers.wandb_records import read_run, run_dirs

BOUND = 3.0


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    """`kind`: `html` answers everything with a web page (not W&B); `stall` answers GET/HEAD but never
    answers wandb's POSTs; `reject` answers POSTs 401 as W&B does for a bad API key."""

    kind = "html"

    def _page(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._page(200, b"<html><body>It works! (not a W&B server)</body></html>")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if self.kind == "stall":
            time.sleep(120)  # the client gives up long before
        elif self.kind == "reject":
            self._page(401, b'{"errors":[{"message":"user is not logged in"}]}', "application/json")
        else:
            self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(kind: str) -> Iterator[str]:
    handler = type(f"{kind}Handler", (_Handler,), {"kind": kind})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def closed_port() -> Iterator[str]:
    """A port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


SERVERS = {
    "refused": closed_port,
    "silent": silent_server,
    "not-wandb": lambda: http_server("html"),
    "stalls": lambda: http_server("stall"),
    "bad-key": lambda: http_server("reject"),
}


@pytest.fixture
def online_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "f" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", str(BOUND))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for name in ("WANDB_RUN_ID", "WANDB_RESUME", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    wandb.teardown()
    yield tmp_path
    wandb.teardown()


class FirstStep(TrainerCallback):
    """Records when the first training step begins."""

    def __init__(self) -> None:
        self.at: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.at is None:
            self.at = time.monotonic()


def _train(output_dir: Path, report_to: str) -> tuple[float, object]:
    """A real Trainer (one weight, 6 steps, logging every 2) with SearchWandbCallback; returns the seconds
    from `train()` to its first step, and the callback."""
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from hf_search_wandb.trainer.callback import SearchWandbCallback

    class OneWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, labels=None):
            return {"loss": ((self.w - x) ** 2).mean()}

    args = TrainingArguments(str(output_dir), max_steps=6, logging_steps=2, per_device_train_batch_size=4,
                             use_cpu=True, report_to=report_to, save_strategy="no", disable_tqdm=True)
    first = FirstStep()
    callback = SearchWandbCallback(log_tables="off", model_artifact="off", log_in_background=False)
    trainer = Trainer(model=OneWeight(), args=args, train_dataset=Dataset.from_dict({"x": [0.5] * 24}),
                      callbacks=[callback, first])
    start = time.monotonic()
    trainer.train()
    assert first.at is not None
    return first.at - start, callback


@pytest.mark.parametrize("server, report_to, expected", [
    ("refused", "none", "unreachable"),
    ("silent", "wandb", "unreachable"),  # transformers' WandbCallback present: the search callback takes it over
    ("not-wandb", "none", "could not start online"),
    ("stalls", "wandb", "could not start online"),
    ("bad-key", "none", "could not start online"),
])
def test_training_starts_within_the_bound_and_finishes_offline(online_env, caplog, monkeypatch, server, report_to,
                                                               expected):
    with SERVERS[server]() as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        with caplog.at_level(logging.WARNING):
            started, callback = _train(online_env / "out", report_to)
    # the documented bound: probe (2 s) + wandb's login look-ups (2 x 5 s) + init_timeout; room for load
    assert started < 2 + 10 + BOUND + 15, f"training started after {started:.1f} s"
    messages = [r.getMessage() for r in caplog.records if "offline" in r.getMessage()]
    assert len(messages) == 1, messages
    assert expected in messages[0] and url in messages[0]
    if expected != "unreachable":
        assert "wandb sync " in messages[0]
    (run_dir,) = [d for d in run_dirs(online_env) if d.name.startswith("offline-run-")]
    assert str(callback.run_dir) == str(run_dir)
    assert list(run_dir.glob("*.wandb"))  # what `wandb sync` uploads
    run = read_run(run_dir)
    assert run.state == "finished" and run.exit_code == 0
    assert len(run.series("train/loss")) == 3
    print(f"\nfigures: {server}: training started {started:.1f} s after train() (init bound {BOUND:g} s)")


def test_probe_needs_an_http_answer_not_just_a_tcp_connection():
    from hf_search_wandb.tracking.wandb_api import server_reachable

    with silent_server() as url:
        begin = time.monotonic()
        assert not server_reachable(url, timeout=1.0)
        assert time.monotonic() - begin < 3
    with http_server("html") as url:
        assert server_reachable(url, timeout=1.0)
    with closed_port() as url:
        assert not server_reachable(url, timeout=1.0)


def test_start_run_keeps_an_explicit_init_timeout_and_the_default_bound_is_documented(monkeypatch):
    monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
    assert init_timeout() == INIT_TIMEOUT <= 30
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="WANDB_INIT_TIMEOUT must be a number of seconds"):
        init_timeout()
    import wandb

    from hf_search_wandb.tracking.wandb_api import _with_timeout

    assert _with_timeout(wandb, wandb.Settings(init_timeout=7), 3).init_timeout == 7
    assert _with_timeout(wandb, {"init_timeout": 7}, 3)["init_timeout"] == 7
    assert _with_timeout(wandb, None, 3).init_timeout == 3


def test_start_run_bounds_wandb_init_even_without_the_probe(online_env, monkeypatch):
    """`start_run` alone (as the offline sweep engine uses it) against a server that never answers."""
    import wandb

    said: list[str] = []
    with silent_server() as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        begin = time.monotonic()
        run = start_run(wandb, {"project": "p", "mode": "online"}, say=said.append)
        elapsed = time.monotonic() - begin
    run.log({"x": 1})
    run.finish()
    assert run.settings.mode == "offline" or "offline-run-" in str(run.dir)
    assert len(said) == 1 and "CommError" in said[0]
    assert elapsed < 10 + BOUND + 15
    print(f"\nfigures: start_run against a silent server: offline run after {elapsed:.1f} s (init bound {BOUND:g} s)")
