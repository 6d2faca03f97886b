"""The smoke suite: run an image, prove health and every protocol it claims, clean up."""

from toolkit.smoke.model import CHECKS, CheckResult, Report, ServerReport, Status

__all__ = ["CHECKS", "CheckResult", "Report", "ServerReport", "Status"]
