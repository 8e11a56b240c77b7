"""Requests answered without graphql-core's execution: `query_plans` (queries), `mutation` (mutations)."""
