"""The networks: one Encoder/Decoder shared by every objective (nets), the fast inference copy, the reducers (PCA/UMAP/...)."""
