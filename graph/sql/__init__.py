"""Statement builders: GraphQL arguments compiled to SQLAlchemy Core, run on one connection."""
