"""The web dashboard's test support and its real-browser tests."""
