"""The smoke suite: run an image, prove health and every protocol it claims, clean up."""

from toolkit.smoke.model import CHECKS, Check, CheckResult, Report, ServerReport, Status, select_checks

__all__ = ["CHECKS", "Check", "CheckResult", "Report", "ServerReport", "Status", "select_checks"]
