"""Screens pushed over the main screen: the job detail screen and the dialogs (confirm, enqueue)."""
