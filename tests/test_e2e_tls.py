"""TLS end to end with the installed programs and trustme certificates (docs/security.md,
"TLS"): chat, whisper and /send over TLS; untrusted and expired certificates
refused; plain and TLS peers that do not match fail clearly on the client and
silently on the server."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
import trustme

from bench.common import sha256

from .processes import cluster, srv
from .programs import CLIENT, SERVER, run_program


def write_certificates(directory: Path, expired: bool = False) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for localhost signed by it: (ca, cert, key)."""
    authority = trustme.CA()
    if expired:
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = authority.issue_cert(
            "localhost",
            "127.0.0.1",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
    else:
        leaf = authority.issue_cert("localhost", "127.0.0.1")
    ca, cert, key = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    authority.cert_pem.write_to_path(str(ca))
    leaf.private_key_pem.write_to_path(str(key))
    with cert.open("wb") as chain:
        for blob in leaf.cert_chain_pems:
            chain.write(blob.bytes())
    return ca, cert, key


def test_chat_whisper_and_send_over_tls(tmp_path: Path) -> None:
    ca, cert, key = write_certificates(tmp_path)
    (tmp_path / "photo.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = ("--tls-cert", str(cert), "--tls-key", str(key))
    with cluster(tmp_path, server_options=options) as chat:
        alice = chat.client("alice", "general", "--ca", str(ca))
        chat.server.expect(srv("alice has joined the general channel."))
        alice.expect(srv("Welcome to the general channel, alice."))
        alice.expect(srv("alice has joined the channel."))
        bob = chat.client("bob", "general", "--ca", str(ca), "--download-dir", str(downloads))
        chat.server.expect(srv("bob has joined the general channel."))
        alice.expect(srv("bob has joined the channel."))
        alice.type("hello over tls", "/whisper bob psst", "/send bob photo.bin")
        chat.server.expect("[alice (<time>)] hello over tls")
        chat.server.expect("[alice whispers to bob: (<time>)] psst")
        alice.expect("[alice (<time>)] hello over tls")
        alice.expect(srv("You sent photo.bin to bob."), deadline=60)
        chat.server.expect(srv("alice sent photo.bin to bob."))
        bob.type("/quit")
        assert bob.wait_exit() == 0
        chat.server.expect(srv("bob has left the channel."))
        chat.server.type("/kick general:alice")
        chat.server.expect(srv("Kicked alice."))
        assert alice.wait_exit() == 0
        chat.shutdown()
    assert bob.lines[2:] == [
        "[alice (<time>)] hello over tls",
        "[alice whispers to you: (<time>)] psst",
    ]
    assert sha256(downloads / "photo.bin") == sha256(tmp_path / "photo.bin")


@pytest.mark.parametrize("case", ["untrusted", "expired"])
def test_a_certificate_the_client_cannot_trust_is_refused(tmp_path: Path, case: str) -> None:
    _, cert, key = write_certificates(tmp_path, expired=case == "expired")
    if case == "untrusted":
        other = tmp_path / "other"
        other.mkdir()
        ca, _, _ = write_certificates(other)
    else:
        ca = tmp_path / "ca.pem"
    with cluster(tmp_path, server_options=("--tls-cert", str(cert), "--tls-key", str(key))) as chat:
        client = chat.client("alice", "general", "--ca", str(ca))
        assert client.wait_exit() == 1
        assert "certificate was refused" in client.stderr
        wanted = "expired" if case == "expired" else "unable to get local issuer"
        assert wanted in client.stderr
        assert client.lines == []
        chat.shutdown()
        assert chat.server.rest() == []


def test_a_plain_client_against_a_tls_server(tmp_path: Path) -> None:
    _, cert, key = write_certificates(tmp_path)
    with cluster(tmp_path, server_options=("--tls-cert", str(cert), "--tls-key", str(key))) as chat:
        client = chat.client("alice")
        assert client.wait_exit() == 1
        assert "add --tls" in client.stderr
        chat.shutdown()
        assert chat.server.rest() == []


def test_a_tls_client_against_a_plain_server(tmp_path: Path) -> None:
    ca, _, _ = write_certificates(tmp_path)
    with cluster(tmp_path) as chat:
        client = chat.client("alice", "general", "--ca", str(ca))
        assert client.wait_exit() == 1
        assert "TLS handshake failed" in client.stderr
        assert "Traceback" not in client.stderr
        chat.shutdown()
        assert chat.server.rest() == []


def test_unusable_certificate_files_exit_1(tmp_path: Path) -> None:
    _, cert, key = write_certificates(tmp_path)
    config = tmp_path / "configfile"
    config.write_text("channel a 1 5\nchannel b 2 5\nchannel c 3 5\n")
    missing = run_program(SERVER, str(config), "--tls-cert", str(cert))
    assert missing.returncode == 1 and "go together" in missing.stderr
    swapped = run_program(SERVER, str(config), "--tls-cert", str(key), "--tls-key", str(cert))
    assert swapped.returncode == 1 and "cannot use certificate" in swapped.stderr
    absent = run_program(SERVER, str(config), "--tls-cert", "nope.pem", "--tls-key", str(key))
    assert absent.returncode == 1 and "nope.pem" in absent.stderr
    no_ca = run_program(CLIENT, "1", "alice", "--ca", str(tmp_path / "nope.pem"))
    assert no_ca.returncode == 1 and "CA file" in no_ca.stderr
