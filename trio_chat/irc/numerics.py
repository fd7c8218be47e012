"""The numeric replies the IRC port sends, by name, and its registration burst.

docs/irc.md lists when each is sent. The numbers are the ones the
specifications (RFC 1459, RFC 2812, the modern IRC client protocol) give.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import __version__
from .lines import MAX_LINE, encode
from .nicks import NICKLEN

RPL_WELCOME = "001"
RPL_YOURHOST = "002"
RPL_CREATED = "003"
RPL_MYINFO = "004"
RPL_ISUPPORT = "005"
RPL_UMODEIS = "221"
RPL_AWAY = "301"
RPL_USERHOST = "302"
RPL_ISON = "303"
RPL_UNAWAY = "305"
RPL_NOWAWAY = "306"
RPL_WHOISUSER = "311"
RPL_WHOISSERVER = "312"
RPL_ENDOFWHO = "315"
RPL_ENDOFWHOIS = "318"
RPL_WHOISCHANNELS = "319"
RPL_LISTSTART = "321"
RPL_LIST = "322"
RPL_LISTEND = "323"
RPL_CHANNELMODEIS = "324"
RPL_NOTOPIC = "331"
RPL_WHOREPLY = "352"
RPL_NAMREPLY = "353"
RPL_ENDOFNAMES = "366"
RPL_BANLIST = "367"
RPL_ENDOFBANLIST = "368"
ERR_NOSUCHNICK = "401"
ERR_NOSUCHCHANNEL = "403"
ERR_CANNOTSENDTOCHAN = "404"
ERR_TOOMANYTARGETS = "407"
ERR_NOORIGIN = "409"
ERR_INVALIDCAPCMD = "410"
ERR_NORECIPIENT = "411"
ERR_NOTEXTTOSEND = "412"
ERR_INPUTTOOLONG = "417"
ERR_UNKNOWNCOMMAND = "421"
ERR_NOMOTD = "422"
ERR_NONICKNAMEGIVEN = "431"
ERR_ERRONEUSNICKNAME = "432"
ERR_NICKNAMEINUSE = "433"
ERR_UNAVAILRESOURCE = "437"
ERR_NOTONCHANNEL = "442"
ERR_NONICKCHANGE = "447"
ERR_NOTREGISTERED = "451"
ERR_NEEDMOREPARAMS = "461"
ERR_ALREADYREGISTERED = "462"
ERR_PASSWDMISMATCH = "464"
ERR_YOUREBANNEDCREEP = "465"
ERR_INVALIDUSERNAME = "468"
ERR_BANNEDFROMCHAN = "474"
ERR_CHANOPRIVSNEEDED = "482"
ERR_UMODEUNKNOWNFLAG = "501"
ERR_USERSDONTMATCH = "502"

USERLEN = 16  # the longest USER name kept (longer ones are cut)
# What the port supports of each: no user modes but +i (which changes
# nothing), and channels are always +nt (docs/irc.md, "Queries").
USER_MODES = "i"
CHANNEL_MODES = "nt"
# The most ISUPPORT tokens one 005 line carries (the specifications: 13).
TOKENS_PER_LINE = 13


def isupport_tokens(channels: Sequence[str], network: str, history: int) -> list[str]:
    """The ISUPPORT (005) tokens: what a client needs to know of this server.
    ``history``: the most lines CHATHISTORY returns (0: no history kept, no
    CHATHISTORY, and no token says so)."""
    count = max(1, len(channels))
    longest = max((len(name.encode()) for name in channels), default=1) + 1
    targets = f"JOIN:{count},PART:{count},NAMES:1,LIST:,WHOIS:1,PRIVMSG:1,NOTICE:1"
    chathistory = [f"CHATHISTORY={history}"] if history else []
    msgreftypes = ["MSGREFTYPES=msgid,timestamp"] if history else []
    return [
        "CASEMAPPING=ascii",
        f"CHANLIMIT=#:{count}",
        "CHANMODES=,,,nt",
        f"CHANNELLEN={longest}",
        "CHANTYPES=#",
        *chathistory,
        f"LINELEN={MAX_LINE}",
        *msgreftypes,
        f"NETWORK={network}",
        f"NICKLEN={NICKLEN}",
        "PREFIX=",
        "SAFELIST",
        f"TARGMAX={targets}",
        f"USERLEN={USERLEN}",
        "UTF8ONLY",
    ]


def numeric(server: str, code: str, nick: str, *params: str) -> bytes:
    return encode(code, [nick, *params], server)


def registration_burst(
    server: str, nick: str, mask: str, channels: Sequence[str], network: str, history: int
) -> list[bytes]:
    """001-005 and 422: what a client gets once it is registered."""
    version = f"trio-chat-{__version__}"
    burst = [
        numeric(server, RPL_WELCOME, nick, f"Welcome to the {network} IRC network, {mask}"),
        numeric(server, RPL_YOURHOST, nick, f"Your host is {server}, running {version}"),
        numeric(server, RPL_CREATED, nick, "This server serves configured channels only"),
        numeric(server, RPL_MYINFO, nick, server, version, USER_MODES, CHANNEL_MODES),
    ]
    tokens = isupport_tokens(channels, network, history)
    for start in range(0, len(tokens), TOKENS_PER_LINE):
        chunk = tokens[start : start + TOKENS_PER_LINE]
        burst.append(numeric(server, RPL_ISUPPORT, nick, *chunk, "are supported by this server"))
    burst.append(numeric(server, ERR_NOMOTD, nick, "There is no message of the day"))
    return burst
