"""Realtime: the WebSocket gate, hub and endpoints (the only code that knows WebSockets)."""
