"""The GraphQL engine: schema assembly, the request context, loaders, pagination, ids,
the mutation helper, limits and cost, the response cache, the audit, errors. No domain
knowledge: the core's API lives in schema/, plugins in plugins/."""
