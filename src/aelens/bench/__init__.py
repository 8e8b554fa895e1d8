"""Speed beside the reference, as ratios measured in one run: the suite (suite) and each measurement (measures)."""
