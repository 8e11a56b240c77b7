"""The one entry that answers a query or a mutation, for HTTP and WebSocket alike.

Every transport reads and validates the document (its errors are the
transport's to frame), then hands the operation here: `answer` answers
every query by the compiled path (one cached statement for its generated
fields, graphql-core around them for introspection and errors), and every
generated mutation by the mutation plans' transaction, its errors included;
graphql-core execution with the field resolvers answers only what the
compiler does not own (a schema extension's fields). The answer is the
response body, bytes built once, that HTTP sends as is and WebSocket frames
splice into their `next`/`data` messages; errors are formatted by one
function (`graph.execution.format_error`), so they read the same on every
transport. Each answer is counted on /metrics by what answered it.
"""

from __future__ import annotations

from graph.execute.operation import Answer, Operation, Services, answer, failure

__all__ = ["Answer", "Operation", "Services", "answer", "failure"]
