"""The `storystream` command line (contract section 2)."""
