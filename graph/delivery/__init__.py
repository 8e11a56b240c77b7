"""Transports that carry change events to clients: graphql-ws (both subprotocols), raw WebSocket, SSE."""
