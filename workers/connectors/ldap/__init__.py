"""The LDAP target: its settings, the operation plans, the connection pool, group members, the connector."""
