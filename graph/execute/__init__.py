"""The one entry that answers a query or a mutation, for HTTP and WebSocket alike.

Every transport reads and validates the document (its errors are the
transport's to frame), then hands the operation here: `answer` answers
every query by the compiled path (one cached statement for its generated
fields, graphql-core around them for introspection, `changeCursor` and
errors), and every mutation by the mutation plans' one transaction, its
errors included: there is no other path. The answer is the response body,
bytes built once, that HTTP sends as is and WebSocket frames splice into
their `next`/`data` messages; errors are formatted by one function
(`graph.execution.format_error`), so they read the same on every transport.
Each answer is counted on /metrics (`forgegraph_operations_total`).
"""

from __future__ import annotations

from graph.execute.operation import Answer, Operation, Services, answer, answer_many, failure

__all__ = ["Answer", "Operation", "Services", "answer", "answer_many", "failure"]
