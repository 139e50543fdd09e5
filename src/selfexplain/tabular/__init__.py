"""Tabular inputs: feature definitions, grids and distances."""
