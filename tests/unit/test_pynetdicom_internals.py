"""The pynetdicom internals the embedded PACS relies on (pyproject pins pynetdicom 3.0.x):
if an upgrade changes one of them, this fails before the server misbehaves."""

from __future__ import annotations

import inspect
import socketserver

from pynetdicom import AE, transport


def test_threaded_server_dispatches_through_process_request_thread() -> None:
    # pacs/lean.py overrides it to serve a connection on the lean path or hand it on.
    # Each connection's thread runs process_request_thread(request, client_address), which
    # finishes the request (pynetdicom's RequestHandler associates) unless we took it.
    server = transport.ThreadedAssociationServer
    assert issubclass(server, socketserver.ThreadingMixIn)
    params = list(inspect.signature(server.process_request_thread).parameters)
    assert params == ["self", "request", "client_address"]
    assert "self.finish_request(request, client_address)" in inspect.getsource(
        server.process_request_thread
    )


def test_ae_keeps_its_servers_and_counts_active_associations() -> None:
    # PacsServer appends its dispatch server to AE._servers (AE.shutdown stops them) and
    # adds lean associations to active_associations (the limit and shutdown see them).
    ae = AE()
    assert ae._servers == []
    assert isinstance(inspect.getattr_static(AE, "active_associations"), property)
    assert "_servers" in inspect.getsource(AE.shutdown)


def test_request_handler_deep_copies_the_contexts() -> None:
    # Why pacs/server._SharedContexts overrides __deepcopy__: pynetdicom copies the acceptor's
    # supported contexts for every association it accepts.
    source = inspect.getsource(transport.RequestHandler)
    assert "deepcopy" in source


def test_dul_socket_reads_through_recv() -> None:
    # pacs/server.handle_conn_open replaces AssociationSocket.recv with a capped, timed one.
    assert "def recv(" in inspect.getsource(transport.AssociationSocket)
    from pynetdicom import dul

    assert ".recv(" in inspect.getsource(dul.DULServiceProvider)
