"""The simulated provider."""
