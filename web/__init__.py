"""Chatter's Tornado web layer: pages, the WebSocket endpoint and the API."""
