"""shopgraph: a GraphQL API server for running an online shop finely."""

__version__ = "0.1.0"
