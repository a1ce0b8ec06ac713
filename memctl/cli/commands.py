"""Registers every command family on the main group."""
