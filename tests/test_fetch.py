"""Installing the data set: from a folder, from a loopback HTTP mirror, with corrupt and cut-short files."""

from __future__ import annotations

import http.server
import shutil
import threading
from importlib import resources
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.errors import OwlEvalError
from owleval.fetch import install_dataset, verify_dataset
from owleval.manifest import load_manifest, sha256_of
from owleval.paths import default_data_dir

runner = CliRunner()


class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    cut_short: set[str] = set()
    unavailable: dict[str, int] = {}  # path -> how many more requests get 503 Service Unavailable
    requests: list[str] = []

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        name = self.path.lstrip("/")
        if self.unavailable.get(name, 0) > 0:
            self.unavailable[name] -= 1
            self.send_error(503, "busy")
            return
        if name in self.cut_short:  # announce the full length, send half, hang up
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture()
def mirror(owl_data: Path, tmp_path: Path) -> Iterator[tuple[str, Path, type[_MirrorHandler]]]:
    root = tmp_path / "mirror"
    shutil.copytree(owl_data, root)
    handler = type("Handler", (_MirrorHandler,), {"cut_short": set(), "unavailable": {}, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    handler.server_object = server  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, handler
    server.shutdown()
    server.server_close()


def test_manifest_lists_every_file_with_checksums(owl_data: Path) -> None:
    manifest = load_manifest()
    paths = {f.path for f in manifest.files}
    assert "questions.jsonl" in paths
    assert sum(p.startswith("cases/") for p in paths) == 50 and sum(p.startswith("answer/") for p in paths) == 6
    assert manifest.source_commit in manifest.url_for(manifest.files[0])
    for entry in manifest.files:
        assert sha256_of(owl_data / entry.path) == entry.sha256


def test_download_from_loopback_mirror(mirror, tmp_path: Path) -> None:
    url, _, handler = mirror
    dest = tmp_path / "dest"
    result = runner.invoke(app, ["data", "fetch", "--mirror", url, "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert len(handler.requests) == len(load_manifest().files)
    assert all(s.state == "ok" for s in verify_dataset(dest))
    again = runner.invoke(app, ["data", "fetch", "--mirror", url, "--dest", str(dest)])
    assert again.exit_code == 0 and len(handler.requests) == len(load_manifest().files)  # nothing fetched twice


def test_corrupt_and_cut_short_downloads_leave_no_partial_file_and_resume(mirror, tmp_path: Path, owl_data: Path) -> None:
    url, root, handler = mirror
    (root / "cases" / "3.jpg").write_bytes(b"not the image")
    handler.cut_short.add("cases/7.jpg")
    dest = tmp_path / "dest"
    with pytest.raises(OwlEvalError) as info:
        install_dataset(dest, mirror=url, retries=2)
    message = str(info.value)
    assert "cases/3.jpg" in message and "cases/7.jpg" in message and "2 of 57" in message
    assert not (dest / "cases" / "3.jpg").exists() and not (dest / "cases" / "7.jpg").exists()
    assert not list(dest.rglob("*.part"))
    assert (dest / "cases" / "8.jpg").is_file()
    # mirror repaired: a re-run fetches only the two missing files
    handler.cut_short.clear()
    shutil.copy(owl_data / "cases" / "3.jpg", root / "cases" / "3.jpg")
    handler.requests.clear()
    report = install_dataset(dest, mirror=url)
    assert sorted(report.installed) == ["cases/3.jpg", "cases/7.jpg"]
    assert sorted(handler.requests) == ["/cases/3.jpg", "/cases/7.jpg"]


@pytest.mark.parametrize("mirror_url", ["http://owleval-mirror.invalid/x", "http://127.0.0.1:9/x"], ids=["no-such-host", "refused"])
def test_unreachable_host_fails_fast_naming_the_host_and_the_next_step(mirror_url: str, tmp_path: Path) -> None:
    import time

    dest = tmp_path / "dest"
    started = time.monotonic()
    result = runner.invoke(app, ["data", "fetch", "--mirror", mirror_url, "--dest", str(dest)])
    assert time.monotonic() - started < 15
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    host = mirror_url.split("/")[2].split(":")[0]
    assert len(errors) == 1 and f"cannot reach {host}" in errors[0], result.stderr
    assert "owleval data fetch --from DIR" in errors[0] and "--mirror URL" in errors[0]
    assert ("does not resolve" if "invalid" in host else "Connection refused") in errors[0]
    assert not [p for p in dest.rglob("*") if p.is_file()]


def test_host_lost_mid_fetch_stops_at_once_and_resumes_later(mirror, tmp_path: Path) -> None:
    url, _, handler = mirror
    dest = tmp_path / "dest"
    done: list[str] = []

    def after_file(entry, outcome: str) -> None:
        done.append(entry.path)
        if len(done) == 5:  # the mirror goes away: later connections are refused
            handler.server_object.shutdown()
            handler.server_object.server_close()

    with pytest.raises(OwlEvalError) as info:
        install_dataset(dest, mirror=url, on_file=after_file)
    assert "cannot reach 127.0.0.1" in str(info.value) and "5 of 57 files are in place" in str(info.value)
    assert len(handler.requests) == 5 and len(done) == 5  # the other 52 files were not tried one by one
    assert sum(s.state == "ok" for s in verify_dataset(dest)) == 5


def test_server_errors_are_retried(mirror, tmp_path: Path) -> None:
    url, _, handler = mirror
    handler.unavailable["questions.jsonl"] = 2
    report = install_dataset(tmp_path / "dest", mirror=url)
    assert len(report.installed) == 57 and handler.requests.count("/questions.jsonl") == 3


def test_install_from_folder_and_verify_names_bad_files(tmp_path: Path, owl_data: Path) -> None:
    dest = tmp_path / "copy"
    assert runner.invoke(app, ["data", "fetch", "--from", str(owl_data), "--dest", str(dest)]).exit_code == 0
    (dest / "cases" / "12.jpg").write_bytes(b"corrupted")
    (dest / "answer" / "llava_13b_answer.jsonl").unlink()
    result = runner.invoke(app, ["data", "verify", "--dest", str(dest)])
    assert result.exit_code == 1
    assert "cases/12.jpg" in result.output and "llava_13b_answer.jsonl" in result.output and "2 of 57" in result.output


def test_corrupt_source_file_is_not_installed(tmp_path: Path, owl_data: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(owl_data, source)
    (source / "cases" / "20.jpg").write_bytes(b"x" * (owl_data / "cases" / "20.jpg").stat().st_size)
    dest = tmp_path / "dest"
    result = runner.invoke(app, ["data", "fetch", "--from", str(source), "--dest", str(dest)])
    assert result.exit_code == 1 and "cases/20.jpg" in result.output and "sha256" in result.output
    assert not (dest / "cases" / "20.jpg").exists() and not list(dest.rglob("*.part"))


def test_owleval_data_environment_variable_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OWLEVAL_DATA", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    result = runner.invoke(app, ["data", "verify"])
    assert result.exit_code == 1 and "57 of 57" in result.output


def test_info_counts(owl_data: Path) -> None:
    result = runner.invoke(app, ["data", "info"])
    assert result.exit_code == 0
    assert "50 images, 82 questions" in result.output
    for label, count in (("single-turn only", 30), ("opens a dialogue", 20), ("later turn", 32)):
        line = next(line for line in result.output.splitlines() if label in line)
        assert str(count) in line


def test_build_manifest_reproduces_the_shipped_one(owl_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifest.json"
    result = runner.invoke(app, ["data", "build-manifest", "--from", str(owl_data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    shipped = resources.files("owleval.dataset_manifest").joinpath("manifest.json").read_text()
    assert out.read_text() == shipped
