"""The model: bundled data, training, the model card, loading and verifying artifacts, drift
references and alert thresholds. Imports nothing else of the service but settings and version."""
