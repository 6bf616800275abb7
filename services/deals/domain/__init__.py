"""The rules of deals, tasks and their timing, free of nameko and of the database."""
