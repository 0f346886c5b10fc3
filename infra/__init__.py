"""Launchers for the embedded broker and object store, and deployment files."""
