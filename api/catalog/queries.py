"""Catalog queries (filled in by the catalog work)."""

from __future__ import annotations

import strawberry


@strawberry.type
class CatalogQueries:
    pass
