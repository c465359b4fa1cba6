"""Gallery indices: caches of the database with ``add/search/remove/save/load``."""
