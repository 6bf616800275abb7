"""The clients service: owns counterparties, contacts, ownership, the duplicate index, segments,
hand-over, access policy data."""
