"""Linear probe, then fine-tuning (LP-FT): fit the fracture map's head on frozen features first, so
that fine-tuning starts from a head that already reads the pretrained features (a random head's
first gradients wreck them).
"""

from __future__ import annotations

import numpy as np


def fit_cell_probe(
    features: np.ndarray,
    masks: np.ndarray,
    pos_weight: float = 10.0,
    l2: float = 1e-3,
    steps: int = 400,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression of each cell's fracture mask on its (standardised) features,
    folded back to raw features: returns kernel (C,) and bias with logit = features @ kernel + bias.

    features (N, h, w, C) float32, masks (N, h, w) in {0, 1}.
    """
    import tensorflow as tf

    x = features.reshape(-1, features.shape[-1]).astype(np.float32)
    y = masks.reshape(-1).astype(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-3
    z = tf.constant((x - mean) / std)
    labels = tf.constant(y)
    tf.random.set_seed(seed)
    weight = tf.Variable(tf.zeros(x.shape[1]))
    prior = max(float(y.mean()), 1e-4)
    bias = tf.Variable(float(np.log(prior / (1 - prior))))
    optimizer = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = tf.linalg.matvec(z, weight) + bias
            loss = tf.reduce_mean(
                tf.nn.weighted_cross_entropy_with_logits(labels, logits, pos_weight)
            ) + l2 * tf.reduce_sum(tf.square(weight))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, [weight, bias]), [weight, bias], strict=True)
        )
        return loss

    for _ in range(steps):
        step()
    w = weight.numpy() / std
    return w.astype(np.float32), float(bias.numpy() - np.sum(weight.numpy() * mean / std))
