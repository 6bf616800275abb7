"""Pure domain code of the telephony service."""
