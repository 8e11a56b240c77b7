"""The event side: committed row changes, from the change log to every subscriber.

`changelog` (triggers write each committed change into one table) ->
`capture` (reads the log after commits and on a poll, wakes the other
processes through `broker`) -> `hub` (matches and renders each change once
per stream and hands it to every subscriber's sink). `change` is what one
event is. The event side knows the `sink` protocols, never a transport:
graph.delivery implements them.
"""
