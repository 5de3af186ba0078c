"""Course packages: safe opening, hardened XML parsing and format importers.

Everything in this package is pure and database-free: it turns an uploaded archive or
directory into a :class:`~lms_bridge.packages.course.Course` value, or raises
:class:`~lms_bridge.packages.safezip.PackageError` naming the file and the problem.

Typical use::

    from lms_bridge.packages.importers import detect_and_load
    course = detect_and_load("upload.zip", target_dir=content_root / "pkg-42")
"""

from __future__ import annotations

from .course import Activity, Choice, CompletionRule, Course, Module, Question, Quiz
from .safezip import Limits, PackageError

__all__ = [
    "Activity",
    "Choice",
    "CompletionRule",
    "Course",
    "Limits",
    "Module",
    "PackageError",
    "Question",
    "Quiz",
]
