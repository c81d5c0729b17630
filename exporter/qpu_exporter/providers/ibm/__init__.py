"""The ibm provider."""
