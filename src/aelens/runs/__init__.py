"""A finished run: load it (run), test it (evaluate), export what it computes (export)."""
