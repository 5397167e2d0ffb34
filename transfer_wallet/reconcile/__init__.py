"""Reconciliation: a provider's daily transfer report against our ledger, with pandas.

The pipeline, one module per stage: ``ingest`` (read a report with its
provider's profile into the canonical frame of ``frame``) -> ``ledger_side``
(the provider's transfers of the business day, one query) -> ``match`` ->
``classify`` -> ``store`` (runs and discrepancies) -> ``export`` (CSV, XLSX, HTML).
"""
