"""The REST target: an in-house web service that speaks neither SCIM nor LDAP, described in YAML.

`settings.py` reads the description (per object type, each action as a method, a URL template and a
body template), `templates.py` renders those templates, `jsonpath.py` reads values out of answers,
`listing.py` pages through a listing, `connector.py` holds `RestConnector` and `check.py` what
`roster validate` finds wrong without a connection. Requests go through `workers/connectors/http.py`,
shared with the SCIM target.
"""
