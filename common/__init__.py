"""The kernel that the engine, the workers and the queues share: the error tree (`errors`), reading
and checking configuration (`config/`), process plumbing (`process/`: signals, the status server,
build info) and the clients of peers that a source and a connector both talk to (`peers/`: HTTP and
SCIM transport and auth, the LDAP link and names, SQL bulk writes). It imports nothing else of Roster.
"""
