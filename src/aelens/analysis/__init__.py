"""Latent analysis, comparison of representations, transfer to new sessions, the answers in words and the HTML report."""
