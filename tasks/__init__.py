"""The Celery app and its tasks: thin verbs that delegate to `models/`."""
