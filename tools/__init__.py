"""Operator tools: infrastructure checks, provisioning, demo data (not services)."""
