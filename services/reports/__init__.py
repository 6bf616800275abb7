"""The reports service: owns read models built from events only."""
