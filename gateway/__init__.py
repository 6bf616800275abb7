"""HTTP gateway: JSON API under /api/v1 (+ web UI) for people and integrators; owns no data."""
