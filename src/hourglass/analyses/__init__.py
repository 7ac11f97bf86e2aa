"""Analyses built on the similarity measures: consistency across seeds, MDS."""
