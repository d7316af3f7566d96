"""Every table, imported in one place so metadata (Alembic, tests) sees them all."""

from sqlmodel import SQLModel

from domain.auth.models import OAuthClient, RevokedToken
from domain.catalog.models import Category, Product, ProductTag
from domain.tasks.models import TaskRun
from domain.users.models import Customer, CustomerTag

metadata = SQLModel.metadata

__all__ = [
    "Category",
    "Customer",
    "CustomerTag",
    "OAuthClient",
    "Product",
    "ProductTag",
    "RevokedToken",
    "TaskRun",
    "metadata",
]
