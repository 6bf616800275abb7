"""The mail service: owns mailboxes, messages, threads."""
