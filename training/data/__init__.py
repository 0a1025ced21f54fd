"""Stage 1, data: records, splits, augmentation, stress sets, tf.data pipelines (no other stage)."""
