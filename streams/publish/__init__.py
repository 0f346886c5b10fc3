"""`storystream publish`: JSON lines validated, encoded and produced, in several lanes."""
