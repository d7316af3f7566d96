"""Segments: dynamic (a condition tree compiled to SQL) or static (a list), with materialised
membership and an enter/exit transition log."""
