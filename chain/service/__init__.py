"""Shared service plumbing for the roles: database engine, HTTP app base, settings base, files."""
