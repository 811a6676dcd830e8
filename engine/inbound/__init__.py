"""The SCIM 2.0 protocol of the inbound service (RFC 7643, RFC 7644) as pure functions over JSON values:
errors, filters, PATCH and projection. The HTTP service and the mirror build on these."""
