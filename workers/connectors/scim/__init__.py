"""The SCIM 2.0 target (RFC 7643, RFC 7644): Users, with the enterprise extension, and Groups.

`connector.py` holds `ScimConnector`, `settings.py` its settings, `paths.py` the attribute paths
operations name, and `diff.py` the bodies of its writes; the HTTP transport is
`common/peers/scim_transport.py`, shared with the SCIM source, behind `workers/connectors/http.py`,
shared with the REST target.
"""
