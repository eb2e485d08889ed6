"""Search-space files (YAML); installed as hho_tune.search_spaces so the tool finds them by name."""
