"""What users run: the ``batchjobs`` CLI, its job specs and the default policy pack."""

__all__: list[str] = []
