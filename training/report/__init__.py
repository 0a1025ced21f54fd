"""Stage 5, report: evaluation through the app, figures, plots, localisation, the model card."""
