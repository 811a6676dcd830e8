"""The conformance kit of Roster (roster.testing) as a pytest plugin."""

pytest_plugins = ["roster.testing.plugin"]
