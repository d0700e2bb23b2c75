"""The project's defs folder (`dg` loads it with `load_from_defs_folder`): component instances
(`defs.yaml`) and any further definitions go here, beside the environment-built ones of
`extraction_assets.definitions`."""
