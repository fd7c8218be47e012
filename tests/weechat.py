"""A real IRC client for end-to-end tests: Debian's ``weechat-headless``.

WeeChat runs with a home of its own in a temporary directory, loads only the
irc, logger and fifo plugins, and is driven and read through files there:

- commands go in through the fifo plugin's pipe (``weechat_fifo_PID``), one
  line ``BUFFER *TEXT`` each, on one writer kept open for the whole run (a
  writer that closes makes WeeChat close and reopen its end, and a line
  written in between would wait for that);
- what WeeChat shows comes out through the logger plugin's files, one per
  buffer (``logs/irc.SERVER.#CHANNEL.weechatlog``), written at once (flush
  delay 0), each line ``date time<TAB>prefix<TAB>message``.

Nothing waits a fixed time: every step waits, with a generous deadline, for the
line that says it happened. The server's registration is seen by a marker line
that WeeChat prints from the server's ``command`` option, which it runs right
after the server's welcome (001) and before any command of ours is read.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .processes import DEADLINE

BINARY = "weechat-headless"
INSTALL = "apt-get install weechat-headless"
REGISTERED = "trio-chat-test: registered"
POLL = 0.02  # seconds between two looks at a log file or the fifo
# What an IRC server may put before a nick in a channel's list (PREFIX=...).
MODE_CHARS = "~&@%+!"


def weechat_path() -> str | None:
    return shutil.which(BINARY)


def major_version(binary: str) -> int:
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=DEADLINE, check=True
    )
    return int(result.stdout.strip().split(".")[0])


def server_settings(major: int) -> dict[str, str]:
    """The options that make the connection plain and predictable, by the
    names the installed WeeChat knows (4.0 renamed ``ssl`` to ``tls``, turned
    it on by default, and merged the two anti-flood delays into one)."""
    settings = {
        "autojoin": '""',  # joins are the test's to make
        "autoreconnect": "off",  # a lost connection must fail the test, not heal
        "nicks_alternate": "off",  # a taken nick fails, rather than nick_ joining
        "sasl_username": '""',  # no SASL
        "sasl_password": '""',
        "command": f'"/print {REGISTERED}"',
    }
    if major >= 4:
        settings.update(tls="off", anti_flood="0")
    else:
        # Without this, WeeChat spaces out our lines by 2 s each.
        settings.update(ssl="off", anti_flood_prio_high="0", anti_flood_prio_low="0")
    return settings


@dataclass(frozen=True)
class LogLine:
    stamp: str  # "YYYY-mm-dd HH:MM:SS"
    prefix: str  # a nick (with its mode character), "-->", "<--", "--" or ""
    message: str

    @property
    def nick(self) -> str:
        return self.prefix.lstrip(MODE_CHARS)

    def __str__(self) -> str:
        return f"{self.stamp}\t{self.prefix}\t{self.message}"


def parse(line: str) -> LogLine:
    stamp, _, rest = line.partition("\t")
    prefix, _, message = rest.partition("\t")
    return LogLine(stamp, prefix, message)


class Log:
    """One buffer's log file, read in order as it grows (like processes.Lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[LogLine] = []
        self._cursor = 0
        self._offset = 0
        self._partial = b""

    def read_new(self) -> None:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return  # the buffer is not open (yet)
        self._offset += len(data)
        # A line counts once its newline is there: a read may catch a write half done.
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend(parse(raw.decode(errors="replace")) for raw in complete)

    def next_match(self, wanted: re.Pattern[str] | str) -> LogLine | None:
        """The first line not yet passed that matches, passing every line up to it."""
        self.read_new()
        while self._cursor < len(self.lines):
            line = self.lines[self._cursor]
            self._cursor += 1
            if matches(line, wanted):
                return line
        return None

    def text(self) -> str:
        self.read_new()
        return "\n".join(str(line) for line in self.lines)


def matches(line: LogLine, wanted: re.Pattern[str] | str) -> bool:
    if isinstance(wanted, str):
        return wanted in str(line)
    return wanted.search(str(line)) is not None


