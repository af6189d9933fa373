"""Chatter: one shared chat room on an OTP-style supervision tree."""

__version__ = "0.2.0"
"""The release; CHANGELOG.md says what each one changed."""
