# trio-chat-server in a container (docs/deploy.md). Build and run:
#   docker build -t trio-chat .
#   docker run --rm -p 12345-12347:12345-12347 \
#     -v "$PWD/configfile:/etc/trio-chat/configfile:ro" trio-chat
# Options go after the image name, replacing CMD's: e.g.
#   docker run ... trio-chat --host 0.0.0.0 --state-dir /var/lib/trio-chat \
#     --web 0.0.0.0:8080 --metrics 0.0.0.0:9108

# A slim Debian with one pinned Python (the project supports 3.10-3.13).
FROM python:3.12.8-slim-bookworm AS build

# The project and its extras, built in a virtual environment that the final
# image copies whole: no compiler, pip cache or source tree is left in it.
WORKDIR /src
COPY pyproject.toml README.md LICENSE LICENSE.MIT LICENSE.APACHE2 MANIFEST.in ./
COPY trio_chat ./trio_chat
RUN python -m venv /opt/trio-chat \
    && /opt/trio-chat/bin/pip install --no-cache-dir --disable-pip-version-check \
        ".[web,irc,cluster,metrics]"

FROM python:3.12.8-slim-bookworm

# The server's stdout is its chat log (contract lines): written at once.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/trio-chat/bin:$PATH

# A user of its own, no login, no home: the server needs no privilege (its
# ports are above 1024) and writes only where it is told (--state-dir).
RUN groupadd --system --gid 10001 trio-chat \
    && useradd --system --uid 10001 --gid trio-chat --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin trio-chat \
    && mkdir -p /etc/trio-chat /var/lib/trio-chat \
    && chown trio-chat:trio-chat /var/lib/trio-chat

COPY --from=build /opt/trio-chat /opt/trio-chat
# The example config (the repository's): mount your own over it.
COPY configfile /etc/trio-chat/configfile

USER 10001:10001
WORKDIR /var/lib/trio-chat
VOLUME ["/var/lib/trio-chat"]

# The example config's channels; the web page, IRC and metrics ports when
# asked for with --web, --irc and --metrics as in the comment at the top.
EXPOSE 12345 12346 12347 8080 6667 9108

# Healthy while the first channel of the config accepts connections (a
# connection closed before its hello is not logged). Python, not curl: the
# slim image has none. Assumes --host 0.0.0.0 or 127.0.0.1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import socket; port = next(int(line.split()[2]) for line in open('/etc/trio-chat/configfile') if line.split()[:1] == ['channel']); socket.create_connection(('127.0.0.1', port), 3).close()"]

# SIGTERM (docker stop) shuts the server down cleanly; stdin is not a console
# in a container (run with -i to type console commands).
ENTRYPOINT ["trio-chat-server", "/etc/trio-chat/configfile"]
CMD ["--host", "0.0.0.0", "--state-dir", "/var/lib/trio-chat"]
