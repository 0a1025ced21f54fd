"""Core of the fracture-triage tool: imaging, models, manifest, heatmaps and typed errors."""
