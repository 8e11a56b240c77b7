"""Row rules and filters: one `t_bool_exp` AST (`bool_exp`), read and checked once
(`parse`), compiled to SQL (`to_sql`) and to an in-memory matcher for events
(`matcher`); permission rules are the same AST (`permissions`), their session
variables filled in per session (`session`)."""
