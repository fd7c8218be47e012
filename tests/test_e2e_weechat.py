"""A real IRC client, Debian's weechat-headless, on the server's IRC port
(--irc), chatting with a terminal client in the same channel.

Without weechat-headless this test is skipped (install it with
`apt-get install weechat-headless`); with TRIO_CHAT_REQUIRE_IRC_CLIENT=1 a
missing client fails it instead, as in CI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .processes import cluster, srv
from .weechat import INSTALL, weechat, weechat_path


@pytest.fixture
def irc_client() -> None:
    if weechat_path() is None:
        reason = f"no weechat-headless found: install it with `{INSTALL}`"
        if os.environ.get("TRIO_CHAT_REQUIRE_IRC_CLIENT") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.usefixtures("irc_client")
def test_weechat_and_a_terminal_chat_both_ways(tmp_path: Path) -> None:
    with cluster(tmp_path, irc=True) as chat:
        term = chat.join("term")
        with weechat(tmp_path / "weechat", chat.irc_port(0), "wee") as wee:
            wee.join("#general")
            general = wee.buffer("#general")
            chat.server.expect(srv("wee has joined the general channel."))
            term.expect(srv("wee has joined the channel."))

            wee.say("#general", "hello from   weechat")
            term.expect("[wee (<time>)] hello from   weechat")
            chat.server.expect("[wee (<time>)] hello from   weechat")

            term.type("hello from the terminal")
            term.expect("[term (<time>)] hello from the terminal")
            chat.server.expect("[term (<time>)] hello from the terminal")
            wee.wait_message("#general", "term", "hello from the terminal")

            # A terminal client's coming and going, as an IRC client sees them.
            late = chat.join("late")
            term.expect(srv("late has joined the channel."))
            wee.wait_line(general, re.compile(r"\t-->\tlate \([^)]*\) has joined"))
            late.type("/quit")
            assert late.wait_exit() == 0
            term.expect(srv("late has left the channel."))
            chat.server.expect(srv("late has left the channel."))
            # A PART or a QUIT: either is the IRC way to say it.
            wee.wait_line(general, re.compile(r"\t<--\tlate \([^)]*\) has (left|quit)"))

            wee.part("#general")
            term.expect(srv("wee has left the channel."))
            chat.server.expect(srv("wee has left the channel."))
            assert wee.quit() == 0
        chat.shutdown()
        assert chat.server.rest() == []
        assert term.rest() == []
        assert term.process.returncode == 0
