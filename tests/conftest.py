import pytest

from tests.support.servers import launch_server


@pytest.fixture(scope="session")
def live_server():
    """gunicorn with 2 workers on a fresh database of the selected backend."""
    server = launch_server(workers=2)
    yield server
    server.stop()
    server.db.drop()
