"""Stage 4, heads: linear heads fitted on the exported networks' features (imports stages 1-3)."""
