"""Job analytics for the dashboards, from the hourly roll-up of jobs."""

from .service import AnalyticsService, RequestStats, RequestSummary, Window

__all__ = ["AnalyticsService", "RequestStats", "RequestSummary", "Window"]
