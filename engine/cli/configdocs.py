"""docs/configuration.md, generated: every key of a job/targets file, with its type, default and example.

Which keys each section has, and which are required, comes from the parsers themselves: a sample file
that visits every section is parsed with `recording_keys`, which collects what each `check_keys` call
allows. Defaults come from the settings' dataclasses where a key is a field of one. Only the words (a
type, an example, what the key does) are written here, in `KEYS`; a key the code has and `KEYS` does
not describe (or the other way round) stops the generation, so the page cannot fall behind the code.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import yaml

from common.config.validation import recording_keys
from common.peers.http_settings import HttpSettings
from common.peers.ldap_link import LinkSettings
from engine.config import EngineConfig, parse_engine_config
from engine.core.policies import DeletionGuard, MassChangeGuard, QuarantineSettings
from engine.core.reconcile_policy import ReconcileSettings
from engine.core.scoping import OPERATORS
from engine.pipeline.deadline import DeadlineSettings
from engine.pipeline.fleet import FleetSettings
from engine.pipeline.publisher import PublishSettings
from engine.sources.file import FileSourceSettings
from engine.sources.ldap import LdapSourceSettings
from engine.sources.scim import ScimSourceSettings
from engine.sources.sql import SqlSourceSettings
from workers.config import COMMON_KEYS, parse_targets
from workers.connectors.scim.settings import ScimSettings
from workers.connectors.sql.settings import SqlSettings
from workers.presence import PresenceSettings, parse_presence
from workers.retry import RetryPolicy
from workers.worker import TargetRuntime

SAMPLE = """
engine:
  state: .roster/state.db
  quarantine: {failure_share: 0.5}
  deadline: {base_s: 360}
  api_accounts: [{name: oncall, token: 0123456789abcdef0123, roles: [viewer, operator]}]
  console:
    idle_timeout_minutes: 15
    oidc:
      issuer: https://login.example.com
      client_id: roster-console
      client_secret: 0123456789abcdef0123
      redirect_url: https://roster.example.com/ui/auth/callback
      roles: {identity-team: [viewer, operator, approver]}
