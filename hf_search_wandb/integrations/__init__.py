"""Integrations with other libraries' plug-in points: the Hugging Face `evaluate` metric module (`evaluate_module`,
`retrieval_metrics`). The transformers Trainer integration is the `trainer` layer; sweeps are `sweeps`."""
