"""The one compiler: every query and mutation read into plans, built into SQL once, cached.

`query_plans` answers queries (graphql-core completing the answer around
the statement's values only where it must, `_query_shell`), `mutation`
answers mutations in one transaction on the dialect's driver.
"""
