"""The console: server-rendered pages for the identity team at `/ui`, on the admin API's listener.

Built only on `engine.api.admin.Admin`, what the JSON API answers from, so the pages and the API cannot
disagree. Its own sessions (`sessions`), sign-in (`signin`) and pages (`pages`); `app.console_app`
composes them as a sub-application that `engine.api.app` mounts.
"""
