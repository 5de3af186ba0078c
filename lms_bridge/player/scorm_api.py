"""SCORM 1.2 and 2004 runtime data for the vendored scorm-again runtime.

The player page runs scorm-again (``static/vendor/scorm-again``), which exposes ``window.API``
(SCORM 1.2 RTE §3.2) or ``window.API_1484_11`` (SCORM 2004 RTE §3.1) to the SCO in the content
frame. :func:`initial_cmi` gives it the values the LMS provides at launch (learner, entry, the
resume point ``location``/``suspend_data``, mastery and completion thresholds, launch data,
total time); its commits (autocommit, ``Commit``, ``Terminate``) POST the cmi data model to
``/player/api/attempts/<attempt>/activities/<activity_key>/scorm/commit`` as
``{"token", "session", "seq", "cmi"}``, which :func:`commit_update` turns into a progress update:

* 2004: ``cmi.completion_status`` (RTE 4.2.4), ``cmi.success_status`` (4.2.22), ``cmi.score.*``
  (4.2.20), ``cmi.progress_measure``, ``cmi.location``, ``cmi.suspend_data``, ``cmi.exit``,
  ``cmi.total_time`` (ISO 8601 duration, already including this session's time);
* 1.2: ``cmi.core.lesson_status`` (RTE 3.4.2.1.5: passed/failed also mean completed),
  ``cmi.core.score.raw/min/max`` (scaled = (raw - min) / (max - min), max defaulting to 100),
  ``cmi.core.lesson_location``, ``cmi.suspend_data``, ``cmi.core.exit``, ``cmi.core.total_time``
  (``HHHH:MM:SS.SS``).

The token is the narrow commit token of :mod:`.tokens` (one attempt); it travels in the body
because the commit sent on ``Terminate`` is a ``sendBeacon`` (no headers), and also as a Bearer
header on ordinary commits.
"""
from __future__ import annotations

import math
import re
from typing import Any

from flask import has_request_context, request

from .models import ActivityProgress
from .progress import ProgressUpdate

_ISO = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                  r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_HMS = re.compile(r"^(\d{2,4}):(\d{2}):(\d{2})(\.\d{1,2})?$")

STATUS_2004 = {"completed": "completed", "incomplete": "incomplete", "not attempted": "not_attempted",
               "unknown": "unknown"}
SUCCESS_2004 = {"passed": "passed", "failed": "failed", "unknown": "unknown"}
# SCORM 1.2 lesson_status -> (completion, success)
STATUS_12 = {"passed": ("completed", "passed"), "failed": ("completed", "failed"), "completed": ("completed", None),
             "incomplete": ("incomplete", None), "browsed": ("incomplete", None),
             "not attempted": ("not_attempted", None)}
STATUS_12_BACK = {"completed": "completed", "incomplete": "incomplete", "not_attempted": "not attempted"}
MAX_TEXT = 64_000  # suspend_data is 4096 characters in 1.2 and 64000 in 2004 4th edition


def iso_duration_seconds(value: str | None) -> float | None:
    """Seconds of an ISO 8601 duration (SCORM 2004 ``timeinterval``), years as 365 days, months as 30."""
    if not value or not isinstance(value, str):
        return None
    m = _ISO.match(value.strip())
    if not m or value.strip() in ("P", "PT"):
        return None
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 60) + mi) * 60 + s


def hms_seconds(value: str | None) -> float | None:
    """Seconds of a SCORM 1.2 ``CMITimespan`` (``HHHH:MM:SS.SS``)."""
    if not value or not isinstance(value, str):
        return None
    m = _HMS.match(value.strip())
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)) + (float(m.group(4)) if m.group(4) else 0.0)


