"""contrib/systemd/trio-chat.service: what the issue asks of it, and
``systemd-analyze verify`` where systemd is installed (its ExecStart pointed
at the installed server, which verify wants to exist)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .programs import SERVER

UNIT = Path(__file__).parent.parent / "contrib" / "systemd" / "trio-chat.service"


def settings() -> dict[str, list[str]]:
    """Each key's values, continuation lines joined."""
    found: dict[str, list[str]] = {}
    text = UNIT.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(" ".join(value.split()))
    return found


def test_the_unit_says_what_a_hardened_notify_service_needs() -> None:
    unit = settings()
    assert unit["Type"] == ["notify"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    start = unit["ExecStart"][0].split()
    assert start[:2] == ["/usr/local/bin/trio-chat-server", "/etc/trio-chat/configfile"]
    assert "--control /run/trio-chat/control" in unit["ExecStart"][0]
    assert "--state-dir /var/lib/trio-chat" in unit["ExecStart"][0]
    assert unit["RuntimeDirectory"] == unit["StateDirectory"] == ["trio-chat"]
    assert unit["DynamicUser"] == ["yes"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert unit["Restart"] == ["on-failure"]
    assert int(unit["LimitNOFILE"][0]) >= 65536


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    copy = tmp_path / "trio-chat.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/trio-chat-server", SERVER))
    checked = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    # Warnings go to stderr with status 0: none are expected of this unit.
    assert "trio-chat.service" not in checked.stderr, checked.stderr
