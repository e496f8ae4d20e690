"""Training the learned estimators: data splits, degradations, and one trainer per model."""
