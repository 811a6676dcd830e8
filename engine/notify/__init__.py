"""Notifications: the events a person must act on, sent by webhook and by mail (issue 24)."""
