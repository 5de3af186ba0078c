"""Operator pages: registrations, deployments, keys; local operators or LMS administrators."""
