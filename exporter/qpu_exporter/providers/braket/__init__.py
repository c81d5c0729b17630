"""The braket provider."""
