"""Stage 3, export: LiteRT files under the parity rule, the manifest writer (imports stages 1-2)."""
