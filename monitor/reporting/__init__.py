"""Reading violations out of the store for people: reports, exports, takedown drafts.

Modules: :mod:`.items` (the one query every output shares), :mod:`.thumbs`
(thumbnails with the matched area drawn), :mod:`.templating` (Jinja2 with user
overrides), :mod:`.exports` (JSON and CSV) and :mod:`.takedown` (notice drafts).
:mod:`monitor.report` renders and writes the HTML report. Nothing here touches
the stages: reports read the database and the data folder only.
"""
