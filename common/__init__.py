"""What every hinerv package may use and none owns: the name registry (presets, entropy coders, quantizers,
plugins). It imports nothing of the project, so any package can depend on it without an upward import."""