jobs:
  - name: people
    source: {type: csv, path: people.csv, id_column: employee_id}
    target: app
    schedule: {interval: 1h}
    scoping: [{clauses: [{attribute: department, operator: IS NOT NULL}]}]
    deletion_guard: {count: 500}
    mass_change_guard: {count: 500}
    reconcile: {orphan: report, schedule: {interval: 1d}}
    delete_after_days: 30
    dates: {starts_on: start_date, ends_on: end_date, time_zone: Europe/Berlin, prehire_days: 7}
    rehire: {key: userName}
    mappings:
      - {target: userName, source: email, match: true}
      - {target: enterprise.manager.value, reference: {source: manager, job: people}}
  - name: teams
    source: {type: jsonl, path: teams.jsonl, id_column: id}
    target: app
    object_type: group
    members: {source: members, job: people}
    mappings:
      - target: displayName
        source: name
        match: true
        on_collision: {next: ['Join("", [name], " (", [id], ")")']}
  - name: departments
    target: app
    object_type: group
    members: {job: people, group_per: department, rule: '[country] = "DE"'}
    mappings: [{target: displayName, expression: 'Join(" ", "Dept", [value])', match: true}]
  - name: directory-people
    source:
      type: ldap
      url: ldap://ldap.example.org
      bind_dn: cn=reader,dc=example,dc=org
      bind_password: secret
      base_dn: ou=people,dc=example,dc=org
    target: app
    mappings: [{target: userName, source: uid, match: true}]
  - name: idp-people
    source: {type: scim, url: https://idp.example.org/scim/v2, auth: {type: bearer, token: t}}
    target: app
    mappings: [{target: userName, source: userName, match: true}]
  - name: hr-people
    source: {type: sql, url: sqlite:///hr.db, table: people, id_column: employee_id,
             watermark_column: updated_at}
    target: app
    mappings: [{target: userName, source: email, match: true}]
  - name: pushed-people
    source: {type: scim_inbound, resource_type: User}
    target: app
    mappings: [{target: userName, source: userName, match: true}]
inbound:
  listen: 0.0.0.0:8444
  base_path: /scim/v2
  tokens: [{name: entra, token: 0123456789abcdef0123, jobs: [pushed-people]}]
  clients: [{client_id: okta, client_secret: 0123456789abcdef0123, jobs: [pushed-people]}]
  token_lifetime_s: 3600
  respond: stored
  apply_timeout_s: 30
  max_body_bytes: 1000000
  tls: {cert_file: inbound.pem, key_file: inbound-key.pem}
notifications:
  webhooks:
    - name: iam-hook
      url: https://hooks.example.org/roster
      secret: 0123456789abcdef0123
      events: [deletions_held, job_quarantined]
      jobs: [people]
      timeout_s: 10
  smtp:
    host: mail.example.org
    port: 587
    from: roster@example.org
    starttls: true
    tls: false
    username: roster
    password: 0123456789abcdef0123
    timeout_s: 30
  mail:
    - {name: iam, to: [iam@example.org], events: [deletions_held], jobs: [people]}
    - name: managers
      events: [account_created]
      to_manager: {reference: enterprise.manager.value, address: emails.work}
  retry: {attempts: 6, first_delay_s: 5, multiplier: 4}
targets:
  - name: app
    type: scim
    url: https://app.example.org/scim/v2
    matching: {user: [userName]}
    retry: {tiers: 5}
    auth: {type: oauth2, token_url: https://idp.example.org/token, client_id: roster, client_secret: s}
  - {name: basic-app, type: scim, url: https://b.example.org/scim/v2, auth: {type: basic, username: u,
     password: p}}
  - {name: db, type: sql, url: sqlite:///accounts.db, table: accounts, key_column: id, on_disable: delete}
  - name: directory
    type: ldap
    url: ldap://ldap.example.org
    bind_dn: cn=admin,dc=example,dc=org
    bind_password: secret
    base_dn: dc=example,dc=org
    users: {dn: "uid={uid},ou=people,dc=example,dc=org", disable: {move_to: "ou=gone,dc=example,dc=org"}}
    groups: {dn: "cn={cn},ou=groups,dc=example,dc=org"}
  - name: ad
    type: ldap
    flavor: active_directory
    url: ldaps://dc1.example.org
    bind_dn: CN=svc-roster,OU=Service Accounts,DC=example,DC=org
    bind_password: secret
    base_dn: DC=example,DC=org
    users: {dn: "CN={cn},OU=People,DC=example,DC=org", password: {generate: true}, must_change_password: true}
    groups: {dn: "CN={cn},OU=Groups,DC=example,DC=org", group_type: security, group_scope: global}
  - name: people-api
    type: rest
    url: https://people.example.org/api/v2
    auth: {type: api_key, header: X-Api-Key, key: k}
    error_path: error.message
    users:
      id_path: id
      attributes: {email: contact.email}
      read: {url: "/users/{target_id}", path: data}
      match: [{url: "/users?login={login}", path: items}]
      create: {method: POST, url: /users, body: {login: "{login}"}, path: data}
      update: {method: PATCH, url: "/users/{target_id}"}
      disable: {method: POST, url: "/users/{target_id}/disable"}
      delete: {method: DELETE, url: "/users/{target_id}"}
      list:
        url: /users
        path: items
        paging: {style: cursor, size: 100, size_param: limit, offset_param: offset, page_param: page,
                 first_page: 1, cursor_param: cursor, cursor_path: next_cursor}
    groups:
      match: [{url: "/groups?external_id={source_id}", path: items}]
      create: {url: /groups, body: {name: "{name}"}}
      members:
        add: {method: PUT, url: "/groups/{target_id}/members/{member_id}"}
        remove: {method: DELETE, url: "/groups/{target_id}/members/{member_id}"}
  - {name: nowhere, type: noop}
"""
"""A file that visits every section the parsers know (each source, target and auth type)."""

_Key = tuple[str, str, str] | tuple[str, str, str, str]
"""(type, example, what it does) or (type, example, what it does, default) when no dataclass says it."""

_HTTP: dict[str, _Key] = {
    "url": ("URL", "https://app.example.org/scim/v2", "The service's base URL (http:// or https://)."),
    "auth": ("mapping", "{type: bearer, token: ${APP_TOKEN}}", "How to authenticate: see `auth`.", "none"),
    "timeout_s": ("seconds", "30", "Per request."),
    "connect_timeout_s": ("seconds", "10", "To open a connection."),
    "max_pause_s": ("seconds", "300", "The longest wait Roster accepts from a `Retry-After`."),
    "verify_tls": ("boolean", "true", "Verify the server's certificate (never turn off in production)."),
    "ca_file": ("path", "certs/ca.pem", "CA bundle to verify the server with, relative to the file."),
    "proxy": (
        "URL",
        "http://proxy.example.org:3128",
        "HTTP proxy for this service; for a target, else the top-level `proxy:`, else HTTPS_PROXY / "
        "HTTP_PROXY (with NO_PROXY) from the environment when `trust_env`.",
    ),
    "trust_env": ("boolean", "true", "Read HTTP(S)_PROXY and NO_PROXY from the environment."),
}
_LINK: dict[str, _Key] = {
    "url": ("URL", "ldaps://ldap.example.org", "The directory: ldap:// or ldaps://."),
    "start_tls": ("boolean", "false", "Upgrade an ldap:// connection with StartTLS."),
    "ca_file": ("path", "certs/ldap-ca.pem", "CA bundle to verify the server with, relative to the file."),
    "verify_tls": ("boolean", "true", "Verify the server's certificate (never turn off in production)."),
    "bind_dn": ("DN", "cn=roster,dc=example,dc=org", "Who Roster binds as."),
    "bind_password": ("secret", "${LDAP_PASSWORD}", "Its password; write it as an environment variable."),
    "timeout_s": ("seconds", "30", "Per LDAP call."),
    "connect_timeout_s": ("seconds", "10", "To open a connection."),
}
_AUTH_TYPE: _Key = ("string", "bearer", "none, bearer, basic, oauth2 or api_key.")

_REST_CALL: dict[str, _Key] = {
    "method": ("string", "GET", "The HTTP method.", "per call: GET, POST, PATCH, DELETE"),
    "url": ("URL template", '"/users/{target_id}"', "Below `url`; `{name}` takes a value, percent-encoded."),
    "path": (
        "JSON path",
        "data",
        "Where the answer holds the object (or the list of objects).",
        "the answer",
    ),
}
_REST_WRITE: dict[str, _Key] = {
    **_REST_CALL,
    "body": (
        "JSON template",
        '{login: "{login}"}',
        'The body; `"{name}"` takes a value with its type (`"{enabled}"`: false for an account to be '
        "left disabled, else true).",
        "none",
    ),
}
_REST_OBJECT: dict[str, _Key] = {
    "id_path": ("JSON path", "id", "Where an object holds its id."),
    "attributes": ("mapping", "{email: contact.email}", "Where an object holds an attribute.", "its name"),
    "read": ("call", '{url: "/users/{target_id}", path: data}', "Reads one object by id.", "none"),
    "match": ("list of calls", '[{url: "/users?login={login}", path: items}]', "Searches, in order.", "none"),
    "create": ("call", "{url: /users, body: {...}}", "Creates an object.", "none"),
    "update": ("call", '{method: PATCH, url: "/users/{target_id}"}', "Updates an object.", "none"),
    "disable": (
        "call",
        '{url: "/users/{target_id}/disable"}',
        "Disables an object; follows a create or update that leaves it disabled, unless its body has "
        "`{enabled}`.",
        "none",
    ),
    "delete": ("call", '{url: "/users/{target_id}"}', "Deletes an object (404 is done).", "none"),
    "list": (
        "call",
        "{url: /users, path: items}",
        "Lists every object, for linking and reconciling.",
        "none",
    ),
}

_SCHEDULE: dict[str, _Key] = {
    "interval": ("duration", "1h", "Every so long after the previous cycle ended (s, m, h, d).", "none"),
    "interval_s": ("seconds", "3600", "The same, in seconds.", "none"),
    "cron": ("cron", "0 6 * * 1-5", "A cron expression, in UTC.", "none"),
}

KEYS: dict[str, dict[str, _Key]] = {
    "(top level)": {
        "broker": (
            "string",
            "amqp://roster:PASSWORD@rabbitmq:5672/roster",
            "The RabbitMQ URL of `roster engine` and `roster worker`, when neither `--broker` nor "
            "`ROSTER_BROKER` gives one; there is no default. `roster run` uses none.",
            "none",
        ),
        "engine": ("mapping", "{state: .roster/state.db}", "The engine's settings: see `engine`.", "none"),
        "jobs": ("list", "[{name: people, ...}]", "What to provision: see `jobs[]`.", "none"),
        "inbound": (
            "mapping",
            "{listen: 0.0.0.0:8444, tokens: [...]}",
            "The inbound SCIM service that identity providers push to: see `inbound`.",
            "none",
        ),
        "notifications": (
            "mapping",
            "{webhooks: [...], smtp: {...}, mail: [...]}",
            "Where the events a person must act on are sent (webhooks, mail): see `notifications`.",
            "none",
        ),
        "targets": ("list", "[{name: app, type: scim, ...}]", "Where to provision: see `targets[]`.", "none"),
        "proxy": (
            "URL",
            "http://proxy.example.org:3128",
            "The worker's outbound HTTP proxy: every HTTP target (scim, rest) uses it unless it sets its "
            "own `proxy:` or `NO_PROXY` lists its host; without it, HTTPS_PROXY / HTTP_PROXY / NO_PROXY "
            "from the environment apply.",
            "none",
        ),
        "workers": (
            "mapping",
            "{presence: {interval_s: 5}}",
            "The workers' own settings (not per target): see `workers`.",
            "none",
        ),
    },
    "engine": {
        "state": (
            "path or URL",
            "postgresql://roster@db/roster",
            "The state store: a SQLite file (relative to this file) or a PostgreSQL URL; `--state` wins.",
            ".roster/state.db",
        ),
        "batch_size": ("integer", "500", "Operations per message to the workers."),
        "linger_ms": ("integer", "5", "How long a partial batch waits for more before it is sent."),
        "high_water": ("integer", "64", "Messages a target's queue may hold before publishing waits."),
        "quarantine": ("mapping", "{failure_share: 0.4}", "When a job is quarantined: see below.", "on"),
        "log_retention_days": ("number", "30", "How long the provisioning log keeps a record."),
        "deadline": ("mapping", "{base_s: 360}", "How long a cycle waits for results: see below.", "on"),
        "presence": (
            "mapping",
            "{missed: 3}",
            "The engine's heartbeat, and when a silent worker counts as gone: see below.",
            "on",
        ),
        "console": (
            "mapping",
            "{oidc: {issuer: ...}}",
            "The console at /ui/ on the API's listener: its sign-in and sessions, see `engine.console`.",
            "on, loopback only",
        ),
        "api_accounts": (
            "list",
            "[{name: oncall, ...}]",
            "Named service accounts of the admin API, each with its own token and roles: see "
            "`engine.api_accounts[]`. The engine's own token (ROSTER_API_TOKEN) is the account `admin`, "
            "with every role.",
            "none",
        ),
    },
    "engine.console": {
        "idle_timeout_minutes": (
            "number",
            "15",
            "A console session unused this long ends (and any session twelve hours after sign-in).",
        ),
        "oidc": (
            "mapping",
            "{issuer: https://login.example.com, ...}",
            "Sign-in to the console through OpenID Connect: see below. Without it the console answers on "
            "a loopback address only, to the holder of an API token.",
            "none",
        ),
    },
    "engine.console.oidc": {
        "issuer": (
            "url",
            "https://login.example.com/realms/staff",
            "The provider, exactly as its ID tokens name it.",
            "none",
        ),
        "client_id": ("string", "roster-console", "The console's client at the provider.", "none"),
        "client_secret": ("string", "${ROSTER_OIDC_SECRET}", "Its secret (a confidential client).", "none"),
        "client_secret_file": (
            "path",
            "/run/secrets/oidc",
            "Or: a file whose first line is the secret.",
            "none",
        ),
        "redirect_url": (
            "url",
            "https://roster.example.com/ui/auth/callback",
            "This engine's /ui/auth/callback as people's browsers reach it, registered at the provider.",
            "none",
        ),
        "scopes": ("list", "[openid, profile, email]", "The scopes asked for; openid is required."),
        "roles_claim": ("string", "groups", "The ID token claim whose values give roles."),
        "name_claim": (
            "string",
            "name",
            "The claim that names a person (else preferred_username, else sub).",
        ),
        "roles": (
            "mapping",
            "{identity-team: [viewer, operator, approver]}",
            "A value of the roles claim -> the roles it gives; a person with none is not signed in.",
            "none",
        ),
        "ca_file": (
            "path",
            "/etc/ssl/private-ca.pem",
            "The CA that signs a private provider's certificate.",
            "system CAs",
        ),
    },
    "engine.api_accounts[]": {
        "name": ("string", "oncall", "The account's name, as the audit trail records it.", "none"),
        "token": ("string", "${ONCALL_ROSTER_TOKEN}", "Its bearer token (16 characters at least).", "none"),
        "token_file": ("path", "/run/secrets/oncall", "Or: a file whose first line is the token.", "none"),
        "roles": (
            "list",
            "[viewer, operator]",
            "viewer: read; operator: trigger, pause, resume, restart, reset, reconcile, provision; "
            "approver: approve, reject.",
            "none",
        ),
    },
    "engine.presence": {
        "interval_s": ("seconds", "5", "How often the engine announces itself to the workers."),
        "missed": (
            "integer",
            "3",
            "Heartbeats a worker may miss (by its own interval) before `roster agents` shows it gone.",
        ),
        "forget_after_s": ("seconds", "3600", "How long a gone worker stays listed."),
    },
    "workers": {
        "presence": ("mapping", "{interval_s: 5}", "The workers' heartbeat: see below.", "on"),
    },
    "workers.presence": {
        "interval_s": (
            "seconds",
            "5",
            "How often each worker announces itself (id, versions, targets, in-flight counts, last error).",
        ),
    },
    "engine.quarantine": {
        "failure_share": ("number", "0.4", "Share of failed operations in the window that quarantines."),
        "min_operations": ("integer", "50", "Operations the window needs before it judges."),
        "window": ("integer", "200", "The last this many operations are judged."),
        "credential_calls": ("integer", "10", "Refused credentials this many times in a row quarantine."),
        "max_backoff_s": ("seconds", "21600", "The longest wait between cycles of a quarantined job."),
    },
    "engine.deadline": {
        "base_s": ("seconds", "360", "A cycle gives up on results it has not heard of for this long."),
        "per_batch_s": ("seconds", "2", "Added per batch the cycle still awaits."),
    },
    "jobs[]": {
        "name": ("string", "people", "The job's name, unique in the file."),
        "source": ("mapping", "{type: csv, path: people.csv, id_column: id}", "Where objects come from."),
        "target": ("string", "app", "The name of a target in `targets:`."),
        "object_type": ("string", "user", "user or group.", "user"),
        "mappings": ("list", "[{target: userName, source: email, match: true}]", "Attributes to send."),
        "deprovision": (
            "string",
            "disable",
            "What happens to an object that leaves the source: disable, delete or none.",
            "disable (delete for groups)",
        ),
        "schedule": (
            "mapping",
            "{interval: 1h}",
            "When `--serve` runs the job; once at start if absent.",
            "none",
        ),
        "scoping": ("list", "[{clauses: [...]}]", "Which objects are in scope; all if absent.", "all"),
        "members": (
            "mapping",
            "{source: members, job: people}",
            "Group jobs: where members come from (a source attribute, or a rule over the people).",
            "none",
        ),
        "deletion_guard": (
            "mapping or false",
            "{count: 500, percent: 20}",
            "Hold deprovisions for approval past these sizes; false turns it off.",
            "on",
        ),
        "mass_change_guard": (
            "mapping or false",
            "{count: 500, percent: 20}",
            "Hold for approval the updates that change (or empty) one attribute on more objects than these"
            " sizes (in a group job, those that remove members past these sizes of the memberships held);"
            " false turns it off.",
            "on",
        ),
        "source_min_objects": ("integer", "100", "A full read with fewer objects deprovisions nothing.", "0"),
        "source_max_drop_percent": (
            "number",
            "10",
            "A full read that shrank by more than this holds its deprovisions for approval.",
            "10",
        ),
        "listing_min_creates": (
            "integer",
            "50",
            "A cycle with this many creates of objects not linked yet lists the target once and links "
            "them by the listing instead of searching before each create; 0 never lists.",
            "50",
        ),
        "listing_timeout_s": (
            "seconds",
            "300",
            "How long a cycle waits for that listing before it sends its creates without it.",
            "300",
        ),
        "reconcile": (
            "mapping",
            "{orphan: report, schedule: {interval: 1d}}",
            "What `roster reconcile` does per situation it finds in the target, and when it runs alone.",
            "correct drift, recreate missing, link unlinked, report orphans; only when asked",
        ),
        "delete_after_days": (
            "number",
            "30",
            "A leaver's grace: who left the source (or the scope) is disabled at once and deleted once "
            "disabled this long (the deletion guard still applies; the scheduler runs a cycle on the day, "
            "and at least daily); "
            "back before, they are enabled again with the same account. Needs `deprovision: disable`.",
            "none (kept disabled)",
        ),
        "rehire": (
            "mapping",
            "{key: employeeNumber, keep: [userName]}",
            "A user job's key that survives leaving, by which a person who comes back after their "
            "account was deleted gets its uid back; see `jobs[].rehire`.",
            "none",
        ),
        "dates": (
            "mapping",
            "{starts_on: start_date, prehire_days: 7}",
            "A user job's start and end dates, read from the source attributes it names; see `jobs[].dates`.",
            "none",
        ),
    },
    "jobs[].rehire": {
        "key": (
            "string",
            "employeeNumber",
            "A target attribute the job maps whose value survives a person's leaving. A create whose key "
            "matches an account deleted earlier is a rehire: it gets that account's kept values back, "
            "and the person's history (console, `/people`) shows the gap.",
        ),
        "keep": (
            "list",
            "[userName]",
            "Target attributes, mapped `apply: on_create`, whose values a rehire gets back as the deleted "
            "account was created with them (its uid, so its DN). A value the target chose among "
            "candidates (SelectUniqueValue) is not known to the engine and not kept; an account applied "
            "before `rehire` was set is known by its key from its next create or update.",
            "none",
        ),
    },
    "jobs[].dates": {
        "starts_on": (
            "string",
            "start_date",
            "The source attribute holding the first day (2027-03-01, or a moment such as "
            "2027-03-01T09:00). Before it the account is disabled; at its midnight in `time_zone` it is "
            "enabled. Empty: no start.",
            "none",
        ),
        "ends_on": (
            "string",
            "end_date",
            "The source attribute holding the day the account ends: from its midnight the person is "
            "deprovisioned as a leaver (disabled, deleted after `delete_after_days`), though the row is "
            "still in the export. Give the day after the last working day. Needs a `deprovision` other "
            "than none.",
            "none",
        ),
        "time_zone": (
            "string",
            "Europe/Berlin",
            "The IANA time zone in which a day, or a moment without an offset, is read.",
            "UTC",
        ),
        "prehire_days": (
            "number",
            "7",
            "Days before the start date when the account is created, disabled (needs `starts_on`). "
            "The scheduler runs the job at each such moment, not only at the next change of data.",
            "0",
        ),
    },
    "jobs[].source (type: csv or jsonl)": {
        "type": ("string", "csv", "csv or jsonl; from the file's extension if absent.", "by extension"),
        "path": ("path", "people.csv", "The file, relative to the job file."),
        "id_column": ("string", "employee_id", "The column holding each object's source id."),
        "encoding": ("string", "utf-8", "The file's encoding (a BOM is skipped)."),
        "delimiter": ("string", ";", "CSV only: the field separator."),
        "empty_as_null": (
            "boolean",
            "true",
            "CSV only: an empty cell is null (a mapping's default applies).",
        ),
    },
    "jobs[].source (type: ldap)": {
        **_LINK,
        "type": ("string", "ldap", "An LDAP directory."),
        "base_dn": ("DN", "ou=people,dc=example,dc=org", "Where the search starts."),
        "filter": ("LDAP filter", "(objectClass=inetOrgPerson)", "Which entries are read."),
        "scope": ("string", "subtree", "subtree or one (level)."),
        "attributes": (
            "list",
            "[uid, givenName, sn, mail]",
            "Attributes read; all user attributes if empty.",
        ),
        "id_attribute": ("string", "entryUUID", "Each entry's source id (`dn` for the DN)."),
        "page_size": ("integer", "500", "Entries per paged search result."),
        "multi_valued": ("list", "[member, memberOf]", "Attributes always read as lists."),
        "incremental": ("boolean", "true", "Read only what changed (modifyTimestamp) between full imports."),
        "full_import_every": ("duration", "1d", "How often an incremental job reads in full.", "1d"),
        "member_base": (
            "DN",
            "ou=people,dc=example,dc=org",
            "Groups: member DNs under it become member ids.",
        ),
        "member_id_attribute": ("string", "entryUUID", "Groups: the attribute read as a member's id."),
        "flavor": (
            "string",
            "active_directory",
            "ldap, or active_directory: objectGUID ids, AD values as text, `enabled`, ranged members, "
            "incremental by uSNChanged, deletions seen through tombstones.",
        ),
        "range_size": (
            "integer",
            "1500",
            "Active Directory: values of a multi-valued attribute (member) asked for per range.",
        ),
    },
    "jobs[].source (type: scim)": {
        **_HTTP,
        "type": ("string", "scim", "A SCIM 2.0 service; `object_type` picks Users or Groups."),
        "filter": ("SCIM filter", "active eq true", "Which resources are read; all if absent."),
        "attributes": ("list", "[userName, name, emails]", "SCIM attributes asked for; all if empty."),
        "id_attribute": ("string", "id", "The source id: a flattened name such as externalId."),
        "member_id_attribute": ("string", "id", "Groups: the users' attribute that is their source id."),
        "page_size": ("integer", "1000", "Resources asked for per page."),
        "retries": ("integer", "4", "Per request, after the first try."),
        "max_passes": ("integer", "3", "Passes over a listing that moves under the read before it fails."),
    },
    "jobs[].source (type: sql)": {
        "type": ("string", "sql", "A table, view or query of a SQL database."),
        "url": (
            "URL",
            "postgresql://reader@db.example.org/hr",
            "Any SQLAlchemy URL: postgresql://, mysql:// or mariadb:// (the `mysql` extra), "
            "sqlite:///file.db, or one naming its driver (a sync driver runs on a thread of its own).",
        ),
        "password": ("secret", "${HR_DB_PASSWORD}", "The database password, if not in the URL.", "none"),
        "table": ("string", "people", "The table or view read (or `query:`).", "none"),
        "schema": ("string", "hr", "The table's schema.", "the database's default"),
        "query": (
            "SQL",
            "SELECT * FROM people WHERE kind = 'staff'",
            "A SELECT read instead of a table (a colon before a name is a parameter: write `\\:`).",
            "none",
        ),
        "id_column": ("string", "employee_id", "The column holding each row's source id."),
        "columns": ("list", "[employee_id, given_name, email]", "Columns read; all of them if empty."),
        "watermark_column": (
            "string",
            "updated_at",
            "A timestamp or growing number: between full imports, read only rows where it is >= the "
            "highest value the last read met.",
        ),
        "watermark_overlap": (
            "duration or number",
            "5m",
            "Start each incremental read this much earlier (units for a number column), for rows "
            "committed late.",
            "0",
        ),
        "full_import_every": ("duration", "1d", "How often an incremental job reads in full.", "1d"),
        "connect_timeout_s": ("seconds", "10", "To open the connection."),
    },
    "jobs[].source (type: scim_inbound)": {
        "type": ("string", "scim_inbound", "What is pushed to the inbound SCIM service (see `inbound`)."),
        "resource_type": (
            "string",
            "User",
            "User or Group; by default the job's object_type's.",
            "the job's",
        ),
    },
    "inbound": {
        "listen": (
            "HOST:PORT",
            "0.0.0.0:8444",
            "Where the inbound SCIM service listens; no default port.",
            "none",
        ),
        "base_path": ("string", "/scim/v2", "The path the SCIM endpoints are under.", "/scim/v2"),
        "tokens": (
            "list",
            "[{name: entra, ...}]",
            "One bearer token per client: see `inbound.tokens[]` (this, or clients).",
            "none",
        ),
        "clients": (
            "list",
            "[{client_id: okta, ...}]",
            "OAuth 2.0 clients that get tokens at {base_path}/oauth/token: see `inbound.clients[]`.",
            "none",
        ),
        "token_lifetime_s": ("seconds", "3600", "How long a token issued to a client is good for.", "3600"),
        "respond": (
            "string",
            "applied",
            "stored: answer once the push is durable; applied: once the targets confirmed it.",
            "stored",
        ),
        "apply_timeout_s": (
            "seconds",
            "30",
            "With respond: applied, how long to wait for the targets.",
            "30",
        ),
        "max_body_bytes": ("integer", "1000000", "Larger request bodies are refused (413).", "1000000"),
        "tls": ("mapping", "{cert_file: c.pem, key_file: k.pem}", "Serve HTTPS: see `inbound.tls`.", "none"),
    },
    "inbound.clients[]": {
        "client_id": ("string", "okta", "The OAuth client's id (client credentials grant).", "none"),
        "client_secret": ("string", "${OKTA_SCIM_SECRET}", "Its secret (16 characters at least).", "none"),
        "client_secret_file": (
            "path",
            "/run/secrets/okta",
            "Or: a file whose first line is the secret.",
            "none",
        ),
        "jobs": ("list", "[people]", "The jobs the tokens issued to it may write.", "none"),
    },
    "inbound.tokens[]": {
        "name": ("string", "entra", "The client's name, for the logs.", "none"),
        "token": ("string", "${ENTRA_SCIM_TOKEN}", "The bearer token (16 characters at least).", "none"),
        "token_file": ("path", "/run/secrets/entra", "Or: a file whose first line is the token.", "none"),
        "jobs": (
            "list",
            "[people, teams]",
            "The jobs it may write: every job over a type it writes.",
            "none",
        ),
    },
    "notifications": {
        "webhooks": (
            "list",
            "[{name: iam-hook, url: ..., secret: ..., events: [...]}]",
            "Webhooks: see `notifications.webhooks[]`.",
            "none",
        ),
        "smtp": (
            "mapping",
            "{host: mail.example.org, port: 587, from: roster@example.org}",
            "The SMTP server mail goes by: see `notifications.smtp`.",
            "none",
        ),
        "mail": (
            "list",
            "[{name: iam, to: [iam@example.org], events: [...]}]",
            "Mail lists: see `notifications.mail[]`.",
            "none",
        ),
        "retry": (
            "mapping",
            "{attempts: 6, first_delay_s: 5, multiplier: 4}",
            "How a delivery that failed is tried again: see `notifications.retry`.",
            "see there",
        ),
    },
    "notifications.webhooks[]": {
        "name": (
            "string",
            "iam-hook",
            "The route's name, in the outbox and the logs (the URL never is).",
            "none",
        ),
        "events": (
            "list",
            "[deletions_held, job_quarantined, cycle_failed, worker_gone]",
            "The events it takes: deletions_held (deprovisions held by a guard), job_quarantined, "
            "cycle_failed (the first failed cycle after one that did not fail), worker_gone, "
            "account_created (a user job's create, not in its first load; at most 100 a job an hour).",
            "none",
        ),
        "jobs": (
            "list",
            "[people]",
            "Only these jobs' events (worker_gone is of no job, and always taken).",
            "every job's",
        ),
        "url": ("URL", "https://hooks.example.org/roster", "Where each event is POSTed as JSON.", "none"),
        "secret": (
            "secret",
            "${ROSTER_HOOK_SECRET}",
            "Keys the HMAC-SHA256 in `Roster-Signature: t=..,v1=..` (over `t.` and the body).",
            "none",
        ),
        "secret_file": ("path", "/run/secrets/hook", "Or: a file whose first line is the secret.", "none"),
        "timeout_s": ("number", "10", "How long a try waits for the answer.", "10"),
    },
    "notifications.mail[]": {
        "name": ("string", "iam", "The route's name, in the outbox and the logs.", "none"),
        "events": ("list", "[deletions_held]", "The events it takes, as a webhook's.", "none"),
        "jobs": ("list", "[people]", "Only these jobs' events.", "every job's"),
        "to": ("list", "[iam@example.org]", "The addresses each mail goes to (or `to_manager`).", "none"),
        "to_manager": (
            "mapping",
            "{reference: manager, address: email}",
            "With `events: [account_created]`: to the new account's manager: see "
            "`notifications.mail[].to_manager`.",
            "none",
        ),
    },
    "notifications.mail[].to_manager": {
        "reference": (
            "string",
            "manager",
            "The target attribute of the job's `reference:` mapping that names the manager.",
            "none",
        ),
        "address": (
            "string",
            "email",
            "The manager's target attribute, as last applied in the job the reference names, that holds "
            "their address (no mail, said in the log, where there is none).",
            "none",
        ),
    },
    "notifications.smtp": {
        "host": ("string", "mail.example.org", "The SMTP server.", "none"),
        "port": ("integer", "587", "Its port.", "none"),
        "from": ("string", "roster@example.org", "The sender address.", "none"),
        "starttls": ("boolean", "true", "Upgrade the connection with STARTTLS (port 587).", "false"),
        "tls": ("boolean", "false", "Implicit TLS (port 465).", "false"),
        "username": ("string", "roster", "Log in as (with `password`).", "none"),
        "password": ("secret", "${ROSTER_SMTP_PASSWORD}", "The login's password.", "none"),
        "password_file": (
            "path",
            "/run/secrets/smtp",
            "Or: a file whose first line is the password.",
            "none",
        ),
        "timeout_s": ("number", "30", "How long a send waits on the server.", "30"),
    },
    "notifications.retry": {
        "attempts": ("integer", "6", "Tries of a delivery before it is given up (recorded as failed).", "6"),
        "first_delay_s": ("number", "5", "The wait after the first failed try.", "5"),
        "multiplier": ("number", "4", "Each further wait is this many times the one before.", "4"),
    },
    "inbound.tls": {
        "cert_file": ("path", "/etc/roster/inbound.pem", "The certificate chain (PEM).", "none"),
        "key_file": ("path", "/etc/roster/inbound-key.pem", "Its private key (PEM).", "none"),
    },
    "jobs[].source.auth (type: bearer)": {
        "type": _AUTH_TYPE,
        "token": ("secret", "${IDP_TOKEN}", "The bearer token."),
    },
    "jobs[].schedule": _SCHEDULE,
    "jobs[].scoping[]": {
        "clauses": ("list", "[{attribute: department, operator: EQUALS, value: Sales}]", "ANDed clauses."),
    },
    "jobs[].scoping[].clauses[]": {
        "attribute": ("string", "department", "A source attribute."),
        "operator": ("string", "EQUALS", f"One of: {', '.join(OPERATORS)}."),
        "value": ("any", "Sales", "What the operator compares with.", "none"),
    },
    "jobs[].deletion_guard": {
        "count": ("integer", "500", "Hold when more deprovisions than this..."),
        "percent": ("number", "20", "...and more than this share of the job's objects."),
    },
    "jobs[].mass_change_guard": {
        "count": ("integer", "500", "Hold when an attribute changes on more objects than this..."),
        "percent": ("number", "20", "...and on more than this share of the job's objects."),
    },
    "jobs[].reconcile": {
        "drifted": ("string", "correct", "correct (send every mapped attribute again) or report.", "correct"),
        "missing": ("string", "recreate", "recreate (create it again) or report.", "recreate"),
        "orphan": (
            "string",
            "report",
            "report, disable or delete an object in the target that no source object accounts for; "
            "never after an incomplete read, and held by the deletion guard.",
            "report",
        ),
        "schedule": (
            "mapping",
            "{interval: 1d}",
            "Reconcile on this schedule (with --serve, or the engine).",
            "none",
        ),
        "ignore": ("list", "[lastLogin]", "Attributes not compared (password never is).", "none"),
        "timeout_s": ("seconds", "600", "How long to wait for the target's listing.", "600"),
    },
    "jobs[].reconcile.schedule": {
        "interval": ("duration", "1d", "Every so long after the previous reconciliation ended.", "none"),
        **{key: words for key, words in _SCHEDULE.items() if key != "interval"},
    },
    "jobs[].mappings[].reference": {
        "source": ("string", "manager", "The source attribute holding source ids (one, or a list)."),
        "job": ("string", "people", "The job of this target whose objects they are (this one, or another)."),
    },
    "jobs[].members": {
        "source": ("string", "members", "The group's source attribute listing its members' ids."),
        "job": ("string", "people", "The user job of this target whose objects are the members."),
        "groups": (
            "list",
            "[teams]",
            "Group jobs of this target whose groups are members too (nested groups), this one included; "
            "an id is looked up in `job` first, then in these in order, and the first that knows it wins.",
            "none",
        ),
        "separator": ("string", ";", "Separates the ids in a text value.", ";"),
        "rule": (
            "expression",
            '[department] = "Sales" and [country] = "DE"',
            "Groups by rule: the people of `job` (in its scope) it holds true for are the members; "
            "`and`, `or` and parentheses join comparisons. With `rule` or `group_per` the job has no "
            "`source:` (it reads `job`'s) and no `source`, `groups` or `separator` here.",
            "none",
        ),
        "group_per": (
            "string",
            "department",
            "Groups by rule: a group per distinct value of this attribute of the people (each value of "
            "a list), source id and `[value]` the value; without it, one group whose source id and "
            "`[value]` are the job's name.",
            "none",
        ),
    },
    "jobs[].mappings[]": {
        "target": ("string", "userName", "The target attribute (a SCIM path, a column, an LDAP attribute)."),
        "source": ("string", "email", "Copy this source attribute.", "none"),
        "constant": ("any", "Example Corp", "Send this value.", "none"),
        "expression": (
            "expression",
            'Join(" ", [given_name], [family_name])',
            "Compute it: see functions.md.",
            "none",
        ),
        "reference": (
            "mapping",
            "{source: manager, job: people}",
            "Send the target ids of the objects whose source ids this attribute holds (a manager).",
            "none",
        ),
        "apply": ("string", "on_create", "always, or on_create only.", "always"),
        "default": ("any", "Unassigned", "Sent when the source value is null.", "none"),
        "match": ("boolean or integer", "true", "Match target objects on it (1 first, then 2...).", "false"),
        "on_collision": (
            "string or mapping",
            "{next: [...]}",
            "When another object holds the value (two groups named alike): fail (that object is not "
            "sent, and says why), or try the further candidates of `next`.",
            "fail",
        ),
    },
    "jobs[].mappings[].on_collision": {
        "next": (
            "list of expressions",
            """['Join("", [name], " (", [group_id], ")")']""",
            "Further values, tried in turn: the worker writes the first that no other object holds, "
            "and an object keeps the one it has (SelectUniqueValue's candidates).",
        ),
    },
    "targets[] (every type)": {
        "name": ("string", "app", "The target's name, which jobs refer to."),
        "type": ("string", "scim", "scim, sql, ldap, rest or noop."),
        "max_inflight": ("integer", "4", "Batches a worker applies at once to this target."),
        "retry": ("mapping", "{tiers: 5}", "Retries of transient failures: see `targets[].retry`.", "on"),
    },
    "targets[] (type: scim)": {
        **_HTTP,
        "matching": ("mapping", "{user: [userName, externalId]}", "Attributes searched to match, per type."),
        "update_method": ("string", "patch", "patch or put."),
        "member_chunk_size": ("integer", "100", "Members per PATCH of a group."),
        "max_concurrency": ("integer", "8", "Requests in flight at once."),
        "rate_per_s": ("number", "50", "Requests per second at most; unlimited if absent."),
    },
    "targets[].matching": {
        "user": ("list", "[userName, externalId]", "Attributes a user is matched on, in order."),
        "group": ("list", "[externalId, displayName]", "Attributes a group is matched on, in order."),
    },
    "targets[].auth (type: oauth2)": {
        "type": _AUTH_TYPE,
        "token_url": ("URL", "https://idp.example.org/oauth2/token", "Where client credentials get a token."),
        "client_id": ("string", "roster", "The client's id."),
        "client_secret": ("secret", "${CLIENT_SECRET}", "The client's secret."),
        "scope": ("string", "scim", "The scope asked for.", "none"),
        "client_auth": ("string", "basic", "basic or post: how the client authenticates.", "basic"),
    },
    "targets[].auth (type: basic)": {
        "type": _AUTH_TYPE,
        "username": ("string", "roster", "HTTP basic user."),
        "password": ("secret", "${APP_PASSWORD}", "HTTP basic password."),
    },
    "targets[].retry": {
        "tiers": ("integer", "5", "Retries of a transient failure, each in its own delay tier."),
        "first_delay_ms": ("integer", "1000", "The first retry's delay."),
        "multiplier": ("number", "4", "Each later delay is this many times the one before."),
        "jitter": ("number", "0.2", "Delays spread by this share either way (below 1)."),
    },
    "targets[] (type: sql)": {
        "url": ("URL", "postgresql://roster:${DB_PASSWORD}@db/app", "sqlite:///path.db or postgresql://..."),
        "table": ("string", "accounts", "The table holding the objects."),
        "key_column": ("string", "employee_id", "The column holding the matching value."),
        "columns": ("mapping", "{email: mail}", "Attribute to column names; the same names if absent."),
        "active_column": (
            "string",
            "active",
            "A boolean column that marks a row active; false in the upsert of an account to be left "
            "disabled.",
        ),
        "on_disable": ("string", "deactivate", "deactivate (set active_column false) or delete."),
        "create_table": ("boolean", "true", "Create the table if missing (needs columns)."),
        "pool_size": ("integer", "4", "Database connections."),
        "busy_timeout_s": ("seconds", "5", "SQLite only: how long a write waits for a lock."),
    },
    "targets[] (type: ldap)": {
        **_LINK,
        "flavor": (
            "string",
            "active_directory",
            "openldap, or active_directory: AD's accounts, passwords, GUIDs and groups (README).",
            "openldap",
        ),
        "base_dn": ("DN", "dc=example,dc=org", "The directory's base (AD: where uniqueness is checked)."),
        "pool_size": ("integer", "4", "Connections to the server.", "4"),
        "users": (
            "mapping",
            '{dn: "uid={uid},ou=people,dc=example,dc=org"}',
            "How users are written.",
            "none",
        ),
        "groups": (
            "mapping",
            '{dn: "cn={cn},ou=groups,dc=example,dc=org"}',
            "How groups are written.",
            "none",
        ),
    },
    "targets[].users": {
        "dn": (
            "DN template",
            "uid={uid},ou=people,dc=example,dc=org",
            "A new entry's DN, from its attributes.",
        ),
        "object_classes": ("list", "[inetOrgPerson]", "A new entry's object classes.", "[inetOrgPerson]"),
        "attributes": (
            "mapping",
            "{userName: uid, email: mail}",
            "Mapped attribute to LDAP attribute names; the same names if absent.",
            "same names",
        ),
        "match": ("string", "uid", "The LDAP attribute an entry is matched on.", "the DN's RDN attribute"),
        "base": ("DN", "ou=people,dc=example,dc=org", "Where matching searches.", "base_dn"),
        "disable": (
            "mapping",
            "{attribute: employeeType, value: disabled}",
            "How a disabled user looks (AD: userAccountControl, and `move_to` if set); without it, a user "
            "cannot be created or updated disabled.",
            "none",
        ),
        "password": (
            "mapping",
            "{generate: true}",
            "AD only: initial passwords (over LDAPS or StartTLS).",
            "none: created disabled",
        ),
        "must_change_password": (
            "boolean",
            "true",
            "AD only: the user sets a new password at first logon (pwdLastSet 0).",
            "false",
        ),
    },
    "targets[].users.password": {
        "generate": ("boolean", "true", "Generate a strong random password (AD's complexity rule).", "false"),
        "length": ("integer", "20", "Length of a generated password.", "20"),
        "attribute": (
            "string",
            "initialPassword",
            "Or take it from this mapped attribute (never written as one).",
            "none",
        ),
    },
    "targets[].users.disable": {
        "attribute": ("string", "employeeType", "Set this attribute...", "none"),
        "value": ("string", "disabled", "...to this value on disable...", "none"),
        "enabled_value": ("string", "active", "...and to this one on enable.", "none"),
        "move_to": (
            "DN",
            "ou=disabled,dc=example,dc=org",
            "Move a disabled user under this OU (one created disabled is added there).",
            "none",
        ),
    },
    "targets[].groups": {
        "dn": ("DN template", "cn={cn},ou=groups,dc=example,dc=org", "A new group's DN."),
        "object_classes": ("list", "[groupOfNames]", "A new group's object classes.", "[groupOfNames]"),
        "attributes": (
            "mapping",
            "{displayName: cn}",
            "Mapped attribute to LDAP attribute names; the same names if absent.",
            "same names",
        ),
        "match": ("string", "cn", "The LDAP attribute a group is matched on.", "the DN's RDN attribute"),
        "base": ("DN", "ou=groups,dc=example,dc=org", "Where matching searches.", "base_dn"),
        "member_chunk_size": (
            "integer",
            "500",
            "Members per modify of a group (AD: at most 1000).",
            "500; AD 1000",
        ),
        "empty_member": ("DN", "cn=nobody", "Stand-in member of an empty groupOfNames.", "bind_dn"),
        "group_type": ("string", "security", "AD only: security or distribution (groupType).", "security"),
        "group_scope": ("string", "global", "AD only: global, universal or domain_local.", "global"),
    },
    "targets[].auth (type: api_key)": {
        "type": _AUTH_TYPE,
        "header": ("string", "X-Api-Key", "The header that carries the key."),
        "key": ("secret", "${APP_KEY}", "The key; write it as an environment variable."),
    },
    "targets[] (type: rest)": {
        **_HTTP,
        "error_path": (
            "JSON path",
            "error.message",
            "Where an error answer holds the service's message.",
            "message, error or detail",
        ),
        "max_concurrency": ("integer", "8", "Requests in flight at once."),
        "rate_per_s": ("number", "20", "Requests per second at most; unlimited if absent."),
        "users": (
            "mapping",
            '{read: {url: "/users/{target_id}"}, ...}',
            "How users are read and written.",
            "none",
        ),
        "groups": ("mapping", "{create: {url: /groups}, ...}", "How groups are read and written.", "none"),
    },
    "targets[].users (type: rest)": _REST_OBJECT,
    "targets[].groups (type: rest)": {
        **_REST_OBJECT,
        "members": ("mapping", "{add: ..., remove: ...}", "Calls that add and remove one member.", "none"),
    },
    "targets[].users.match[] (type: rest)": _REST_CALL,
    "targets[].users.read (type: rest)": _REST_CALL,
    "targets[].users.create (type: rest)": _REST_WRITE,
    "targets[].users.update (type: rest)": _REST_WRITE,
    "targets[].users.disable (type: rest)": _REST_WRITE,
    "targets[].users.delete (type: rest)": _REST_CALL,
    "targets[].users.list (type: rest)": {
        **_REST_CALL,
        "paging": (
            "mapping",
            "{style: cursor}",
            "How pages are asked for: see `targets[].users.list.paging (type: rest)`.",
        ),
    },
    "targets[].users.list.paging (type: rest)": {
        "style": ("string", "cursor", "none, offset, page, cursor (in the answer) or link (Link: rel=next)."),
        "size": ("integer", "100", "Objects per page, sent as `size_param`."),
        "size_param": ("string", "limit", "The query parameter of the page size."),
        "offset_param": ("string", "offset", "style offset: the parameter of the first object's offset."),
        "page_param": ("string", "page", "style page: the parameter of the page number."),
        "first_page": ("integer", "1", "style page: the first page's number."),
        "cursor_param": ("string", "cursor", "style cursor: the parameter the cursor is sent back in."),
        "cursor_path": ("JSON path", "next_cursor", "style cursor: where an answer holds the next cursor."),
    },
    "targets[].groups.match[] (type: rest)": _REST_CALL,
    "targets[].groups.create (type: rest)": _REST_WRITE,
    "targets[].groups.members (type: rest)": {
        "add": (
            "mapping",
            '{method: PUT, url: "/groups/{target_id}/members/{member_id}"}',
            "Adds one member.",
        ),
        "remove": ("mapping", '{url: "/groups/{target_id}/members/{member_id}"}', "Removes one member."),
    },
    "targets[].groups.members.add (type: rest)": _REST_WRITE,
    "targets[].groups.members.remove (type: rest)": _REST_WRITE,
    "targets[] (type: noop)": {},
}

DEFAULTS_FROM: dict[str, tuple[type, ...]] = {
    "engine": (PublishSettings, EngineConfig),
    "engine.quarantine": (QuarantineSettings,),
    "engine.deadline": (DeadlineSettings,),
    "engine.presence": (FleetSettings,),
    "workers.presence": (PresenceSettings,),
    "jobs[].deletion_guard": (DeletionGuard,),
    "jobs[].mass_change_guard": (MassChangeGuard,),
    "jobs[].reconcile": (ReconcileSettings,),
    "jobs[].source (type: csv or jsonl)": (FileSourceSettings,),
    "jobs[].source (type: ldap)": (LdapSourceSettings, LinkSettings),
    "jobs[].source (type: scim)": (ScimSourceSettings, HttpSettings),
    "jobs[].source (type: sql)": (SqlSourceSettings,),
    "targets[] (every type)": (TargetRuntime,),
    "targets[] (type: scim)": (ScimSettings, HttpSettings),
    "targets[].retry": (RetryPolicy,),
    "targets[] (type: sql)": (SqlSettings,),
    "targets[] (type: ldap)": (LinkSettings,),
}
"""Where a key's default is read: the field of the same name in these dataclasses."""


def sections() -> dict[str, tuple[tuple[str, ...], frozenset[str]]]:
    """Each section's keys (in the parser's order) and the required ones, as the parsers check them."""
    raw = yaml.safe_load(SAMPLE)
    with TemporaryDirectory() as folder, recording_keys() as seen:
        base = Path(folder)
        (base / "people.csv").write_text("employee_id\n", encoding="utf-8")
        (base / "teams.jsonl").write_text("", encoding="utf-8")
        parse_engine_config(raw, base_dir=base)
        parse_targets(raw, base_dir=base)
        parse_presence(raw.get("workers"))
    found: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
        "targets[] (every type)": (COMMON_KEYS, frozenset({"name", "type"}))
    }
    for path, allowed, required in seen:
        name = _label(path, raw)
        keys, needed = found.get(name, ((), frozenset()))
        found[name] = (tuple(dict.fromkeys((*keys, *allowed))), needed | set(required))
    if "(top level)" in found:  # the engine's and the workers' top levels: one file, either may lack one
        found["(top level)"] = (found["(top level)"][0], frozenset())
    return found


_SCOPED = ("rest",)
"""Target types whose `users` and `groups` sections (and those within) are named with the type, since
another type has sections of the same names with other keys."""


def _label(path: str, raw: Any) -> str:
    """`targets[2]` -> `targets[] (type: sql)`: a section whose keys depend on its `type` says which."""
    node = raw
    scope = None
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        node = node[int(index)] if index else node.get(name, {})
        if isinstance(node, Mapping) and node.get("type") in _SCOPED:
            scope = node["type"]
    general = re.sub(r"\[\d+\]", "[]", path) or "(top level)"
    if isinstance(node, Mapping) and "type" in node and general != "(top level)":
        kind = "csv or jsonl" if node["type"] in ("csv", "jsonl") else node["type"]  # one file source
        return f"{general} (type: {kind})"
    inner = re.search(r"\.(users|groups)\b", general)  # not the sections every target has (retry)
    return f"{general} (type: {scope})" if scope and inner else general


def render() -> str:
    found = sections()
    missing = [f"{s}: {k}" for s, (keys, _) in found.items() for k in keys if k not in KEYS.get(s, {})]
    extra = [f"{s}: {k}" for s, words in KEYS.items() for k in words if k not in found.get(s, ((), ()))[0]]
    stop_unless_matched("engine/cli/configdocs.py: KEYS does not match the parsers", missing, extra)
    out = [
        "# Configuration keys",
        "",
        "<!-- Generated by `make docs` (python -m engine.cli.docs) from the parsers; do not edit. -->",
        "",
        "One YAML file holds the engine's `jobs:` (and `engine:`) and the workers' `targets:`; in scaled",
        "mode each side may have its own file. `${VAR}` (or `${VAR:-default}`) anywhere takes an",
        "environment variable: write every secret so. Paths are relative to the file. `roster validate FILE`",
        "checks a file and names the key and the fix of every error, and the columns the jobs read against",
        "their source files; `--connect` also checks the sources and targets themselves.",
        "",
    ]
    for name in KEYS:
        keys, required = found[name]
        out += [f"## `{name}`", ""]
        if not keys:
            out += ["No settings of its own.", ""]
            continue
        out += ["| key | type | default | example | what it does |", "| --- | --- | --- | --- | --- |"]
        for key in keys:
            words = KEYS[name][key]
            default = "**required**" if key in required else _default(name, key, words)
            cells = (f"`{key}`", words[0], default, f"`{words[1]}`", words[2])
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        out.append("")
    return "\n".join(out)


def stop_unless_matched(where: str, missing: list[str], extra: list[str]) -> None:
    """Stop the generation when the words written here and what the code has differ, saying how."""
    if missing or extra:
        raise SystemExit(
            f"{where}. "
            + (f"Describe: {', '.join(missing)}. " if missing else "")
            + (f"Remove (the code has none): {', '.join(extra)}." if extra else "")
        )


def _default(section: str, key: str, words: _Key) -> str:
    if len(words) == 4:
        return words[3]
    for kind in DEFAULTS_FROM.get(section, ()):
        for field in dataclasses.fields(kind):
            if field.name == key:
                if field.default is not dataclasses.MISSING:
                    return _shown(field.default)
                if field.default_factory is not dataclasses.MISSING:
                    return _shown(field.default_factory())
    return "none"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple | list | frozenset | set):
        items = sorted(value) if isinstance(value, frozenset | set) else value
        return "[" + ", ".join(str(v) for v in items) + "]" if items else "[]"
    return str(value)
