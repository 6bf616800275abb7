"""Pure domain code of the erp_bridge service."""
