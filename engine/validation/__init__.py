"""What `roster validate` checks beyond the parsers: a job's columns against its source's data, and
(with `--connect`) that its source answers."""