class WeeChat:
    """One weechat-headless connected to an IRC server as ``nick``."""

    def __init__(
        self, home: Path, port: int, nick: str, host: str = "127.0.0.1", server: str = "trio"
    ) -> None:
        binary = weechat_path()
        assert binary is not None, f"no {BINARY}: install it with `{INSTALL}`"
        self.home = home
        self.nick = nick
        self.server = server
        self.logs: dict[str, Log] = {}
        home.mkdir(parents=True, exist_ok=True)
        settings = server_settings(major_version(binary))
        commands = [
            # Before any buffer of the server opens, so its log is written line by line.
            "/set logger.file.flush_delay 0",
            f"/server add {server} {host}/{port}",
            f"/set irc.server.{server}.nicks {nick}",
            f"/set irc.server.{server}.username {nick}",
            f"/set irc.server.{server}.realname {nick}",
            *(f"/set irc.server.{server}.{name} {value}" for name, value in settings.items()),
            f"/connect {server}",
        ]
        self._output = (home / "stdout").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                "--dir",
                str(home),
                "--stdout",  # WeeChat's own log to our file, not into its home
                "--no-connect",
                "--no-script",
                "--plugins",
                "irc,logger,fifo",
                # One -r each: a value with a ";" would otherwise split a command.
                *(part for command in commands for part in ("-r", command)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        self._fifo: int | None = None
        try:
            self._fifo = self._open_fifo()
            self.wait_line(self.server_buffer, REGISTERED)
        except BaseException:
            self.kill()
            raise

    @property
    def server_buffer(self) -> str:
        return f"irc.server.{self.server}"

    def buffer(self, channel: str) -> str:
        return f"irc.{self.server}.{channel}"

    def log(self, buffer: str) -> Log:
        if buffer not in self.logs:
            # logger.file.mask "$plugin.$name.weechatlog", names in lower case.
            self.logs[buffer] = Log(self.home / "logs" / f"{buffer.lower()}.weechatlog")
        return self.logs[buffer]

    def _open_fifo(self) -> int:
        """The writing end of WeeChat's fifo, once WeeChat has it open to read."""
        end = time.monotonic() + DEADLINE
        while True:
            self._check_running()
            # The fifo plugin names it weechat_fifo_PID in the runtime directory.
            for path in self.home.glob("weechat_fifo*"):
                try:
                    # Non-blocking: without a reader yet, ENXIO rather than a hang.
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as error:
                    if error.errno != errno.ENXIO:
                        raise
                    continue
                # Blocking from now on: a full pipe waits for WeeChat to read.
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
                return fd
            if time.monotonic() > end:
                raise AssertionError(
                    f"{self.nick}: WeeChat opened no fifo (its fifo plugin is in the package"
                    f" weechat-plugins)\n{self.diagnosis()}"
                )
            time.sleep(POLL)

    def command(self, buffer: str, text: str) -> None:
        """``text`` in ``buffer`` as if typed there: a /command, or a message."""
        assert "\n" not in text and "\r" not in text, text
        assert self._fifo is not None
        line = f"{buffer} *{text}\n".encode()
        # Under PIPE_BUF, a line is one atomic write: WeeChat never reads half of it.
        assert len(line) <= 4096, line
        os.write(self._fifo, line)

    def wait_line(
        self, buffer: str, wanted: re.Pattern[str] | str, deadline: float = DEADLINE
    ) -> LogLine:
        """Wait until a line of ``buffer``'s log not yet passed contains (or, as
        a pattern, matches) ``wanted``; the lines before it are passed over."""
        log = self.log(buffer)
        end = time.monotonic() + deadline
        while (found := log.next_match(wanted)) is None:
            if time.monotonic() > end:
                raise AssertionError(
                    f"{self.nick}: {wanted!r} not in {buffer}'s log\n{self.diagnosis(buffer)}"
                )
            self._check_running()
            time.sleep(POLL)
        return found

    def wait_message(
        self, channel: str, nick: str, text: str, deadline: float = DEADLINE
    ) -> LogLine:
        """Wait for ``nick``'s message ``text``, exactly, in ``channel``."""
        pattern = re.compile(
            rf"^[^\t]*\t[{re.escape(MODE_CHARS)}]*{re.escape(nick)}\t{re.escape(text)}$"
        )
        return self.wait_line(self.buffer(channel), pattern, deadline)

    def join(self, channel: str) -> None:
        """Join ``channel`` and wait until the server says we are in."""
        self.command(self.server_buffer, f"/join {channel}")
        self.wait_line(self.buffer(channel), self._own("-->", f"has joined {channel}"))

    def say(self, channel: str, text: str) -> None:
        assert not text.startswith("/"), text
        self.command(self.buffer(channel), text)
        # WeeChat shows its own message when it sends it, not when the server has it.
        self.wait_message(channel, self.nick, text)

    def part(self, channel: str) -> None:
        """Leave ``channel`` and wait until the server confirms it."""
        self.command(self.buffer(channel), "/part")
        self.wait_line(self.buffer(channel), self._own("<--", f"has left {channel}"))

    def _own(self, arrow: str, what: str) -> re.Pattern[str]:
        # "-->\tNICK (USER@HOST) has joined #CHANNEL"
        return re.compile(
            rf"^[^\t]*\t{re.escape(arrow)}\t{re.escape(self.nick)} \([^)]*\) {re.escape(what)}"
        )

    def quit(self, deadline: float = DEADLINE) -> int:
        """/quit: WeeChat sends QUIT, saves its configuration and exits."""
        self.command(self.server_buffer, "/quit")
        try:
            return self.process.wait(deadline)
        finally:
            self.kill()

    def _check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.nick}: WeeChat exited with {self.process.returncode}\n{self.diagnosis()}"
            )

    def diagnosis(self, buffer: str | None = None) -> str:
        """What WeeChat said on stdout, and the logs of the buffers concerned."""
        parts = [f"--- stdout\n{(self.home / 'stdout').read_text(errors='replace')}"]
        for name in dict.fromkeys([self.server_buffer, *([buffer] if buffer else [])]):
            parts.append(f"--- {name}\n{self.log(name).text()}")
        return "\n".join(parts)

    def kill(self) -> None:
        """End it whatever state it is in (a no-op after it exited)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self._fifo is not None:
            os.close(self._fifo)
            self._fifo = None
        self._output.close()


@contextmanager
def weechat(
    home: Path, port: int, nick: str, host: str = "127.0.0.1", server: str = "trio"
) -> Iterator[WeeChat]:
    """A connected WeeChat for the block, killed after it whatever happened."""
    client = WeeChat(home, port, nick, host, server)
    try:
        yield client
    finally:
        client.kill()
