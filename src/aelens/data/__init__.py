"""The dataset: reading crops and conditions, several sessions as one, splits in time, batches and augmentation."""
