"""Results going back to the LMS: LTI Assignment and Grade Services 2.0, tool side.

* :mod:`.tokens`: OAuth 2.0 access tokens for the platform's services (client credentials grant
  with a signed JWT assertion, 1EdTech Security Framework §4.1), cached in the shared store and
  shared by every worker, one request per platform and scope set at a time.
* :mod:`.ags`: the AGS client: line items (AGS §3.2: find, create, update, delete, matched by
  ``resourceLinkId``/``resourceId``), scores (§3.4), results (§3.3), ``Link`` header paging.
* :mod:`.passback`: progress events become one ``ags.score`` outbox message per line item and
  learner (newest wins), and the outbox handler that posts it.
* :mod:`.models`: the line items the tool created itself, per resource link.
* :mod:`.deep_linking`, :mod:`.views`: the Deep Linking 2.0 picker and its signed response, the
  chooser that binds a link made without Deep Linking; :mod:`.nrps`, :mod:`.dashboard`: rosters
  (Names and Role Provisioning 2.0) and the teacher's class dashboard.

Kept import-light: importing the package loads none of these (``lms_bridge.create_app`` imports
:mod:`.passback`, which registers the outbox handler and the progress subscriber).
"""
