"""A user project: typed facts from a folder of letters, without editing extraction_assets."""
