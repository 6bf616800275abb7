"""The rules of the client base, free of nameko and of the database."""
