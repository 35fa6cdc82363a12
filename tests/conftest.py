"""Suite-wide fixtures. Parts of the suite register their own in their packages."""

pytest_plugins = ["tests.support.server_proc", "tests.netlab.fixtures"]
