"""The named request and reply types of the routes, one module per area."""
