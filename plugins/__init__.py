"""shopgraph's built-in plugins: one package each, written only against ``server.plugin``."""