def iso_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds or 0))
    h = int(seconds // 3600)
    m = int((seconds % 3600) // 60)
    s = round(seconds - h * 3600 - m * 60, 2)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + f"{s:g}S"


def hms(seconds: float) -> str:
    seconds = max(0.0, float(seconds or 0))
    h = int(seconds // 3600)
    m = int((seconds % 3600) // 60)
    s = seconds - h * 3600 - m * 60
    return f"{h:04d}:{m:02d}:{s:05.2f}"


def _num(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:MAX_TEXT]


def _get(tree: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def cmi_tree(body: dict) -> dict:
    """The ``cmi`` object of a commit body, whether nested (``{"cmi": {...}}``, scorm-again's
    ``renderCommitCMI``), wrapped (``runtimeData.cmi``) or flattened (``{"cmi.core.x": ...}``)."""
    cmi = body.get("cmi")
    if isinstance(cmi, dict):
        if isinstance(cmi.get("cmi"), dict):
            return cmi["cmi"]
        return cmi
    wrapped = _get(body, "runtimeData", "cmi")
    if isinstance(wrapped, dict):
        return wrapped
    tree: dict = {}
    for key, value in body.items():
        if isinstance(key, str) and key.startswith("cmi."):
            node = tree
            parts = key.split(".")[1:]
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    break
            else:
                node[parts[-1]] = value
    return tree


def _slim(cmi: dict) -> dict:
    """What is kept of a commit as the stored cmi: all of it, unless it is very large (the request
    body bounds it), when interactions, objectives and learner comments are dropped."""
    if request_size() > 256_000:
        cmi = {k: v for k, v in cmi.items() if k not in ("interactions", "objectives", "comments_from_learner")}
    return cmi


def request_size() -> int:
    return (request.content_length or 0) if has_request_context() else 0


def commit_update(scorm_version: str, cmi: dict) -> ProgressUpdate:
    """The progress update a committed cmi data model means."""
    update = ProgressUpdate(cmi=_slim(cmi))
    if scorm_version == "scorm12":
        core = cmi.get("core") if isinstance(cmi.get("core"), dict) else {}
        status = str(core.get("lesson_status") or "").strip().lower()
        if status in STATUS_12:
            update.completion_status, update.success_status = STATUS_12[status]
        raw = _num(_get(core, "score", "raw"))
        if raw is not None:
            lo = _num(_get(core, "score", "min"))
            hi = _num(_get(core, "score", "max"))
            lo_v = lo if lo is not None else 0.0
            hi_v = hi if hi is not None else 100.0
            update.score_raw, update.score_min, update.score_max = raw, lo, hi
            update.score_scaled = round(min(1.0, max(-1.0, (raw - lo_v) / (hi_v - lo_v))), 6) if hi_v > lo_v else None
        update.location = _text(core.get("lesson_location"))
        update.suspend_data = _text(cmi.get("suspend_data"))
        update.exit = (str(core.get("exit") or "")[:20]) if "exit" in core else None
        update.total_time_seconds = hms_seconds(core.get("total_time"))
        return update
    completion = str(cmi.get("completion_status") or "").strip().lower()
    if completion in STATUS_2004:
        update.completion_status = STATUS_2004[completion]
    success = str(cmi.get("success_status") or "").strip().lower()
    if success in SUCCESS_2004:
        update.success_status = SUCCESS_2004[success]
    score = cmi.get("score") if isinstance(cmi.get("score"), dict) else {}
    scaled, raw, lo, hi = (_num(score.get(k)) for k in ("scaled", "raw", "min", "max"))
    if scaled is not None:
        update.score_scaled = round(min(1.0, max(-1.0, scaled)), 6)
    elif raw is not None and hi is not None and hi > (lo or 0.0):
        update.score_scaled = round(min(1.0, max(-1.0, (raw - (lo or 0.0)) / (hi - (lo or 0.0)))), 6)
    if any(v is not None for v in (scaled, raw, lo, hi)):
        update.score_raw, update.score_min, update.score_max = raw, lo, hi
    measure = _num(cmi.get("progress_measure"))
    if measure is not None:
        update.progress_measure = min(1.0, max(0.0, measure))
    update.location = _text(cmi.get("location"))
    update.suspend_data = _text(cmi.get("suspend_data"))
    if "exit" in cmi:
        update.exit = str(cmi.get("exit") or "")[:20]
    update.total_time_seconds = iso_duration_seconds(cmi.get("total_time"))
    return update


def _resuming(progress: ActivityProgress) -> bool:
    return (progress.exit or "") in ("suspend", "logout") or bool(progress.suspend_data or progress.location)


def initial_cmi(scorm_version: str, activity, progress: ActivityProgress, *, learner_id: str,
                learner_name: str) -> dict:
    """Flattened cmi values the runtime starts with (``loadFromFlattenedJSON``)."""
    resuming = _resuming(progress)
    first = not resuming and not progress.cmi  # the SCO never committed anything
    extra = activity.extra or {}
    if scorm_version == "scorm12":
        values = {
            "cmi.core.student_id": learner_id,
            "cmi.core.student_name": learner_name,
            "cmi.core.credit": "credit",
            "cmi.core.lesson_mode": "normal",
            "cmi.core.entry": "ab-initio" if first else ("resume" if resuming else ""),
            "cmi.core.total_time": hms(progress.total_time_seconds or 0),
            "cmi.core.lesson_location": (progress.location or "")[:255],
            "cmi.suspend_data": (progress.suspend_data or "")[:4096],
            "cmi.launch_data": activity.launch_parameters or "",
        }
        if progress.completion_status not in (None, "not_attempted", "unknown"):
            status = progress.completion_status
            if status == "completed" and progress.success_status in ("passed", "failed"):
                values["cmi.core.lesson_status"] = progress.success_status
            else:
                values["cmi.core.lesson_status"] = STATUS_12_BACK.get(status, "incomplete")
        if activity.mastery_score is not None:
            values["cmi.student_data.mastery_score"] = f"{activity.mastery_score * 100:g}"
        if extra.get("max_time_allowed"):
            values["cmi.student_data.max_time_allowed"] = str(extra["max_time_allowed"])
        if extra.get("time_limit_action"):
            values["cmi.student_data.time_limit_action"] = str(extra["time_limit_action"])
        if progress.score_raw is not None:
            values["cmi.core.score.raw"] = f"{progress.score_raw:g}"
            if progress.score_min is not None:
                values["cmi.core.score.min"] = f"{progress.score_min:g}"
            if progress.score_max is not None:
                values["cmi.core.score.max"] = f"{progress.score_max:g}"
        return values
    values = {
        "cmi.learner_id": learner_id,
        "cmi.learner_name": learner_name,
        "cmi.credit": "credit",
        "cmi.mode": "normal",
        "cmi.entry": "ab-initio" if first else ("resume" if resuming else ""),
        "cmi.total_time": iso_duration(progress.total_time_seconds or 0),
        "cmi.location": (progress.location or "")[:1000],
        "cmi.suspend_data": (progress.suspend_data or "")[:MAX_TEXT],
        "cmi.launch_data": activity.launch_parameters or "",
    }
    if progress.completion_status in ("completed", "incomplete"):
        values["cmi.completion_status"] = progress.completion_status
    if progress.success_status in ("passed", "failed"):
        values["cmi.success_status"] = progress.success_status
    if activity.mastery_score is not None:
        values["cmi.scaled_passing_score"] = f"{activity.mastery_score:g}"
    if activity.completion_threshold is not None:
        values["cmi.completion_threshold"] = f"{activity.completion_threshold:g}"
    if progress.progress_measure is not None:
        values["cmi.progress_measure"] = f"{progress.progress_measure:g}"
    if extra.get("max_time_allowed"):
        values["cmi.max_time_allowed"] = str(extra["max_time_allowed"])
    if extra.get("time_limit_action"):
        values["cmi.time_limit_action"] = str(extra["time_limit_action"])
    for name in ("scaled", "raw", "min", "max"):
        value = getattr(progress, "score_" + name)
        if value is not None:
            values["cmi.score." + name] = f"{value:g}"
    return values
