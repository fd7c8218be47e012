"""Bans end to end (docs/behaviour.md, "/ban, /unban and /bans"): the real server with the
real trio-chat-ctl, terminal clients, IRC connections and a browser's
WebSocket; kept across a restart with --state-dir; cluster-wide."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .irc_peer import SERVER_NAME, IrcPeer
from .processes import Nodes, cluster, normalise, srv
from .programs import SERVER, run_program
from .test_e2e_control import ctl, printed
from .test_e2e_irc import WebPeer

OPTIONS = (
    *("--control", "ctl.sock", "--state-dir", "state", "--history", "5"),
    *("--irc-server-name", SERVER_NAME),
)


def bans_listed(workdir: Path) -> list[str]:
    result = ctl(workdir, "ctl.sock", "/bans")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_name_and_address_bans_on_every_port_kept_across_a_restart(tmp_path: Path) -> None:
    with cluster(tmp_path, server_options=OPTIONS, irc=True, web=True) as chat:
        alice = chat.join("alice")
        bob = chat.join("bob")
        result = ctl(tmp_path, "ctl.sock", "/ban", "general:bob", "3600")
        assert (result.returncode, printed(result)) == (
            0,
            [srv("Banned general:bob for 3600 seconds."), srv("Kicked bob.")],
        )
        chat.server.expect(srv("Banned general:bob for 3600 seconds."))
        chat.server.expect(srv("Kicked bob."))
        alice.expect_soon(srv("bob has left the channel."))
        assert bob.wait_exit() == 0
        assert "banned from general by the server operator" in bob.stderr
        # Back in general: refused, told why; in random: welcome.
        again = chat.client("bob")
        assert again.wait_exit() == 1
        told = r"refused: bob is banned from general for 3\d\d\d more seconds"
        assert re.search(told, again.stderr), again.stderr
        chat.join("bob", "random")
        # IRC: a nick is banned from #general in any case (474), not the connection.
        result = ctl(tmp_path, "ctl.sock", "/ban", "general:mal")
        assert printed(result) == [srv("Banned general:mal until unbanned.")]
        irc = IrcPeer(chat.irc_port(), "irc")
        irc.register("MAL")
        irc.send("JOIN #general")
        irc.expect("474", "MAL", "#general", "Cannot join channel (+b): MAL is banned from general")

        # The address: everyone from it goes, on every protocol, and nobody comes in.
        page = WebPeer(chat, "carol")
        page.expect("welcome", channel="general", user="carol")
        result = ctl(tmp_path, "ctl.sock", "/ban 127.0.0.0/8")
        assert result.returncode == 0 and printed(result)[0] == srv(
            "Banned 127.0.0.0/8 until unbanned."
        )
        reason = "your address was banned by the server operator"
        irc.expect("465", "MAL", f"You are banned from this server ({reason})")
        irc.expect("ERROR", f"Closing Link: {reason}")
        irc.expect_closed()
        assert alice.wait_exit() == 0 and reason in alice.stderr
        page.rest()
        assert page.bye == (0, reason)
        refused = "refused: your address is banned from this server"
        late = chat.client("dan")
        assert late.wait_exit() == 1 and refused in late.stderr
        late_irc = IrcPeer(chat.irc_port(), "late")
        late_irc.send("NICK dan", "USER dan 0 * :dan")
        late_irc.expect("465", "*", "You are banned from this server")
        late_irc.expect_closed()
        late_page = WebPeer(chat, "erin")
        late_page.rest()
        assert late_page.bye == (1, refused)
        # Logged once for the ban, however many it refuses meanwhile.
        assert chat.server.wait_stderr("refused dan from 127.0.0.1: banned (127.0.0.0/8)")
        assert "refused erin" not in chat.server.stderr
        assert bans_listed(tmp_path)[0] == "/bans: 127.0.0.0/8 until unbanned"
        result = ctl(tmp_path, "ctl.sock", "/unban 127.0.0.0/8")
        assert printed(result) == [srv("Unbanned 127.0.0.0/8.")]
        result = ctl(tmp_path, "ctl.sock", "/unban 127.0.0.0/8")
        assert (result.returncode, printed(result)) == (1, [srv("127.0.0.0/8 is not banned.")])
        ctl(tmp_path, "ctl.sock", "/ban", "10.9.0.0/16")
        # A second server on the same state directory is refused before any port.
        second = run_program(SERVER, "configfile", "--state-dir", "state", cwd=tmp_path)
        assert second.returncode == 1
        assert "the state directory state is in use" in second.stderr
        # One argument that hides a second command is refused, sent as nothing.
        hidden = ctl(tmp_path, "ctl.sock", "/unban 10.9.0.0/16\n/shutdown")
        assert hidden.returncode == 1 and "line break" in hidden.stderr
        assert bans_listed(tmp_path)[0] == "/bans: 10.9.0.0/16 until unbanned"
        ctl(tmp_path, "ctl.sock", "/shutdown")
        assert chat.server.wait_exit() == 0

        saved = json.loads((tmp_path / "state" / "bans.json").read_text())
        assert [row[:2] for row in saved["bans"]] == [
            ["address", "10.9.0.0/16"],
            ["name", "general:bob"],
            ["name", "general:mal"],
        ]
        assert (tmp_path / "state" / "bans.json").stat().st_mode & 0o077 == 0
        assert (tmp_path / "state" / "history").exists()  # --history N keeps its file there

        # The next start has the same bans, their time still running.
        restarted = chat._spawn(
            "server", [SERVER, "configfile", *OPTIONS, "--irc", f"127.0.0.1:{chat.irc_port()}"]
        )
        assert restarted.wait_stderr("listening")
        chat.server = restarted
        listed = bans_listed(tmp_path)
        assert listed[0] == "/bans: 10.9.0.0/16 until unbanned"
        assert re.fullmatch(r"/bans: general:bob 3\d\d\ds left", listed[1]), listed
        assert listed[2:] == ["/bans: general:mal until unbanned"]
        refused_again = chat.client("bob")
        assert refused_again.wait_exit() == 1
        assert "refused: bob is banned from general" in refused_again.stderr
        ctl(tmp_path, "ctl.sock", "/shutdown")
        assert restarted.wait_exit() == 0


def test_a_ban_at_node_1_drops_and_refuses_a_member_of_node_2(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=1, server_options=("--control", "n1.sock")) as chat:
        assert isinstance(chat.server, Nodes)
        chat.hosts.append("127.0.0.3")
        chat.server.nodes.append(chat.start_node("127.0.0.3"))
        watcher = chat.join("watcher", node=0)
        zed = chat.join("zed", node=1)
        result = ctl(tmp_path, "n1.sock", "/ban", "general:zed", "600")
        assert printed(result) == [srv("Banned general:zed for 600 seconds."), srv("Kicked zed.")]
        assert zed.wait_exit() == 0
        watcher.expect_soon(srv("zed has left the channel."))
        # Node 2 knows the ban: zed cannot come back through it.
        again = chat.client("zed", node=1)
        assert again.wait_exit() == 1
        assert "refused: zed is banned from general" in again.stderr
        listed = [normalise(line) for line in bans_listed_at(tmp_path, "n1.sock")]
        assert re.fullmatch(r"/bans: general:zed (59\d|600)s left", listed[0]), listed
        chat.shutdown()


def bans_listed_at(workdir: Path, sock: str) -> list[str]:
    result = ctl(workdir, sock, "/bans")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_state_dir_that_cannot_be_used_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "configfile"
    # (Never bound: each case stops before any port.)
    config.write_text("channel general 41001 5\nchannel random 41002 5\nchannel help 41003 5\n")
    (tmp_path / "afile").write_text("")
    cases = [
        (("--state-dir", "afile"), "the state directory afile is not a directory"),
        (("--state-dir", "no/such/dir"), "cannot create the state directory no/such/dir"),
        (
            ("--state-dir", "s", "--redis", "redis://127.0.0.1:1/0"),
            "--state-dir is for a lone server",
        ),
    ]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "bans.json").write_text('{"format": 1, "written": 0, "bans": [["x"]]}')
    cases.append((("--state-dir", "bad"), "the bans file bad/bans.json is damaged"))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "bans.json").write_text('{"format": 99}')
    cases.append((("--state-dir", "new"), "is not a bans file of format 1"))
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o1777)
    cases.append((("--state-dir", "open"), "the state directory open is writable by every user"))
    cases.append(
        (
            ("--state-dir", "new", "--history", "5", "--history-file", "new/bans.json"),
            "--history-file new/bans.json is the state directory's own file",
        )
    )
    for options, reason in cases:
        result = run_program(SERVER, "configfile", *options, cwd=tmp_path)
        assert result.returncode != 0 and reason in result.stderr, (options, result.stderr)
        assert "listening" not in result.stderr
    assert (tmp_path / "bad" / "bans.json").read_text().startswith('{"format": 1')
