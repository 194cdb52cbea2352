import os
import socket

import pytest

from aistudio.errors import UserError
from aistudio.team_stack.processes import HOST, listeners, require_free


@pytest.fixture
def listening_port():
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()
        yield server.getsockname()[1]


def test_listeners_names_this_process_for_a_socket_it_listens_on(listening_port: int) -> None:
    assert os.getpid() in [pid for pid, _ in listeners(listening_port)]


def test_a_port_in_use_is_refused_naming_the_process_that_holds_it(listening_port: int) -> None:
    expected = rf"port {HOST}:{listening_port} is already in use \(listening: pid {os.getpid()} "
    with pytest.raises(UserError, match=expected):
        require_free(listening_port, "mlflow")


def test_a_free_port_passes_and_has_no_listeners() -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    assert listeners(port) == []
    require_free(port, "mlflow")
