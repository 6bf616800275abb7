"""The directory service: owns the organisation: departments, regions, users, roles, PBX
extensions, mailboxes."""
