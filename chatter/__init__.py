"""Chatter: one shared chat room on an OTP-style supervision tree."""

__version__ = "0.1.0"
