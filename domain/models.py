"""Every table, imported in one place so metadata (Alembic, tests) sees them all."""

from sqlmodel import SQLModel

from domain.audit.models import AuditEntry
from domain.auth.models import OAuthClient, RevokedToken
from domain.catalog.models import Category, Product, ProductTag
from domain.consents.models import Consent
from domain.devices.models import Device
from domain.events.models import Event, EventDaily, IdentityLink
from domain.orders.models import Order, OrderLine
from domain.privacy.models import DataExport, PrivacyRequest
from domain.profiles.models import CustomerProfile
from domain.recommend.models import Experiment, ModelVersion, RecommendationImpression
from domain.segments.models import Segment, SegmentMember, SegmentTransition, SegmentVersion
from domain.tasks.models import TaskRun
from domain.users.models import Customer, CustomerTag

metadata = SQLModel.metadata

__all__ = [
    "AuditEntry",
    "Category",
    "Consent",
    "Customer",
    "CustomerProfile",
    "CustomerTag",
    "DataExport",
    "Device",
    "Event",
    "EventDaily",
    "Experiment",
    "IdentityLink",
    "ModelVersion",
    "OAuthClient",
    "Order",
    "OrderLine",
    "PrivacyRequest",
    "Product",
    "ProductTag",
    "RecommendationImpression",
    "RevokedToken",
    "Segment",
    "SegmentMember",
    "SegmentTransition",
    "SegmentVersion",
    "TaskRun",
    "metadata",
]
