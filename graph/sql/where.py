"""`t_bool_exp` to SQL by its earlier module name; the compiler is graph.rules.to_sql."""

from __future__ import annotations

from graph.rules.to_sql import Condition, Filters, Visible, comparable, like_to_glob

__all__ = ["Condition", "Filters", "Visible", "comparable", "like_to_glob"]
