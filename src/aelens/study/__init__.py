"""The whole pipeline: aelens study step by step and resumable (pipeline), its settings (config), the unfreeze sweep."""
