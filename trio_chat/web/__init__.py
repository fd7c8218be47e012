"""The browser client: a page and a WebSocket endpoint served by the server.

A web session is another kind of connection: the page speaks the same frame
protocol as the terminal client, inside WebSocket binary messages, and the
server runs it through the same ``Session`` as a TCP connection, so every rule,
limit and check applies unchanged. Imported only with ``--web``.
"""
