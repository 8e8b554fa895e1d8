"""The synthetic arena (arena) and its rendered videos with true poses (video)."""
