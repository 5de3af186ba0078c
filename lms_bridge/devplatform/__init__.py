"""A real LTI 1.3 platform inside the project, for trying and testing without an LMS.

Enabled with DEVPLATFORM_ENABLED (on by default outside production).  It signs launches
with its own keys, runs the full OIDC flow, embeds the tool from another origin with the
platform side of LTI Platform Storage, answers Dynamic Registration, OAuth2 client
credentials, AGS and NRPS, and keeps a small gradebook.
"""
