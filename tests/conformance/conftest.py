"""The conformance kit's pytest plugin, for the built-in connectors' conformance tests."""

pytest_plugins = ["roster.testing.plugin"]
