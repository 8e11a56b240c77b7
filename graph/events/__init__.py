"""The event side: committed row changes, from the change log to every subscriber.

`changelog` (triggers write each committed change into one table) ->
`capture` (reads the log after commits and on a poll, wakes the other
processes through `broker`) -> `hub` (matches and renders each change once
per stream for its subscribers). `change` is what one event is.
"""
