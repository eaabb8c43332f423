"""Datasets: sources, standard clips and manifests (prepare), latent/text caches, training datasets."""
