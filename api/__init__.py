"""GraphQL, HTTP and OAuth. Holds no business rule: resolvers call ``domain`` services."""
