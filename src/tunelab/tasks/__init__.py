"""Task heads: what the model predicts and how it is scored. Each task knows no strategy."""
