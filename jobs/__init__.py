"""Background work: ARQ on Redis in production, the same task functions in-process without Redis."""
