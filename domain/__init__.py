"""The business: SQLModel tables, repositories (queries) and services (rules). Never imports ``api``."""
