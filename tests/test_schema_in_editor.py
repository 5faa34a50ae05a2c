"""The schema as an editor uses it: the real yaml-language-server (from npm, installed by scripts/setup.sh under
.venv/lsp) is spoken to over its stdio LSP, as VS Code or Neovim do, about a state file copied out of the
repository with the modeline `spark-state schema --install` gives. The example validates clean; a wrong type and
an unknown key are reported at their lines; a schema it cannot load would show as a diagnostic too."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_STATE, REPO

from spark_state.tool import install_schema

SERVER = REPO / ".venv" / "lsp" / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
QUIET_S = 1.0  # diagnostics are final once the server has said nothing more for this long


class LanguageServer:
    """A minimal LSP client: JSON-RPC framed by Content-Length, answering what the server asks of it."""

    def __init__(self) -> None:
        assert SERVER.is_file(), "yaml-language-server is missing: scripts/setup.sh installs it"
        self.proc = subprocess.Popen(
            ["node", str(SERVER), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.next_id = 0
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.answered: set[int] = set()

    def send(self, method: str, params: Any, request: bool = False) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        self._write(message)
        return message.get("id")

    def _write(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc.stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while (line := self.proc.stdout.readline().strip()) != b"":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))

    def handle(self, message: dict[str, Any]) -> None:
        if "method" in message and "id" in message:  # the server asks: its settings, or to register things
            result: Any = None
            if message["method"] == "workspace/configuration":
                result = [SETTINGS["yaml"] for _ in message["params"]["items"]]
            self._write({"jsonrpc": "2.0", "id": message["id"], "result": result})
        elif message.get("method") == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif "id" in message:
            self.answered.add(message["id"])

    def until(self, done: Any, timeout: float = 60.0, quiet: float = QUIET_S) -> None:
        import selectors

        selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                self.handle(self._read())
                last = time.monotonic()
            elif done() and time.monotonic() - last > quiet:
                return
        raise AssertionError("yaml-language-server did not answer in time")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


SETTINGS = {"yaml": {"validate": True, "hover": True, "completion": True, "schemaStore": {"enable": False}}}


@pytest.fixture(scope="module")
def server() -> Any:
    lsp = LanguageServer()
    initialize = lsp.send("initialize", {"processId": None, "rootUri": None, "capabilities": {}}, request=True)
    lsp.until(lambda: initialize in lsp.answered, timeout=30, quiet=0)
    lsp.send("initialized", {})
    lsp.send("workspace/didChangeConfiguration", {"settings": SETTINGS})
    yield lsp
    lsp.close()


def _diagnose(server: LanguageServer, path: Path, text: str) -> list[dict[str, Any]]:
    path.write_text(text)
    uri = path.as_uri()
    server.send(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}
    )
    server.until(lambda: uri in server.diagnostics)
    return server.diagnostics[uri]


def test_a_copied_example_validates_clean_and_mistakes_are_found(server: LanguageServer, tmp_path: Path) -> None:
    schema = install_schema(tmp_path / "share")
    modeline = f"# yaml-language-server: $schema={schema.as_uri()}"
    lines = EXAMPLE_STATE.read_text().splitlines()
    assert lines[0].startswith("# yaml-language-server: $schema=")
    example = "\n".join([modeline, *lines[1:]]) + "\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _diagnose(server, elsewhere / "state.yaml", example) == []
    broken = example.replace("    port: 8003\n", "    port: eighty\n").replace(
        "  reserved_memory_gib: 8", "  reserved: 8"
    )
    found = _diagnose(server, elsewhere / "broken.yaml", broken)
    lines_said = {d["range"]["start"]["line"] + 1: d["message"] for d in found}
    port_line = next(i for i, line in enumerate(broken.splitlines(), 1) if "port: eighty" in line)
    key_line = next(i for i, line in enumerate(broken.splitlines(), 1) if line.startswith("  reserved: 8"))
    assert "integer" in lines_said.get(port_line, "").lower(), found
    assert "not allowed" in lines_said.get(key_line, "").lower(), found
