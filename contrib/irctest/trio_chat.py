"""irctest controller for trio-chat's IRC port (see README.md in this directory).

irctest imports a controller by module name and calls
``get_irctest_controller_class()``: with the trio-chat checkout on PYTHONPATH,
``--controller contrib.irctest.trio_chat``.
The server is run as ``trio-chat-server`` from PATH: install trio-chat into the
venv that runs irctest, or put its venv's bin directory first on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from irctest.basecontrollers import (
    BaseServerController,
    DirectoryBasedController,
    TestCaseControllerConfig,
)
from irctest.runner import NotImplementedByController
from irctest.specifications import Capabilities, OptionalBehaviors

# Every channel name the irctest server tests use, without the '#': in our model
# a channel exists only if it is configured, so a test joining any other name gets
# 403. Names in irctest's own files: #chan #chan1 #chan2 (join, part, messages,
# quit, echo_message), #xyz (messages), #valid (join), #test #test_channel
# #otherchan #qux (other files and the Ergo-specific length tests).
CHANNELS = ("chan", "chan1", "chan2", "test", "test_channel", "xyz", "otherchan", "valid", "qux")

# Far above the few clients any one test connects; the capacity only has to
# never be what a test runs into.
CAPACITY = 100

# irctest checks this name literally (PONG's first parameter, 004's second).
SERVER_NAME = "My.Little.Server"

PROGRAM = "trio-chat-server"

# The lines each channel keeps for the tests that ask for chathistory
# (``TestCaseControllerConfig.chathistory``): ISUPPORT CHATHISTORY=100, as
# irctest's own ergo controller configures.
HISTORY_LINES = 100


class TrioChatController(BaseServerController, DirectoryBasedController):
    software_name = "trio-chat"
    # No STS: tests needing it skip instead of failing.
    supports_sts = False
    # What the port promises (docs/irc.md): a test that finds one of these
    # refused fails rather than skips, so losing one later fails loudly.
    capabilities = frozenset(
        {
            Capabilities.BATCH,
            Capabilities.ECHO_MESSAGE,
            Capabilities.MESSAGE_TAGS,
            Capabilities.MULTI_PREFIX,
            Capabilities.SERVER_TIME,
        }
    )
    optional_behaviors = frozenset({OptionalBehaviors.CAP_REQ_MINUS})

    def __init__(self, test_config: TestCaseControllerConfig) -> None:
        super().__init__(test_config)
        # ISUPPORT values isupport.testValues checks in the 005 lines.
        self.isupport = {"CASEMAPPING": "ascii", "CHANTYPES": "#", "NICKLEN": "32", "PREFIX": ""}
        # No SASL mechanism: tests needing one skip instead of failing.
        self.supported_sasl_mechanisms: set[str] = set()

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None,
        websocket_hostname: str | None,
        websocket_port: int | None,
    ) -> None:
        if ssl:
            raise NotImplementedByController("TLS on the IRC port")
        if run_services:
            raise NotImplementedByController("IRC services")
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        # faketime is ignored: the tests that ask for it check faketime_enabled,
        # which stays False, before relying on it.
        assert self.proc is None
        executable = shutil.which(PROGRAM)
        if executable is None:
            raise RuntimeError(
                f"{PROGRAM} is not on PATH: install trio-chat in the venv that runs irctest "
                "(pip install -e /path/to/trio-chat) or put its bin directory first on PATH"
            )
        self.port = port
        self.hostname = hostname
        self.create_config()
        assert self.directory is not None

        # Each channel also listens for native clients; ask irctest for the ports
        # so they cannot collide with another controller's (they are freed by kill()).
        lines = []
        for name in CHANNELS:
            (_, native_port) = self.get_hostname_and_port()
            lines.append(f"channel {name} {native_port} {CAPACITY}\n")
        config_path = self.directory / "channels.conf"
        config_path.write_text("".join(lines))

        # irctest hands out "0.0.0.0" (it found the port by binding to any
        # address) and connects to it, which Linux routes to loopback; listening on
        # loopback keeps the test server off the network.
        command: list[str | Path] = [
            executable,
            config_path,
            "--irc",
            f"127.0.0.1:{port}",
            "--irc-server-name",
            SERVER_NAME,
            # Tests send bursts of lines and connect many clients from 127.0.0.1.
            "--flood-rate",
            "0",
            "--max-per-address",
            "0",
        ]
        if self.test_config.chathistory:
            command += ["--history", str(HISTORY_LINES)]
        if password is not None:
            password_path = self.directory / "irc-password"
            # No trailing newline: the file holds exactly the password.
            password_path.write_text(password)
            command += ["--irc-password-file", password_path]

        # This module is named trio_chat too: if PYTHONPATH points at its
        # directory (to load it as --controller trio_chat), the server would
        # import this file instead of its own package. The server finds its
        # package the way its own interpreter does, so drop PYTHONPATH.
        env = {key: value for (key, value) in os.environ.items() if key != "PYTHONPATH"}
        # stdin is the server console; EOF there does not stop the server, and
        # DEVNULL keeps it from reading pytest's terminal.
        self.proc = self.execute(command, stdin=subprocess.DEVNULL, env=env)


def get_irctest_controller_class() -> type[TrioChatController]:
    return TrioChatController
