"""The erp_bridge service: owns the 1C document registry (GUID, version, state), quarantine and
1C links."""
