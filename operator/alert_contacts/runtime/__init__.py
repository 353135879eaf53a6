"""The operator process: options, certificates, API calls, the reconcile loop."""
