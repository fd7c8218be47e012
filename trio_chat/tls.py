"""TLS contexts for both programs; ``ssl`` is imported only when TLS is asked for.

TLS 1.2 or newer. The server presents a PEM certificate chain and key; the
client verifies the server's certificate against the system's CA store or a
CA file it is given, and the host name against ``--host``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl


class TLSSetupError(Exception):
    """A certificate, key or CA file that cannot be used; the message says why."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert_file, key_file):
        if not os.path.isfile(path):
            raise TLSSetupError(f"cannot read {path}: no such file")
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or error.strerror or str(error)
        raise TLSSetupError(
            f"cannot use certificate {cert_file} with key {key_file}: {reason}"
        ) from None
    return context


def client_context(ca_file: str | None) -> ssl.SSLContext:
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError as error:
        raise TLSSetupError(f"cannot read CA file {ca_file}: {error.strerror}") from None
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or str(error)
        raise TLSSetupError(f"cannot use CA file {ca_file}: {reason}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def describe_failure(error: BaseException) -> str:
    """A readable reason for a failed TLS handshake (trio wraps the ssl error)."""
    import ssl

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"the server's certificate was refused: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"the TLS handshake failed: {cause.reason or cause}"
    return "the TLS handshake failed: the server closed the connection (is it using TLS?)"
