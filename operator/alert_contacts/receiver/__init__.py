"""The Alertmanager receiver: a thin HTTP layer over the delivery engine."""
