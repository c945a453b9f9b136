"""The Queue facade's methods by concern; `djobs.Queue` combines them (import it from `djobs`)."""
